"""Feature cache: decode and resample every clip once, store its log-mel (float16) and the frozen
MiniLM token embeddings of its lyrics (float16), so training never touches audio files again.

    <out>/<dataset>/mels.npz     id -> (n_mels, n_frames) float16 log-mel of the whole clip
    <out>/<dataset>/lyrics.npz   id -> (n_tokens, hidden) float16 (clips with lyrics only)
    <out>/<dataset>/index.json   ids and the front end / text encoder the cache was made with

Decoding runs in a process pool (one worker per core); the text encoder runs in this process.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..config import ModelConfig
from .data import DATASETS, load_clips


def _decode_mel(args):
    path, frontend_dict = args
    from ..audio import load_audio
    from ..config import FrontendConfig
    from ..features import log_mel

    fe = FrontendConfig(**frontend_dict)
    audio = load_audio(path, fe.sample_rate)
    return log_mel(audio.samples, fe).astype(np.float16)


def build_cache(data_dir, out_dir, datasets=DATASETS, workers: int | None = None, cfg: ModelConfig = ModelConfig()):
    import dataclasses

    import torch

    from ..lyrics import load_lyrics
    from ..text_encoder import TextEncoder

    out_dir = Path(out_dir)
    workers = workers or min(2, os.cpu_count() or 1)
    for ds in datasets:
        clips = load_clips(data_dir, ds)
        dst = out_dir / ds
        dst.mkdir(parents=True, exist_ok=True)
        fe = dataclasses.asdict(cfg.frontend)
        jobs = [(str(c.audio_path), fe) for c in clips]
        with ProcessPoolExecutor(workers) as pool:
            mels = list(tqdm(pool.map(_decode_mel, jobs, chunksize=8), total=len(jobs), desc=f"{ds} audio"))
        np.savez(dst / "mels.npz", **{c.id: m for c, m in zip(clips, mels)})
        with_lyrics = [c for c in clips if c.lyrics_path is not None]
        lyr = {}
        if with_lyrics:
            torch.set_num_threads(workers)
            enc = TextEncoder(cfg.text_encoder)
            for c in tqdm(with_lyrics, desc=f"{ds} lyrics"):
                ly = load_lyrics(c.lyrics_path)
                if ly is None:
                    continue
                emb, mask = enc.encode([ly.text])
                lyr[c.id] = emb[0, : int(mask[0].sum())].numpy().astype(np.float16)
        np.savez(dst / "lyrics.npz", **lyr)
        index = {"dataset": ds, "ids": [c.id for c in clips], "frontend": fe,
                 "text_encoder": dataclasses.asdict(cfg.text_encoder), "n_lyrics": len(lyr)}
        (dst / "index.json").write_text(json.dumps(index, indent=1))
        print(f"{ds}: {len(clips)} clips, {len(lyr)} lyrics -> {dst}")


class FeatureCache:
    """Read side: whole-clip log-mels (float16 in memory) and lyric embeddings per dataset."""

    def __init__(self, cache_dir, datasets=DATASETS):
        self.mels: dict[tuple[str, str], np.ndarray] = {}
        self.lyrics: dict[tuple[str, str], np.ndarray] = {}
        for ds in datasets:
            d = Path(cache_dir) / ds
            if not (d / "index.json").is_file():
                raise FileNotFoundError(f"{d}: no feature cache; run `mersdk train cache --data DIR --out {cache_dir}`")
            with np.load(d / "mels.npz") as z:
                self.mels.update({(ds, k): z[k] for k in z.files})
            with np.load(d / "lyrics.npz") as z:
                self.lyrics.update({(ds, k): z[k] for k in z.files})
