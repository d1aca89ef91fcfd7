"""Multi-task training on cached features (see ``cache``), seeded, deterministic and resumable.

One batch mixes clips of both datasets: the cluster loss applies only to mirex_mm clips, the quadrant
loss only to quadrants_4q clips, and the valence/arousal regression to every labelled clip against
its *derived VA target* (see ``data``). Augmentation on cached log-mels: a random crop per batch
(``crop_s``), random gain, additive noise at a random SNR (white, pink, or another training clip as
"other music", mixed in the mel power domain, see ``noise``), and lyrics dropout so the model also
learns the lyrics-missing case; lyrics longer than ``max_lyric_tokens`` are cut to a random
contiguous span (cheaper batches; inference still reads every token).

Label efficiency: ``label_fraction < 1`` keeps that stratified fraction of training labels (seeded);
with ``semi_supervised='mean_teacher'`` the unlabelled clips still train through a consistency loss
towards an EMA teacher that sees a differently augmented view (Tarvainen & Valpola, 2017).

Pretrained audio encoder (``audio_encoder`` "musicnn_msd", presets ``musicnn_*``): the backbone is
frozen and its per-patch layers are read from the token cache (``cache.build_token_cache``), so only
the projection, fusion blocks and heads train; augmentation is then a random crop of contiguous
patches and lyrics dropout (gain and noise act on audio the cache has already encoded). The saved
checkpoint holds the backbone's pretrained weights too, so inference runs from the log-mel as usual.

Every epoch writes ``state.pt`` (model, optimizer, scheduler, teacher, history) so a killed run
resumes where it stopped; the random streams are derived from (seed, epoch), so a resumed run is
the run that would have happened. The epoch is chosen on ``val`` (mean macro-F1 over the trained
datasets), never on test; the chosen weights go to ``<out>/best``. Logs: ``log.csv``, ``history.json``.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..config import MUSICNN_FRONTEND, ModelConfig
from ..features import log_mel
from ..model import EmotionModel, MusicnnEncoder, load_pretrained_audio, musicnn_layer
from .baselines import build_model, save_model
from .cache import FeatureCache
from .data import DATASETS, load_clips
from .evaluate import predict_mels, score
from .noise import mix_mel_power, pink_noise, white_noise

# Small enough to train in a few CPU minutes on ~1,500 clips; the shipped model uses these sizes.
SMALL_MODEL = {
    "cnn_stages": [[8, 2, 2], [16, 2, 2], [32, 2, 2], [64, 2, 2]],
    "d_model": 128,
    "n_heads": 4,
    "n_layers": 2,
    "ffn_dim": 256,
    "dropout": 0.1,
}

# name -> (kind, ModelConfig overrides on top of SMALL_MODEL)
MODEL_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "gate": ("emotion", {"fusion": "gate"}),  # ours: cross-modal attention with dynamic fusion gate
    "sum": ("emotion", {"fusion": "sum"}),  # ours without the gate (plain residual sum)
    "transformer": ("emotion", {"fusion": "none"}),  # audio-only Transformer
    "cnn": ("emotion", {"fusion": "none", "n_layers": 0}),  # audio-only CNN (attentive pooling head)
    "crnn": ("crnn", {}),  # audio-only CNN + BiGRU
    "lyrics": ("lyrics", {}),  # lyrics-only
}
# the pretrained musicnn encoder (frozen, tokens from the cache) under the same fusion variants
# (5 central 3 s patches per 30 s window: half the backbone's cost of all 10)
MUSICNN = {
    "audio_encoder": "musicnn_msd",
    "frontend": dataclasses.asdict(MUSICNN_FRONTEND),
    "audio_layer": "penultimate",
    "max_patches": 5,
}
MODEL_PRESETS.update(
    {
        "musicnn_gate": ("emotion", {**MUSICNN, "fusion": "gate"}),
        "musicnn_sum": ("emotion", {**MUSICNN, "fusion": "sum"}),
        "musicnn_audio": ("emotion", {**MUSICNN, "fusion": "none"}),  # audio only, same backbone and blocks
    }
)


@dataclass(frozen=True)
class TrainOptions:
    preset: str = "gate"
    model: dict = field(default_factory=dict)  # ModelConfig overrides on top of the preset
    datasets: tuple = DATASETS
    epochs: int = 10
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-2
    label_smoothing: float = 0.1
    crop_s: tuple = (8.0, 12.0)
    gain_db: float = 6.0
    noise_prob: float = 0.6
    snr_db: tuple = (-3.0, 30.0)
    lyrics_dropout: float = 0.3
    max_lyric_tokens: int = 512  # training sees a random contiguous span of longer lyrics (inference sees all)
    va_weight: float = 1.0
    label_fraction: float = 1.0
    semi_supervised: str = "none"  # "none" | "mean_teacher"
    ema_decay: float = 0.99
    consistency_weight: float = 2.0
    seed: int = 0
    threads: int = 1  # measured: 2 threads ran 3-8x slower than 1 while the shared 2 cores were busy

    @classmethod
    def from_file(cls, path) -> TrainOptions:
        d = json.loads(Path(path).read_text())
        for k in ("datasets", "crop_s", "snr_db"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)

    def replace(self, **kw) -> TrainOptions:
        return dataclasses.replace(self, **kw)

    def model_config(self) -> tuple[str, ModelConfig]:
        kind, preset = MODEL_PRESETS[self.preset]
        d = {**SMALL_MODEL, **preset, **self.model}
        return kind, ModelConfig.from_dict(d)


def select_labelled(clips, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask keeping ``fraction`` of the clips of each (dataset, label), seeded."""
    keep = np.zeros(len(clips), bool)
    if fraction >= 1.0:
        keep[:] = True
        return keep
    rng = np.random.default_rng([seed, 7919])
    groups: dict = {}
    for i, c in enumerate(clips):
        groups.setdefault((c.dataset, c.label), []).append(i)
    for idx in groups.values():
        idx = rng.permutation(idx)
        keep[idx[: max(1, int(round(fraction * len(idx))))]] = True
    return keep


class BatchMaker:
    """Turns clip indices into augmented, padded tensors (numpy work, then torch)."""

    def __init__(self, clips, cache: FeatureCache, cfg: ModelConfig, opts: TrainOptions, labelled: np.ndarray):
        self.clips, self.cache, self.cfg, self.opts, self.labelled = clips, cache, cfg, opts, labelled
        fe = cfg.frontend
        self.fps = fe.sample_rate / fe.hop_length
        self.lyrics = [cache.lyrics.get((c.dataset, c.id)) for c in clips]
        self.task_names = [t.name for t in cfg.tasks]
        self.token_mode = cfg.audio_encoder != "cnn"
        if self.token_mode:  # (n_patches, F) per clip from the frozen encoder's cache
            self.feats = [musicnn_layer(cache.tokens[(c.dataset, c.id)], cfg.audio_layer) for c in clips]
            return
        rng = np.random.default_rng(12345)
        # 40 s of each noise, as log-mels; crops of them are mixed in the mel power domain
        self.noise_mels = {
            "white": log_mel(white_noise(40 * fe.sample_rate, rng), fe),
            "pink": log_mel(pink_noise(40 * fe.sample_rate, rng), fe),
        }
        self.mels = [cache.mels[(c.dataset, c.id)] for c in clips]

    def _crop(self, m, T, rng):
        if m.shape[1] <= T:
            return m.astype(np.float32)
        s = int(rng.integers(0, m.shape[1] - T + 1))
        return m[:, s : s + T].astype(np.float32)

    def _lyrics_view(self, i, rng):
        o = self.opts
        lyr = self.lyrics[i]
        if lyr is not None and rng.random() < o.lyrics_dropout:
            lyr = None
        if lyr is not None and len(lyr) > o.max_lyric_tokens:
            s0 = int(rng.integers(0, len(lyr) - o.max_lyric_tokens + 1))
            lyr = lyr[s0 : s0 + o.max_lyric_tokens]
        return lyr

    def augment_tokens(self, i, T, rng, start=None):
        """A random run of T contiguous cached patches (all when shorter) and the lyrics view."""
        f = self.feats[i]
        if start is None:
            start = int(rng.integers(0, max(1, len(f) - T + 1)))
        return f[start : start + T].astype(np.float32), start, self._lyrics_view(i, rng)

    def augment(self, i, T, rng, start=None):
        if self.token_mode:
            return self.augment_tokens(i, max(1, int(round(T / self.cfg.patch_frames))), rng, start)
        fe, o = self.cfg.frontend, self.opts
        m = self.mels[i]
        if start is None:
            start = int(rng.integers(0, max(1, m.shape[1] - T + 1)))
        x = m[:, start : start + T].astype(np.float32)
        x = x + np.float32(2.0 * math.log(10.0) / 20.0 * rng.uniform(-o.gain_db, o.gain_db))  # power gain in log
        x = np.maximum(x, np.float32(math.log(fe.log_floor)))
        if rng.random() < o.noise_prob:
            kind = ("white", "pink", "music")[int(rng.integers(3))]
            if kind == "music":
                j = int(rng.integers(len(self.mels)))
                j = (j + 1) % len(self.mels) if j == i else j
                n = self._crop(self.mels[j], x.shape[1], rng)
            else:
                n = self._crop(self.noise_mels[kind], x.shape[1], rng)
            if n.shape[1] < x.shape[1]:
                n = np.tile(n, (1, int(math.ceil(x.shape[1] / n.shape[1]))))[:, : x.shape[1]]
            x = mix_mel_power(x, n, float(rng.uniform(*o.snr_db)), fe.log_floor)
        return x, start, self._lyrics_view(i, rng)

    def make(self, idx, rng, two_views=False):
        T = int(rng.uniform(*self.opts.crop_s) * self.fps)
        views: list[list[tuple[Any, Any]]] = [[], []] if two_views else [[]]
        for i in idx:
            x, start, lyr = self.augment(i, T, rng)
            views[0].append((x, lyr))
            if two_views:
                x2, _, lyr2 = self.augment(i, T, rng, start)
                views[1].append((x2, lyr2))
        tensors = [self._to_tensors(v) for v in views]
        targets = self._targets(idx)
        return tensors, targets

    def _to_tensors(self, items):
        from ..text_encoder import pad_embeddings

        if self.token_mode:  # (T, F) token features, padded in time (axis 1 of the batch)
            lengths = np.array([x.shape[0] for x, _ in items], np.int64)
            mel = np.zeros((len(items), lengths.max(), items[0][0].shape[1]), np.float32)
            for j, (x, _) in enumerate(items):
                mel[j, : x.shape[0]] = x
        else:
            lengths = np.array([x.shape[1] for x, _ in items], np.int64)
            mel = np.zeros((len(items), items[0][0].shape[0], lengths.max()), np.float32)
            for j, (x, _) in enumerate(items):
                mel[j, :, : x.shape[1]] = x
        emb, mask = pad_embeddings(
            [None if ly is None else ly.astype(np.float32) for _, ly in items], self.cfg.text_encoder.hidden_size
        )
        return torch.from_numpy(mel), torch.from_numpy(lengths), torch.from_numpy(emb), torch.from_numpy(mask)

    def _targets(self, idx):
        y = {t: torch.full((len(idx),), -1, dtype=torch.long) for t in self.task_names}
        va = torch.zeros(len(idx), 2)
        va_mask = torch.zeros(len(idx))
        dataset_task = torch.full((len(idx),), -1, dtype=torch.long)
        for j, i in enumerate(idx):
            c = self.clips[i]
            dataset_task[j] = self.task_names.index(c.task)
            if self.labelled[i]:
                y[c.task][j] = c.label
                va[j] = torch.tensor(c.va)
                va_mask[j] = 1.0
        return y, va, va_mask, dataset_task


def supervised_loss(out, targets, opts: TrainOptions):
    y, va, va_mask, _ = targets
    loss = out["va"].new_zeros(())
    parts = {}
    for t, yt in y.items():
        if (yt >= 0).any():
            lt = F.cross_entropy(out[t], yt, ignore_index=-1, label_smoothing=opts.label_smoothing)
            loss = loss + lt
            parts[t] = lt.item()
    if va_mask.sum() > 0:
        lv = (((out["va"] - va) ** 2).sum(1) * va_mask).sum() / va_mask.sum()
        loss = loss + opts.va_weight * lv
        parts["va"] = lv.item()
    return loss, parts


def consistency_loss(student, teacher, targets, task_names):
    """MSE between student and teacher probabilities (each clip's own task) and VA outputs."""
    _, _, _, dataset_task = targets
    loss = student["va"].new_zeros(())
    for t_idx in torch.unique(dataset_task).tolist():
        sel = dataset_task == t_idx
        name = task_names[t_idx]
        p_s = torch.softmax(student[name][sel], -1)
        p_t = torch.softmax(teacher[name][sel], -1)
        loss = loss + ((p_s - p_t) ** 2).sum(-1).mean()
    return loss + ((student["va"] - teacher["va"]) ** 2).sum(-1).mean()


def evaluate_cached(model, clips_by_ds, cache: FeatureCache, cfg: ModelConfig):
    """Whole-clip scores on cached features (val selection); returns {dataset: metrics}."""
    return {ds: score(clips, p) for ds, (clips, p) in predict_cached(model, clips_by_ds, cache, cfg).items()}


def predict_cached(model, clips_by_ds, cache: FeatureCache, cfg: ModelConfig, lyrics: bool = True):
    """{dataset: (clips, predictions)} on cached features; whole clips (every cached patch/frame)."""
    model.eval()
    res = {}
    for ds, clips in clips_by_ds.items():
        tokens = cfg.audio_encoder != "cnn"
        feats = [
            musicnn_layer(cache.tokens[(ds, c.id)], cfg.audio_layer).astype(np.float32)
            if tokens
            else cache.mels[(ds, c.id)].astype(np.float32)
            for c in clips
        ]
        lyr = [
            None if not lyrics or (ds, c.id) not in cache.lyrics else cache.lyrics[(ds, c.id)].astype(np.float32)
            for c in clips
        ]
        res[ds] = (clips, predict_mels(model, feats, lyr, cfg.text_encoder.hidden_size, features=tokens))
    return res


def _forward(model: torch.nn.Module, batch, token_mode: bool) -> dict:
    """One batch through ``model``: from cached audio tokens (``forward_features``) in token mode."""
    if token_mode:
        assert isinstance(model, EmotionModel)  # the only model that runs from cached tokens
        return model.forward_features(*batch)
    return model(*batch)


def train(
    opts: TrainOptions,
    data_dir,
    cache_dir,
    out_dir,
    resume=True,
    log=logging.getLogger("mersdk.training").info,
    stop_after_epoch: int | None = None,
) -> dict | None:
    """Train (or resume) a run; returns the best-on-val record (None when no epoch ran: ``epochs=0``).
    ``stop_after_epoch`` ends this call early after that epoch, as a kill would (used to test that
    resuming gives the same run)."""
    torch.set_num_threads(opts.threads)
    torch.use_deterministic_algorithms(True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kind, cfg = opts.model_config()
    datasets = ("mirex_mm",) if kind == "lyrics" else tuple(opts.datasets)
    (out / "options.json").write_text(json.dumps(dataclasses.asdict(opts), indent=2) + "\n")
    cache = FeatureCache(cache_dir, datasets, tokens=cfg.audio_encoder if cfg.audio_encoder != "cnn" else None)
    if cfg.audio_encoder != "cnn" and cache.token_max_patches != cfg.max_patches:
        raise ValueError(
            f"{cache_dir}: tokens cached with max_patches={cache.token_max_patches}, the model "
            f"has {cfg.max_patches}: rebuild with `mersdk train cache-tokens --max-patches`"
        )
    all_clips = {ds: load_clips(data_dir, ds) for ds in datasets}
    train_clips = [c for ds in datasets for c in all_clips[ds] if c.split == "train"]
    if kind == "lyrics":
        train_clips = [c for c in train_clips if (c.dataset, c.id) in cache.lyrics]
    val_clips = {ds: [c for c in all_clips[ds] if c.split == "val"] for ds in datasets}
    if kind == "lyrics":
        val_clips = {ds: [c for c in v if (ds, c.id) in cache.lyrics] for ds, v in val_clips.items()}
    labelled = select_labelled(train_clips, opts.label_fraction, opts.seed)
    mean_teacher = opts.semi_supervised == "mean_teacher"
    if not mean_teacher:  # supervised only: unlabelled clips are simply not used
        train_clips = [c for c, k in zip(train_clips, labelled) if k]
        labelled = np.ones(len(train_clips), bool)
    lyr_drop = 0.0 if kind == "lyrics" else opts.lyrics_dropout
    maker = BatchMaker(train_clips, cache, cfg, opts.replace(lyrics_dropout=lyr_drop), labelled)

    torch.manual_seed(opts.seed)
    model = build_model(kind, cfg)
    if isinstance(model, EmotionModel) and load_pretrained_audio(model):  # frozen: trained from its token cache
        assert isinstance(model.audio, MusicnnEncoder)  # the only encoder with pretrained weights
        for p in model.audio.backbone.parameters():
            p.requires_grad_(False)
    teacher = copy.deepcopy(model) if mean_teacher else None
    if teacher is not None:
        for p in teacher.parameters():
            p.requires_grad_(False)
    optim = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=opts.lr, weight_decay=opts.weight_decay
    )
    steps_per_epoch = math.ceil(len(train_clips) / opts.batch_size)
    total = steps_per_epoch * opts.epochs
    warm = steps_per_epoch

    def lr_at(step):  # linear warm-up for one epoch, then cosine to 2% of the peak
        if step < warm:
            return (step + 1) / warm
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_at)
    history, best, start_epoch = [], None, 0
    state_path = out / "state.pt"
    if resume and state_path.is_file():
        st = torch.load(state_path, weights_only=False)
        model.load_state_dict(st["model"])
        optim.load_state_dict(st["optim"])
        sched.load_state_dict(st["sched"])
        if teacher is not None:
            teacher.load_state_dict(st["teacher"])
        history, best, start_epoch = st["history"], st["best"], st["epoch"] + 1
        log(f"resumed {out} at epoch {start_epoch}")
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log(
        f"{out.name}: {kind}/{opts.preset}, {n_params} parameters, {len(train_clips)} train clips "
        f"({int(labelled.sum())} labelled), datasets {datasets}"
    )

    for epoch in range(start_epoch, opts.epochs):
        t0 = time.time()
        rng = np.random.default_rng([opts.seed, epoch])
        torch.manual_seed(opts.seed * 1000 + epoch)
        model.train()
        order = rng.permutation(len(train_clips))
        sums: dict[str, float] = {}
        step = epoch * steps_per_epoch
        for b in range(steps_per_epoch):
            idx = order[b * opts.batch_size : (b + 1) * opts.batch_size]
            views, targets = maker.make(idx, rng, two_views=mean_teacher)
            out_s = _forward(model, views[0], maker.token_mode)
            loss, parts = supervised_loss(out_s, targets, opts)
            if mean_teacher:
                assert teacher is not None  # made above for mean_teacher
                teacher.train()  # dropout on in the teacher too, as in the paper; no gradient
                with torch.no_grad():
                    out_t = _forward(teacher, views[1], maker.token_mode)
                ramp = math.exp(-5.0 * (1.0 - min(1.0, step / (0.3 * total))) ** 2)
                lc = consistency_loss(out_s, out_t, targets, maker.task_names)
                loss = loss + opts.consistency_weight * ramp * lc
                parts["consistency"] = lc.item()
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 5.0)
            optim.step()
            sched.step()
            step += 1
            if teacher is not None:
                a = min(opts.ema_decay, (step + 1) / (step + 10))
                with torch.no_grad():
                    for pt, ps in zip(teacher.state_dict().values(), model.state_dict().values()):
                        if pt.dtype.is_floating_point:
                            pt.mul_(a).add_(ps.detach(), alpha=1 - a)
                        else:
                            pt.copy_(ps)
            parts["loss"] = loss.item()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
        train_s = time.time() - t0
        eval_model = teacher if teacher is not None else model
        val = evaluate_cached(eval_model, val_clips, cache, cfg)
        sel = float(np.mean([v["macro_f1"] for v in val.values()]))
        row = {
            "epoch": epoch,
            "train_s": round(train_s, 1),
            "lr": sched.get_last_lr()[0],
            **{f"train_{k}": v / steps_per_epoch for k, v in sums.items()},
            **{f"val_{ds}_{m}": v[m] for ds, v in val.items() for m in ("accuracy", "macro_f1")},
            **{f"val_{ds}_ccc": v["va"]["mean_ccc"] for ds, v in val.items()},
            "val_selection": sel,
        }
        history.append(row)
        improved = best is None or sel > best["val_selection"]
        if improved:
            best = {
                "epoch": epoch,
                "val_selection": sel,
                "val": {
                    ds: {
                        "accuracy": v["accuracy"],
                        "macro_f1": v["macro_f1"],
                        "roc_auc": v["roc_auc"],
                        "n": v["n"],
                        "va_mean_ccc": v["va"]["mean_ccc"],
                    }
                    for ds, v in val.items()
                },
            }
            save_model(
                eval_model,
                kind,
                out / "best",
                {
                    "trained": True,
                    "preset": opts.preset,
                    "datasets": list(datasets),
                    "epoch": epoch,
                    "selected_on": "val (mean macro-F1 over trained datasets)",
                    "val": best["val"],
                    "label_fraction": opts.label_fraction,
                    "semi_supervised": opts.semi_supervised,
                    "seed": opts.seed,
                },
            )
        torch.save(
            {
                "model": model.state_dict(),
                "optim": optim.state_dict(),
                "sched": sched.state_dict(),
                "teacher": teacher.state_dict() if teacher is not None else None,
                "history": history,
                "best": best,
                "epoch": epoch,
            },
            state_path,
        )
        with open(out / "log.csv", "w", newline="") as f:
            keys = list(dict.fromkeys(k for r in history for k in r))
            w = csv.DictWriter(f, keys)
            w.writeheader()
            w.writerows(history)
        (out / "history.json").write_text(json.dumps({"history": history, "best": best}, indent=1) + "\n")
        log(
            f"epoch {epoch:2d} loss {row['train_loss']:.3f} "
            + " ".join(
                f"{ds}: acc {v['accuracy']:.3f} F1 {v['macro_f1']:.3f} CCC {v['va']['mean_ccc']:.3f}"
                for ds, v in val.items()
            )
            + f" ({train_s:.0f}s){' *' if improved else ''}"
        )
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
    return best
