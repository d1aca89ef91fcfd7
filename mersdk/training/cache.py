"""Feature cache: decode and resample every clip once, store its log-mel (float16) and the frozen
MiniLM token embeddings of its lyrics (float16), so training never touches audio files again.

    <out>/<dataset>/mels.npz     id -> (n_mels, n_frames) float16 log-mel of the whole clip
    <out>/<dataset>/lyrics.npz   id -> (n_tokens, hidden) float16 (clips with lyrics only)
    <out>/<dataset>/index.json   ids and the front end / text encoder the cache was made with
    <out>/<dataset>/<encoder>.npz "<id>/<layer>" -> (n_patches, width) float16: every per-patch layer of
                                  a frozen pretrained audio encoder (``build_token_cache``), so heads on
                                  a frozen backbone train without running it

Decoding runs in a process pool (one worker per core); the text encoder runs in this process.
"""

from __future__ import annotations

import dataclasses
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


def build_cache(
    data_dir,
    out_dir,
    datasets=DATASETS,
    workers: int | None = None,
    cfg: ModelConfig = ModelConfig(),
    lyrics_threads: int = 1,
):
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
        n_lyrics = build_lyrics_cache(data_dir, out_dir, ds, cfg, lyrics_threads)
        print(f"{ds}: {len(clips)} clips, {n_lyrics} lyrics -> {dst}")


def build_lyrics_cache(data_dir, out_dir, dataset: str, cfg: ModelConfig = ModelConfig(), threads: int = 1) -> int:
    """The lyric token embeddings of one dataset, then its index.json (which marks the cache complete).
    One thread: on the shared machine 2 threads ran 3-8x slower per step (see train.TrainOptions)."""
    import torch

    from ..lyrics import load_lyrics
    from ..text_encoder import TextEncoder

    clips = load_clips(data_dir, dataset)
    dst = Path(out_dir) / dataset
    with_lyrics = [c for c in clips if c.lyrics_path is not None]
    lyr = {}
    if with_lyrics:
        torch.set_num_threads(threads)
        enc = TextEncoder(cfg.text_encoder)
        for c in tqdm(with_lyrics, desc=f"{dataset} lyrics"):
            ly = load_lyrics(c.lyrics_path)
            if ly is None:
                continue
            emb, mask = enc.encode([ly.text])
            lyr[c.id] = emb[0, : int(mask[0].sum())].numpy().astype(np.float16)
    np.savez(dst / "lyrics.npz", **lyr)
    index = {
        "dataset": dataset,
        "ids": [c.id for c in clips],
        "frontend": dataclasses.asdict(cfg.frontend),
        "text_encoder": dataclasses.asdict(cfg.text_encoder),
        "n_lyrics": len(lyr),
    }
    (dst / "index.json").write_text(json.dumps(index, indent=1))
    return len(lyr)


TOKEN_LAYERS = ("penultimate", "mean_pool", "max_pool", "taggram")


def build_token_cache(
    cache_dir,
    encoder: str = "musicnn_msd",
    datasets=DATASETS,
    log=print,
    max_patches: int | None = None,
    shard: tuple[int, int] = (0, 1),
):
    """Run the frozen pretrained encoder over every cached log-mel once; store every layer per patch.

    Exactly ``MusicnnEncoder.patches`` + its backbone as the model runs them (whole clip as one input,
    ``max_patches`` central patches), with the converted pretrained weights. ``shard=(i, n)`` does every
    n-th clip from the i-th into ``<encoder>.part<i>of<n>.npz`` (parallel processes; ``FeatureCache``
    reads the parts). A finished file is kept (resumable)."""
    import time

    import torch

    from ..config import MUSICNN_FRONTEND
    from ..model import EmotionModel, MusicnnEncoder, load_pretrained_audio

    cfg = ModelConfig(frontend=MUSICNN_FRONTEND, audio_encoder=encoder, max_patches=max_patches)
    model = EmotionModel(cfg).eval()
    load_pretrained_audio(model)
    enc = model.audio
    if not isinstance(enc, MusicnnEncoder):
        raise ValueError(f"encoder {encoder!r} is not a pretrained musicnn encoder; only those have a feature cache")
    i_shard, n_shards = shard
    for ds in datasets:
        d = Path(cache_dir) / ds
        dst = d / (f"{encoder}.npz" if n_shards == 1 else f"{encoder}.part{i_shard}of{n_shards}.npz")
        if dst.is_file():
            log(f"{dst}: exists, kept")
            continue
        index = json.loads((d / "index.json").read_text())
        if index["frontend"] != dataclasses.asdict(MUSICNN_FRONTEND):
            raise ValueError(f"{d}: the cached log-mels were not made with musicnn's front end")
        out: dict[str, np.ndarray] = {"_meta/max_patches": np.array(max_patches or 0)}
        t0 = time.time()
        with np.load(d / "mels.npz") as z, torch.inference_mode():
            ids = list(z.files)[i_shard::n_shards]
            for j, cid in enumerate(ids):
                mel = torch.from_numpy(z[cid].astype(np.float32))[None]
                patches, _, n_valid = enc.patches(mel, torch.tensor([mel.shape[-1]]))
                patches = patches[: int(n_valid[0])]  # padding patches (clips under max_patches) are masked anyway
                res = enc.backbone(patches)
                for layer in TOKEN_LAYERS:
                    out[f"{cid}/{layer}"] = res[layer].numpy().astype(np.float16)
                if j % 50 == 0:
                    log(f"{ds}: {j + 1}/{len(ids)} clips, {time.time() - t0:.0f}s")
        tmp = d / f".{dst.stem}.tmp.npz"
        np.savez(tmp, **out)  # type: ignore[arg-type]  # numpy's stub reads **kwds as allow_pickle too
        os.replace(tmp, dst)
        log(f"{ds}: {len(ids)} clips -> {dst} ({time.time() - t0:.0f}s)")


class FeatureCache:
    """Read side: whole-clip log-mels (float16 in memory) and lyric embeddings per dataset; with
    ``tokens=<encoder>`` the frozen encoder's per-patch layers (``build_token_cache``) instead of the
    log-mels."""

    def __init__(self, cache_dir, datasets=DATASETS, tokens: str | None = None):
        self.mels: dict[tuple[str, str], np.ndarray] = {}
        self.lyrics: dict[tuple[str, str], np.ndarray] = {}
        self.tokens: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        self.token_max_patches: int | None = None
        for ds in datasets:
            d = Path(cache_dir) / ds
            if not (d / "index.json").is_file():
                raise FileNotFoundError(f"{d}: no feature cache; run `mersdk train cache --data DIR --out {cache_dir}`")
            if tokens:
                files = sorted(d.glob(f"{tokens}.npz")) or sorted(d.glob(f"{tokens}.part*.npz"))
                if not files:
                    raise FileNotFoundError(
                        f"{d}: no {tokens} token cache; run `mersdk train cache-tokens --cache {cache_dir}`"
                    )
                for f in files:
                    with np.load(f) as z:
                        for k in z.files:
                            cid, layer = k.rsplit("/", 1)
                            if cid == "_meta":
                                self.token_max_patches = int(z[k]) or None
                                continue
                            self.tokens.setdefault((ds, cid), {})[layer] = z[k]
            else:
                with np.load(d / "mels.npz") as z:
                    self.mels.update({(ds, k): z[k] for k in z.files})
            with np.load(d / "lyrics.npz") as z:
                self.lyrics.update({(ds, k): z[k] for k in z.files})
