"""The network: one definition used by training, export and inference.

    log-mel (B, n_mels, T) --audio encoder--> audio tokens (B, Ta, d)
        cfg.audio_encoder "cnn": CNN stages trained from scratch (one token per 16 frames)
        cfg.audio_encoder "musicnn_msd": musicnn's MSD_musicnn, pretrained on the Million Song
            Dataset's tags (Pons & Serra 2019, ISC licence), one token per 3 s patch (187 frames)
    lyric token embeddings from the frozen LM (B, Tl, h) --Linear--> (B, Tl, d)
    n_layers x FusionBlock: self-attention over audio, cross-attention audio->lyrics, dynamic gate, FFN
    masked attentive + mean pooling --> one head per task (logits) + valence/arousal (tanh, [-1, 1])

Padding never changes a result: every CNN stage re-applies the time mask so padded frames are zero
for the next convolution (exactly what the unpadded input sees at its edge); musicnn sees each 3 s
patch on its own (a row's frames past its length are zeroed, so a clip shorter than one patch is
padded with silence whatever the batch); attention uses key padding masks, and pooling ignores
padded tokens. A row whose lyric keys are all masked (no lyrics)
gets a cross-attention output of zero and a gate of zero: the model itself reduces to audio only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
        x, lengths = self.features(mel, lengths)
        return self.proj(x), lengths

    def features(self, mel, lengths):
        """mel (B, n_mels, T), lengths (B,) -> per-token features before the projection (B, T', F)."""
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
        return x.permute(0, 3, 1, 2).reshape(B, Tt, C * Fq), lengths


def _same_time_pad(k: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding of a stride-1 kernel of length k: the odd sample goes after."""
    return (k - 1) // 2, k - 1 - (k - 1) // 2


class Musicnn(nn.Module):
    """PyTorch port of musicnn (Pons & Serra, 2019; https://github.com/jordipons/musicnn, ISC licence):
    the network of ``musicnn.models.build_musicnn`` with the sizes of MSD_musicnn, for one 3 s patch.

    Input (N, T, n_mels) musicnn log-mel patches (T = 187 as trained). Layers (TensorFlow's order):
    batch norm of the input; timbral convolutions (7 x 38 and 7 x 67 over time x mel, 204 filters
    each) and temporal ones (128/64/32 x 1, 51 filters each), each ReLU then batch norm, max over
    frequency -> 561 channels per frame; three 7-frame 1-D convolutions of 64 filters (ReLU, batch
    norm, residual after the first) -> 753 channels per frame ("midend"); max and mean over time,
    interleaved per channel (TensorFlow's flatten of [max, mean]) -> batch norm -> dense 200 (ReLU,
    batch norm: "penultimate") -> dense 50 (tag logits). Batch norms use TensorFlow's eps 1e-3 and
    always run on their stored statistics (``train()`` leaves them in eval mode): fine-tuning with
    small batches must not overwrite the statistics of the Million Song Dataset.
    """

    def __init__(
        self,
        n_mels: int = 96,
        n_tags: int = 50,
        filt_frontend: float = 1.6,
        filt_midend: int = 64,
        units_backend: int = 200,
    ):
        super().__init__()
        bn2, bn1 = (lambda c: nn.BatchNorm2d(c, eps=1e-3)), (lambda c: nn.BatchNorm1d(c, eps=1e-3))
        n_timbral, n_temporal = int(filt_frontend * 128), int(filt_frontend * 32)
        self.input_bn = bn2(1)
        self.timbral = nn.ModuleList(nn.Conv2d(1, n_timbral, (7, int(f * n_mels))) for f in (0.4, 0.7))
        self.timbral_bn = nn.ModuleList(bn2(n_timbral) for _ in range(2))
        self.temporal_kernels = (128, 64, 32)
        self.temporal = nn.ModuleList(nn.Conv2d(1, n_temporal, (k, 1)) for k in self.temporal_kernels)
        self.temporal_bn = nn.ModuleList(bn2(n_temporal) for _ in self.temporal_kernels)
        n_front = 2 * n_timbral + 3 * n_temporal
        self.midend = nn.ModuleList(nn.Conv1d(c, filt_midend, 7) for c in (n_front, filt_midend, filt_midend))
        self.midend_bn = nn.ModuleList(bn1(filt_midend) for _ in range(3))
        self.n_features = n_front + 3 * filt_midend  # 753 for MSD_musicnn
        self.pool_bn = bn1(2 * self.n_features)
        self.dense = nn.Linear(2 * self.n_features, units_backend)
        self.dense_bn = bn1(units_backend)
        self.tags = nn.Linear(units_backend, n_tags)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self

    def forward(self, x) -> dict[str, torch.Tensor]:
        """x (N, T, n_mels) -> {'mean_pool', 'max_pool': (N, 753), 'penultimate': (N, 200), 'taggram': (N, 50)
        sigmoid tag probabilities}; the names of musicnn's ``extractor`` features."""
        x = self.input_bn(x.unsqueeze(1))  # (N, 1, T, n_mels)
        front = []
        padded = F.pad(x, (0, 0, 3, 3))
        for conv, bn in zip(self.timbral, self.timbral_bn):
            front.append(bn(F.relu(conv(padded))).amax(dim=-1))
        for k, conv, bn in zip(self.temporal_kernels, self.temporal, self.temporal_bn):
            front.append(bn(F.relu(conv(F.pad(x, (0, 0) + _same_time_pad(k))))).amax(dim=-1))
        h = torch.cat(front, dim=1)  # (N, 561, T)
        layers = [h]
        for i, (conv, bn) in enumerate(zip(self.midend, self.midend_bn)):
            y = bn(F.relu(conv(F.pad(h, (3, 3)))))
            h = y if i == 0 else y + h
            layers.append(h)
        mid = torch.cat(layers, dim=1)  # (N, 753, T)
        max_pool, mean_pool = mid.amax(dim=-1), mid.mean(dim=-1)
        flat = torch.stack([max_pool, mean_pool], dim=-1).flatten(1)  # TF's flatten of (N, 753, 2)
        penultimate = self.dense_bn(F.relu(self.dense(self.pool_bn(flat))))
        return {
            "mean_pool": mean_pool,
            "max_pool": max_pool,
            "penultimate": penultimate,
            "taggram": torch.sigmoid(self.tags(penultimate)),
        }


# per-patch layers a musicnn encoder can take its tokens from, and their widths for MSD_musicnn
MUSICNN_LAYERS = {"penultimate": 200, "mean_pool": 753, "max_pool": 753, "pooled": 1506, "taggram": 50}


def musicnn_layer(out: dict, layer: str):
    """The token features of one layer name from ``Musicnn.forward``'s outputs ('pooled' = max + mean);
    tensors or NumPy arrays (the training cache stores every layer)."""
    if layer == "pooled":
        parts = [out["max_pool"], out["mean_pool"]]
        return torch.cat(parts, dim=-1) if isinstance(parts[0], torch.Tensor) else np.concatenate(parts, axis=-1)
    return out[layer]


PRETRAINED_DIR = Path(__file__).parent / "models" / "musicnn"


def load_pretrained_audio(model: EmotionModel) -> bool:
    """Initialise a new model's audio backbone with the converted pretrained weights (training starts
    here; a checkpoint brings its own). Returns False for encoders without pretrained weights."""
    if model.cfg.audio_encoder != "musicnn_msd":
        return False
    from safetensors.torch import load_file

    assert isinstance(model.audio, MusicnnEncoder)  # what cfg.audio_encoder == "musicnn_msd" builds
    model.audio.backbone.load_state_dict(load_file(str(PRETRAINED_DIR / "MSD_musicnn.safetensors")), strict=True)
    return True


class MusicnnEncoder(nn.Module):
    """Pretrained musicnn as the audio encoder: the log-mel is cut into non-overlapping patches of
    ``cfg.patch_frames`` frames (187 = 3 s, as musicnn was trained), each patch goes through the
    network on its own, and one layer of it (``cfg.audio_layer``) becomes that patch's token.

    A row has ``max(1, length // patch_frames)`` tokens: a tail shorter than a patch is dropped, as
    musicnn's own extractor does, except when the whole clip is shorter than one patch, which is then
    padded with zeros (silence in musicnn's log10(1 + 10000 x) compression). ``cfg.max_patches``
    caps that to the central patches of each input (cost: the backbone runs once per patch)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.patch_frames = cfg.patch_frames
        self.max_patches = cfg.max_patches
        self.layer = cfg.audio_layer
        self.backbone = Musicnn(n_mels=cfg.frontend.n_mels)
        self.out_features = MUSICNN_LAYERS[self.layer]
        # the layers' scales differ by orders of magnitude (max_pool reaches ~100): normalise first
        self.proj = nn.Sequential(nn.LayerNorm(self.out_features), nn.Linear(self.out_features, cfg.d_model))

    def forward(self, mel, lengths):
        x, lengths = self.features(mel, lengths)
        return self.proj(x), lengths

    def token_lengths(self, lengths):
        n = torch.clamp(torch.div(lengths, self.patch_frames, rounding_mode="floor"), min=1)
        return torch.clamp(n, max=self.max_patches) if self.max_patches else n

    def patches(self, mel, lengths):
        """mel (B, n_mels, T), lengths (B,) -> patches (B * n, patch_frames, n_mels) row-major, n, patch
        counts (B,). Frames past a row's length are zeroed. With ``max_patches`` a row keeps only its
        central ``max_patches`` whole patches (its own length decides which), and n is max_patches."""
        B, n_mels, T = mel.shape
        P = self.patch_frames
        if self.max_patches:
            # always max_patches patches (zeros past the input, masked by token_lengths): static shapes,
            # so an exported graph serves every length
            n = self.max_patches
            all_patches = torch.clamp(torch.div(lengths, P, rounding_mode="floor"), min=1)
            first = torch.clamp(torch.div(all_patches - n, 2, rounding_mode="floor"), min=0) * P
            mel = F.pad(mel, (0, n * P))
        else:
            n = max(1, T // P)
            first = torch.zeros_like(lengths)
            if n * P > T:  # only when every row is shorter than one patch
                mel = F.pad(mel, (0, n * P - T))
        frames = first[:, None] + torch.arange(n * P, device=mel.device)[None, :]  # (B, n * P)
        mel = torch.gather(mel, 2, frames[:, None, :].expand(B, n_mels, n * P))
        mel = mel * (frames < lengths[:, None])[:, None, :].to(mel.dtype)
        return (
            mel.reshape(B, n_mels, n, P).permute(0, 2, 3, 1).reshape(B * n, P, n_mels),
            n,
            self.token_lengths(lengths),
        )

    def features(self, mel, lengths):
        """mel (B, n_mels, T), lengths (B,) -> per-patch features (B, n_patches, F), patch counts (B,)."""
        patches, n, token_lengths = self.patches(mel, lengths)
        feats = musicnn_layer(self.backbone(patches), self.layer)
        return feats.reshape(mel.shape[0], n, -1), token_lengths


AUDIO_ENCODERS: dict[str, type[AudioCNN] | type[MusicnnEncoder]] = {"cnn": AudioCNN, "musicnn_msd": MusicnnEncoder}


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
        self.audio = AUDIO_ENCODERS[cfg.audio_encoder](cfg)
        self.lyrics_proj = nn.Sequential(nn.Linear(cfg.text_encoder.hidden_size, d), nn.LayerNorm(d))
        self.blocks = nn.ModuleList(FusionBlock(cfg) for _ in range(cfg.n_layers))
        self.norm_out = nn.LayerNorm(d)
        self.pool_score = nn.Linear(d, 1)
        self.heads = nn.ModuleDict(
            {
                t.name: nn.Sequential(
                    nn.Linear(2 * d, d), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(d, len(t.labels))
                )
                for t in cfg.tasks
            }
        )
        self.va_head = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, 2))

    def forward(self, mel, mel_lengths, lyr_emb, lyr_mask):
        """
        mel: (B, n_mels, T) float log-mel, zero beyond each length; mel_lengths: (B,) int64.
        lyr_emb: (B, Tl, hidden) token embeddings from the text LM (Tl >= 1); lyr_mask: (B, Tl) bool.
        Returns dict: '<task>' logits (B, n_labels) per task, 'va' (B, 2) in [-1, 1] (valence,
        arousal), 'gate' (B,) mean fusion gate over valid tokens and layers, 'embedding' (B, 2d).
        """
        feats, lengths = self.audio.features(mel, mel_lengths)
        return self.forward_features(feats, lengths, lyr_emb, lyr_mask)

    def forward_features(self, feats, feat_lengths, lyr_emb, lyr_mask):
        """``forward`` from the audio encoder's token features (B, Ta, F) (``self.audio.features``), so
        training with a frozen encoder can read them from a cache; same outputs as ``forward``."""
        a, a_len = self.audio.proj(feats), feat_lengths
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
