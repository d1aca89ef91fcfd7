"""Baseline models that are not ``EmotionModel`` configs, with the same forward signature
``forward(mel, mel_lengths, lyr_emb, lyr_mask) -> {'<task>': logits, 'va', 'gate', 'embedding'}``
so one training loop and one evaluation harness serve them all.

* ``CRNN`` (audio only): the same CNN front as ``EmotionModel`` (``AudioCNN``) followed by a
  bidirectional GRU over the audio tokens instead of attention; masked mean + max pooling.
* ``LyricsOnly``: the frozen MiniLM token embeddings, a projection and masked attentive + mean
  pooling; it ignores the audio (evaluated only on clips that have lyrics).

(Audio-only CNN and audio-only Transformer are ``EmotionModel`` configs with ``fusion='none'`` and
``n_layers=0`` / ``n_layers>0``; see ``train.MODEL_PRESETS``.)

Baseline run folders hold ``model.safetensors`` and ``baseline.json`` (kind + ModelConfig);
``load_model`` reads those and regular mersdk checkpoints alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import torch
from torch import nn

from ..config import ModelConfig
from ..model import AudioCNN, EmotionModel

BASELINE_FILE = "baseline.json"


def _heads(cfg: ModelConfig, in_dim: int) -> nn.ModuleDict:
    d = cfg.d_model
    return nn.ModuleDict(
        {
            t.name: nn.Sequential(nn.Linear(in_dim, d), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(d, len(t.labels)))
            for t in cfg.tasks
        }
    )


class CRNN(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.audio = AudioCNN(cfg)
        self.gru = nn.GRU(d, d // 2, batch_first=True, bidirectional=True)
        self.heads = _heads(cfg, 2 * d)
        self.va_head = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, 2))

    def forward(self, mel, mel_lengths, lyr_emb, lyr_mask):
        a, a_len = self.audio(mel, mel_lengths)
        a_len = a_len.clamp_min(1)
        packed = nn.utils.rnn.pack_padded_sequence(a, a_len.cpu(), batch_first=True, enforce_sorted=False)
        h, _ = self.gru(packed)
        h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=a.shape[1])
        mask = torch.arange(h.shape[1], device=h.device)[None, :] < a_len[:, None]
        m = mask.unsqueeze(-1).to(h.dtype)
        mean = (h * m).sum(1) / m.sum(1)
        mx = h.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
        pooled = torch.cat([mean, mx], -1)
        out = {t: head(pooled) for t, head in self.heads.items()}
        out["va"] = torch.tanh(self.va_head(pooled))
        out["gate"] = pooled.new_zeros(pooled.shape[0])
        out["embedding"] = pooled
        return out


class LyricsOnly(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.proj = nn.Sequential(
            nn.Linear(cfg.text_encoder.hidden_size, d), nn.LayerNorm(d), nn.GELU(), nn.Dropout(cfg.dropout)
        )
        self.pool_score = nn.Linear(d, 1)
        self.heads = _heads(cfg, 2 * d)
        self.va_head = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, 2))

    def forward(self, mel, mel_lengths, lyr_emb, lyr_mask):
        x = self.proj(lyr_emb)
        m = lyr_mask.unsqueeze(-1).to(x.dtype)
        n = m.sum(1).clamp_min(1.0)
        s = self.pool_score(x).squeeze(-1).masked_fill(~lyr_mask, -1e9)
        w = torch.softmax(s, 1) * lyr_mask.to(x.dtype)
        pooled = torch.cat([(w.unsqueeze(-1) * x).sum(1), (x * m).sum(1) / n], -1)
        out = {t: head(pooled) for t, head in self.heads.items()}
        out["va"] = torch.tanh(self.va_head(pooled))
        out["gate"] = lyr_mask.any(1).to(x.dtype)
        out["embedding"] = pooled
        return out


KINDS = {"emotion": EmotionModel, "crnn": CRNN, "lyrics": LyricsOnly}


def build_model(kind: str, cfg: ModelConfig) -> nn.Module:
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(KINDS)}")
    return KINDS[kind](cfg)


def save_model(model: nn.Module, kind: str, path, metadata: dict) -> None:
    """EmotionModel -> a regular mersdk checkpoint; baselines -> weights + baseline.json."""
    if kind == "emotion":
        from ..checkpoint import save_checkpoint

        save_checkpoint(model, path, metadata)
        return
    from safetensors.torch import save_file

    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(p / "model.safetensors"))
    (p / BASELINE_FILE).write_text(
        json.dumps(
            {"kind": kind, "model": cast(ModelConfig, model.cfg).to_dict(), "metadata": metadata},
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )


def load_model(path=None):
    """(model in eval mode, kind, ModelConfig, metadata, short id) from a checkpoint or baseline folder."""
    from ..checkpoint import load_state_dict, read_checkpoint

    p = Path(path) if path is not None else None
    if p is not None and (p / BASELINE_FILE).is_file():
        from safetensors.torch import load_file

        info = json.loads((p / BASELINE_FILE).read_text())
        cfg = ModelConfig.from_dict(info["model"])
        model = build_model(info["kind"], cfg)
        model.load_state_dict(load_file(str(p / "model.safetensors")), strict=True)
        return model.eval(), info["kind"], cfg, info.get("metadata", {}), f"{info['kind']}:{p.name}"
    ck = read_checkpoint(p)
    model = EmotionModel(ck.config)
    load_state_dict(ck, model)
    return model.eval(), "emotion", ck.config, ck.metadata, ck.model_hash
