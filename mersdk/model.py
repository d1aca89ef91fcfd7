"""The network: one definition used by training, export and inference.

    log-mel (B, n_mels, T) --CNN stages--> audio tokens (B, Ta, d)
    lyric token embeddings from the frozen LM (B, Tl, h) --Linear--> (B, Tl, d)
    n_layers x FusionBlock: self-attention over audio, cross-attention audio->lyrics, dynamic gate, FFN
    masked attentive + mean pooling --> one head per task (logits) + valence/arousal (tanh, [-1, 1])

Padding never changes a result: every CNN stage re-applies the time mask so padded frames are zero
for the next convolution (exactly what the unpadded input sees at its edge), attention uses key
padding masks, and pooling ignores padded tokens. A row whose lyric keys are all masked (no lyrics)
gets a cross-attention output of zero and a gate of zero: the model itself reduces to audio only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import ops
from .attention import masked_attention  # noqa: F401  (its old home; the reference lives below ops)
from .config import ModelConfig


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x, context, key_mask):
        B, Tq, d = x.shape
        Tk = context.shape[1]
        h = self.n_heads
        q = self.q(x).view(B, Tq, h, d // h).transpose(1, 2)
        k, v = self.kv(context).view(B, Tk, 2, h, d // h).permute(2, 0, 3, 1, 4)
        # the compiled kernel where one applies (inference on a supported device), else the
        # reference below: ops decides, and says why (ops.attention_kernel_for)
        y = ops.cross_attention(q, k, v, key_mask)
        y = y.transpose(1, 2).reshape(B, Tq, d)
        return F.dropout(self.out(y), self.dropout, self.training)


class FusionBlock(nn.Module):
    """Pre-norm Transformer block: audio self-attention, audio->lyrics cross-attention with a
    dynamic per-token gate, feed-forward. ``fusion``: 'gate' | 'sum' | 'none' (see ModelConfig)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.fusion = cfg.fusion
        self.norm_self = nn.LayerNorm(d)
        self.self_attn = MultiHeadAttention(d, cfg.n_heads, cfg.dropout)
        if self.fusion != "none":
            self.norm_cross = nn.LayerNorm(d)
            self.cross_attn = MultiHeadAttention(d, cfg.n_heads, cfg.dropout)
        if self.fusion == "gate":
            # the gate sees the audio state and what the lyrics offer, so it can learn to trust the
            # lyrics more when the audio is noisy and less when they say little
            self.gate = nn.Linear(2 * d, 1)
        self.norm_ffn = nn.LayerNorm(d)
        self.ffn = nn.Sequential(
            nn.Linear(d, cfg.ffn_dim), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.ffn_dim, d)
        )

    def forward(self, a, a_mask, lyr, lyr_mask):
        """Returns (a, gate) where gate is (B, Ta) in [0, 1] (zeros when fusion != 'gate')."""
        h = self.norm_self(a)
        a = a + self.self_attn(h, h, a_mask)
        gate = a.new_zeros(a.shape[:2])
        if self.fusion != "none":
            h = self.norm_cross(a)
            c = self.cross_attn(h, lyr, lyr_mask)
            has_keys = lyr_mask.any(dim=1, keepdim=True).to(a.dtype)  # (B, 1)
            if self.fusion == "gate":
                # a gate over an empty attention is zero by definition
                gate = torch.sigmoid(self.gate(torch.cat([h, c], dim=-1))).squeeze(-1) * has_keys
                a = a + gate.unsqueeze(-1) * c
            else:
                gate = has_keys.expand(-1, a.shape[1])
                a = a + c
        a = a + self.ffn(self.norm_ffn(a))
        return a, gate


class AudioCNN(nn.Module):
    """Hierarchical CNN over the log-mel: stages of conv3x3-BN-ReLU then pooling in frequency and
    time; the last stage's (channels x freq) become the feature of each audio token."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_norm = nn.BatchNorm1d(cfg.frontend.n_mels)  # per-mel-bin normalisation
        stages = []
        cin, freq = 1, cfg.frontend.n_mels
        self.pools = []
        for cout, fp, tp in cfg.cnn_stages:
            stages.append(
                nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())
            )
            self.pools.append((fp, tp))
            cin, freq = cout, freq // fp
        self.stages = nn.ModuleList(stages)
        self.out_features = cin * freq
        self.proj = nn.Linear(self.out_features, cfg.d_model)

    def forward(self, mel, lengths):
        """mel (B, n_mels, T), lengths (B,) -> tokens (B, T', d), token lengths (B,)."""
        x = self.input_norm(mel)
        T = x.shape[-1]
        mask = (torch.arange(T, device=x.device)[None, :] < lengths[:, None]).to(x.dtype)
        x = (x * mask[:, None, :]).unsqueeze(1)
        for stage, (fp, tp) in zip(self.stages, self.pools):
            x = stage(x)
            x = F.max_pool2d(x, (fp, tp))
            lengths = torch.div(lengths, tp, rounding_mode="floor")
            mask = (torch.arange(x.shape[-1], device=x.device)[None, :] < lengths[:, None]).to(x.dtype)
            x = x * mask[:, None, None, :]
        B, C, Fq, Tt = x.shape
        x = x.permute(0, 3, 1, 2).reshape(B, Tt, C * Fq)
        return self.proj(x), lengths


def sinusoidal_positions(T: int, d: int, device, dtype):
    pos = torch.arange(T, device=device, dtype=torch.float32)[:, None]
    i = torch.arange(0, d, 2, device=device, dtype=torch.float32)[None, :]
    angle = pos / torch.pow(10000.0, i / d)
    pe = torch.zeros(T, d, device=device)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe.to(dtype)


class EmotionModel(nn.Module):
    """The trainable network (the text LM is frozen and lives outside; see text_encoder.py)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.audio = AudioCNN(cfg)
        self.lyrics_proj = nn.Sequential(nn.Linear(cfg.text_encoder.hidden_size, d), nn.LayerNorm(d))
        self.blocks = nn.ModuleList(FusionBlock(cfg) for _ in range(cfg.n_layers))
        self.norm_out = nn.LayerNorm(d)
        self.pool_score = nn.Linear(d, 1)
        self.heads = nn.ModuleDict(
            {t.name: nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(d, len(t.labels)))
             for t in cfg.tasks}
        )
        self.va_head = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, 2))

    def forward(self, mel, mel_lengths, lyr_emb, lyr_mask):
        """
        mel: (B, n_mels, T) float log-mel, zero beyond each length; mel_lengths: (B,) int64.
        lyr_emb: (B, Tl, hidden) token embeddings from the text LM (Tl >= 1); lyr_mask: (B, Tl) bool.
        Returns dict: '<task>' logits (B, n_labels) per task, 'va' (B, 2) in [-1, 1] (valence,
        arousal), 'gate' (B,) mean fusion gate over valid tokens and layers, 'embedding' (B, 2d).
        """
        a, a_len = self.audio(mel, mel_lengths)
        B, Ta, d = a.shape
        a = a + sinusoidal_positions(Ta, d, a.device, a.dtype)[None]
        a_mask = torch.arange(Ta, device=a.device)[None, :] < a_len[:, None]
        lyr = self.lyrics_proj(lyr_emb)
        gates = []
        for block in self.blocks:
            a, g = block(a, a_mask, lyr, lyr_mask)
            gates.append(g)
        a = self.norm_out(a)
        m = a_mask.to(a.dtype)
        n_valid = m.sum(dim=1, keepdim=True).clamp_min(1.0)
        # attentive pooling (which moments matter) beside the mean (the overall colour)
        s = self.pool_score(a).squeeze(-1).masked_fill(~a_mask, float("-inf"))
        w = torch.softmax(s, dim=1)
        pooled = torch.cat([(w.unsqueeze(-1) * a).sum(1), (a * m.unsqueeze(-1)).sum(1) / n_valid], dim=-1)
        out = {t: head(pooled) for t, head in self.heads.items()}
        out["va"] = torch.tanh(self.va_head(pooled))
        # (B, Ta); with n_layers=0 (plain CNN, no blocks) there is no fusion: the gate is zero
        gate = torch.stack(gates, 0).mean(0) if gates else a.new_zeros(a.shape[:2])
        out["gate"] = (gate * m).sum(1) / n_valid.squeeze(1)
        out["embedding"] = pooled
        return out
