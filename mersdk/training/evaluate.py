"""Evaluation harness: whole clips through the Recognizer's pipeline, optional noise, metrics.

``evaluate_checkpoint`` decodes the split's audio exactly like ``Recognizer`` (``load_audio`` at the
model's rate) and runs it through ``mersdk.pipeline`` -- the same windows, log-mel, batching and
window averaging ``predict`` uses, on the torch backend -- with lyrics encoded by the same frozen
text encoder; it scores the dataset's own task (cluster on mirex_mm, quadrant on quadrants_4q) plus
VA agreement with the derived VA targets. ``tests/test_pipeline.py`` checks that its per-clip
output equals ``Recognizer.predict_batch``. The benchmark scripts call ``load_split`` and
``window_mels`` once and ``predict_windows`` per model and condition.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from ..backends.torch_backend import TorchBackend
from ..pipeline import average_windows, clip_windows, group_windows, log_mels, run_mels
from ..text_encoder import pad_embeddings
from .data import TASK_OF_DATASET, labels_of, load_clips
from .metrics import bootstrap_ci, classification_metrics, va_metrics
from .noise import clip_rng, make_noise, mix_at_snr


def _decode(args):
    from ..audio import load_audio

    path, sr = args
    return load_audio(path, sr).samples


def load_split(data_dir, dataset, split, sample_rate=16000, workers=2):
    """(clips, waveforms float32 at sample_rate, lyrics texts or None)."""
    from ..lyrics import load_lyrics

    clips = [c for c in load_clips(data_dir, dataset) if c.split == split]
    jobs = [(str(c.audio_path), sample_rate) for c in clips]
    if workers > 1 and len(jobs) > 8:
        with ProcessPoolExecutor(workers) as pool:
            waves = list(pool.map(_decode, jobs, chunksize=4))
    else:
        waves = [_decode(j) for j in jobs]
    texts = []
    for c in clips:
        ly = load_lyrics(c.lyrics_path) if c.lyrics_path else None
        texts.append(ly.text if ly else None)
    return clips, waves, texts


def encode_texts(texts, text_cfg):
    """Lyric texts -> per clip (Tl, hidden) float32 or None, exactly as the torch backend does."""
    from ..text_encoder import TextEncoder

    if not any(texts):
        return [None] * len(texts)
    enc = TextEncoder(text_cfg)
    out: list[np.ndarray | None] = []
    for t in texts:  # one at a time: the padded batch would only cost memory
        if not t:
            out.append(None)
            continue
        emb, mask = enc.encode([t])
        n = int(mask[0].sum())
        out.append(emb[0, :n].numpy() if n else None)
    return out


def noisy_copies(clips, waves, kind, snr_db, seed=0):
    """Every waveform mixed with its own seeded noise at snr_db; music = another clip of the set."""
    out = []
    for c, w in zip(clips, waves):
        rng = clip_rng(seed, c.dataset, c.id, kind)
        pool = [waves[j] for j in range(len(waves)) if clips[j].artist != c.artist] if kind == "music" else None
        out.append(mix_at_snr(w, make_noise(kind, len(w), rng, pool), snr_db))
    return out


def predict_mels(model, mels, lyr_embs, hidden, batch_size=16, features=False):
    """Log-mels (one per window) + lyric embeddings -> per-window softmax probs per task, va, gate,
    each stacked over windows in input order (the pipeline's batching, on the torch backend).
    ``features=True``: the items are a frozen audio encoder's cached token features (T, F) instead of
    log-mels, run through ``model.forward_features`` (training-time selection on the cache only; the
    shipped model's figures come from the log-mel path, which is what users run)."""
    if not features:
        backend = TorchBackend.from_module(model, model.cfg)
        outs = run_mels(backend, mels, lyr_embs, batch_size, hidden)
        return {k: np.stack([o[k] for o in outs]) for k in outs[0]}
    return _predict_cached_features(model, mels, lyr_embs, hidden, batch_size)


@torch.inference_mode()
def _predict_cached_features(model, feats, lyr_embs, hidden, batch_size):
    order = np.argsort([m.shape[0] for m in feats])
    res: dict[str, list] = {}
    idx_out = []
    for b0 in range(0, len(order), batch_size):
        idx = order[b0 : b0 + batch_size]
        lengths = np.array([feats[i].shape[0] for i in idx], np.int64)
        x = np.zeros((len(idx), lengths.max(), feats[idx[0]].shape[1]), np.float32)
        for j, i in enumerate(idx):
            x[j, : lengths[j]] = feats[i]
        emb, mask = pad_embeddings([lyr_embs[i] for i in idx], hidden)
        out = model.forward_features(
            torch.from_numpy(x), torch.from_numpy(lengths), torch.from_numpy(emb), torch.from_numpy(mask)
        )
        for t in model.cfg.tasks:
            res.setdefault(t.name, []).append(torch.softmax(out[t.name].float(), -1).numpy())
        res.setdefault("va", []).append(out["va"].float().numpy())
        res.setdefault("gate", []).append(out["gate"].float().numpy())
        idx_out.append(idx)
    inv = np.argsort(np.concatenate(idx_out))
    return {k: np.concatenate(v)[inv] for k, v in res.items()}


def window_mels(waves, cfg):
    """Log-mels of the Recognizer's windows of every clip, and the clip index of each window."""
    windows, owner = clip_windows(waves, cfg.frontend.sample_rate, cfg.window_s, cfg.hop_s)
    return log_mels(cfg.frontend, windows), np.array(owner)


def predict_windows(model, cfg, mels, win_of, lyr_embs, batch_size=16):
    """Per-window outputs averaged per clip like the Recognizer (``pipeline.average_windows``)."""
    backend = TorchBackend.from_module(model, cfg)
    outs = run_mels(backend, mels, [lyr_embs[i] for i in win_of], batch_size, cfg.text_encoder.hidden_size)
    pooled = [average_windows(o, cfg) for o in group_windows(outs, list(win_of), len(lyr_embs))]
    return {k: np.stack([p[k] for p in pooled]) for k in pooled[0]}


def predict_waves(model, cfg, waves, lyr_embs, batch_size=16):
    """Whole clips -> per clip probs per task (averaged over the Recognizer's windows), va, gate."""
    mels, win_of = window_mels(waves, cfg)
    return predict_windows(model, cfg, mels, win_of, lyr_embs, batch_size)


def score(clips, pred, model_id="", extra=None) -> dict:
    """The metrics dict for one dataset (its own task) + VA vs derived VA targets."""
    task = clips[0].task
    y = np.array([c.label for c in clips])
    res = classification_metrics(y, pred[task], len(labels_of(task)))
    res["model"] = model_id
    res["task"] = task
    res["labels"] = list(labels_of(task))
    res["va"] = va_metrics(pred["va"], np.array([c.va for c in clips]))
    res["va"]["targets"] = (
        "derived VA targets (quadrant signs / Warriner lexicon of the mood adjective), not listener ratings"
    )
    res["mean_fusion_gate"] = float(np.mean(pred["gate"]))
    res.update(extra or {})
    return res


def evaluate_checkpoint(
    checkpoint,
    data_dir,
    dataset,
    split="test",
    snr_db=None,
    noise="white",
    seed=0,
    lyrics=True,
    threads=1,
    bootstrap=1000,
) -> dict:
    """Metrics of one checkpoint on one split; ``bootstrap`` resamples give 95 % intervals (0: none)."""
    from .baselines import load_model

    torch.set_num_threads(threads)
    model, kind, cfg, meta, model_id = load_model(checkpoint)
    clips, waves, texts = load_split(data_dir, dataset, split, cfg.frontend.sample_rate)
    if kind == "lyrics":  # a lyrics-only model is scored only where lyrics exist
        keep = [i for i, t in enumerate(texts) if t]
        clips, waves, texts = [clips[i] for i in keep], [waves[i] for i in keep], [texts[i] for i in keep]
    if not lyrics:
        texts = [None] * len(texts)
    if snr_db is not None:
        waves = noisy_copies(clips, waves, noise, snr_db, seed)
    embs = encode_texts(texts, cfg.text_encoder)
    pred = predict_waves(model, cfg, waves, embs)
    res = score(
        clips,
        pred,
        model_id,
        {
            "dataset": dataset,
            "split": split,
            "kind": kind,
            "task_of_dataset": TASK_OF_DATASET[dataset],
            "snr_db": snr_db,
            "noise": noise if snr_db is not None else None,
            "noise_seed": seed if snr_db is not None else None,
            "n_with_lyrics": int(sum(e is not None for e in embs)),
            "subset": "clips with lyrics" if kind == "lyrics" else "all clips",
        },
    )
    if bootstrap:
        task = clips[0].task
        res["ci95"] = bootstrap_ci([c.label for c in clips], pred[task], len(labels_of(task)), n_resamples=bootstrap)
    return res


def format_report(res: dict) -> str:
    lines = [f"{res['dataset']} / {res['split']} ({res['subset']}), n={res['n']}, model {res['model']} ({res['kind']})"]
    if res.get("snr_db") is not None:
        lines.append(f"noise: {res['noise']} at {res['snr_db']:g} dB SNR (seed {res['noise_seed']})")
    ci = res.get("ci95")
    if ci:
        lines.append(
            "  ".join(
                f"{label} {res[k]:.3f} [{ci[k][0]:.3f}, {ci[k][1]:.3f}]"
                for k, label in (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("roc_auc", "ROC-AUC"))
            )
            + f"  (95 % bootstrap intervals, {ci['n_resamples']} resamples)"
        )
    else:
        lines.append(f"accuracy {res['accuracy']:.3f}  macro-F1 {res['macro_f1']:.3f}  ROC-AUC {res['roc_auc']:.3f}")
    va = res["va"]
    for dim in ("valence", "arousal"):
        m = va[dim]
        lines.append(
            f"{dim:8s} CCC {m['ccc']:.3f}  r {m['pearson']:.3f}  ICC(3,1) {m['icc_3_1']:.3f}  (derived VA targets)"
        )
    lines.append("confusion matrix (rows true, cols predicted): " + ", ".join(res["labels"]))
    lines += ["  " + " ".join(f"{x:4d}" for x in row) for row in res["confusion_matrix"]]
    return "\n".join(lines)
