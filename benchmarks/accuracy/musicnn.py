"""Experiments with the pretrained musicnn encoder (issue 10): layer probe, fused heads, tables, ship.

All choices on val, test reported (fixed artist-disjoint splits). The frozen backbone's per-patch
layers come from the token cache, so the runs train only the projection, fusion blocks and heads.

    mersdk train cache --preset musicnn_gate --data ../shared/data --out cache_musicnn   # log-mels + lyrics
    mersdk train cache-tokens --cache cache_musicnn --max-patches 5                       # frozen backbone
    python benchmarks/accuracy/musicnn.py probe     # linear probe of each candidate layer on val
    python benchmarks/accuracy/musicnn.py train     # the runs in RUNS (resumable)
    python benchmarks/accuracy/musicnn.py table     # val + test (95 % bootstrap intervals), seeds
    python benchmarks/accuracy/musicnn.py ship      # the rule below -> mersdk/models/default
    python benchmarks/accuracy/musicnn.py shipped-test --datasets mirex_mm   # end to end, one per process
    python benchmarks/accuracy/musicnn.py ship-finalize   # those test figures into the bundled metadata

The model (preset ``musicnn_*``: ``max_patches=5``) sees the 5 central 3 s patches of each 30 s window:
half the backbone's cost of all 10, and what the shared 2-core machine could encode in the time there
was (not chosen on val). Test figures here are computed on the cached tokens of whole clips, which is
what the Recognizer computes for clips up to 30 s (one window); `mersdk evaluate` re-measures the
shipped model end to end.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

DATASETS = ("mirex_mm", "quadrants_4q")
LAYERS = ("penultimate", "mean_pool", "pooled", "taggram")  # max_pool alone not probed (time)
SEEDS = (0, 1, 2)
COMMON = {"epochs": 15, "crop_s": [6.0, 15.0]}  # 15 epochs: ~40 s each on the shared machine
# name -> TrainOptions fields; the layer comes from the probe (chosen on val)
RUNS = {
    **{f"mgate_s{s}": {"preset": "musicnn_gate", "seed": s, **COMMON} for s in SEEDS},
    **{f"maudio_s{s}": {"preset": "musicnn_audio", "seed": s, **COMMON} for s in SEEDS},
}


def _layer(args) -> str:
    f = Path(args.results) / "musicnn_probe.json"
    return json.loads(f.read_text())["chosen_layer"] if f.is_file() else "penultimate"


def cmd_probe(args):
    """Logistic regression on the clip-mean of each layer (standardised, balanced classes), C chosen on
    val per layer and dataset; the layer with the best mean val macro-F1 over both datasets is chosen."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import StandardScaler

    from mersdk.model import musicnn_layer
    from mersdk.training.cache import FeatureCache
    from mersdk.training.data import load_clips

    parts = Path(args.results) / "musicnn_probe_parts"
    parts.mkdir(parents=True, exist_ok=True)
    res = {}
    for ds in DATASETS:
        todo = [layer for layer in LAYERS if not (parts / f"{layer}_{ds}.json").is_file()]
        if todo and ds in args.datasets:
            cache = FeatureCache(args.cache, (ds,), tokens="musicnn_msd")
            clips = load_clips(args.data, ds)
        for layer in todo:
            if ds not in args.datasets:
                continue
            xy = {}
            for split in ("train", "val"):
                cs = [c for c in clips if c.split == split]
                x = np.stack([musicnn_layer(cache.tokens[(ds, c.id)], layer).astype(np.float32).mean(0) for c in cs])
                xy[split] = (x, np.array([c.label for c in cs]))
            sc = StandardScaler().fit(xy["train"][0])
            best = None
            for C in (0.001, 0.01, 0.1, 1.0):
                clf = LogisticRegression(C=C, max_iter=2000, class_weight="balanced")
                clf.fit(sc.transform(xy["train"][0]), xy["train"][1])
                f1 = f1_score(xy["val"][1], clf.predict(sc.transform(xy["val"][0])), average="macro")
                if best is None or f1 > best[1]:
                    best = (C, f1)
            r = {"C": best[0], "val_macro_f1": round(float(best[1]), 4)}
            (parts / f"{layer}_{ds}.json").write_text(json.dumps(r) + "\n")
            print(layer, ds, r, flush=True)
        for layer in LAYERS:
            f = parts / f"{layer}_{ds}.json"
            if f.is_file():
                res[f"{layer}/{ds}"] = json.loads(f.read_text())
    if len(res) < len(LAYERS) * len(DATASETS):
        print("probe: parts missing; run again with both datasets when their caches exist")
        return
    score = {layer: float(np.mean([res[f"{layer}/{ds}"]["val_macro_f1"] for ds in DATASETS])) for layer in LAYERS}
    chosen = max(score, key=score.get)
    out = {
        "probe": res,
        "mean_val_macro_f1": score,
        "chosen_layer": chosen,
        "protocol": "clip-mean features, StandardScaler, LogisticRegression(class_weight=balanced), C on val",
    }
    (Path(args.results) / "musicnn_probe.json").write_text(json.dumps(out, indent=1) + "\n")
    lines = ["| layer (width) | mirex_mm val macro-F1 | quadrants_4q val macro-F1 | mean |", "|---|---|---|---|"]
    from mersdk.model import MUSICNN_LAYERS

    for layer in LAYERS:
        lines.append(
            f"| {layer} ({MUSICNN_LAYERS[layer]}){' **chosen**' if layer == chosen else ''} | "
            + " | ".join(f"{res[f'{layer}/{ds}']['val_macro_f1']:.3f}" for ds in DATASETS)
            + f" | {score[layer]:.3f} |"
        )
    (Path(args.results) / "musicnn_probe.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def cmd_train(args):
    import torch

    from mersdk.training.train import TrainOptions, train

    layer = _layer(args)
    names = args.only or list(RUNS)
    for name in names:
        spec = dict(RUNS[name])
        spec["crop_s"] = tuple(spec["crop_s"])
        opts = TrainOptions(**spec, model={"audio_layer": layer, **spec.pop("model", {})})
        torch.set_num_threads(1)
        best = train(
            opts,
            data_dir=args.data,
            cache_dir=args.cache,
            out_dir=Path(args.runs) / name,
            log=lambda m: print(m, flush=True),
        )
        print(name, "best", best["epoch"], round(best["val_selection"], 4), flush=True)


def _predict(args, name, split, lyrics=True):
    from mersdk.training.baselines import load_model
    from mersdk.training.data import load_clips
    from mersdk.training.train import predict_cached

    model, kind, cfg, meta, _ = load_model(Path(args.runs) / name / "best")
    cache = _cache(args)
    clips = {ds: [c for c in load_clips(args.data, ds) if c.split == split] for ds in DATASETS}
    return predict_cached(model, clips, cache, cfg, lyrics=lyrics), meta


_CACHE = {}


def _cache(args):
    from mersdk.training.cache import FeatureCache

    if "c" not in _CACHE:
        _CACHE["c"] = FeatureCache(args.cache, DATASETS, tokens="musicnn_msd")
    return _CACHE["c"]


def cmd_table(args):
    """Val (selection) and test figures of every finished run; gate runs also with lyrics withheld."""
    from mersdk.training.data import labels_of
    from mersdk.training.evaluate import score
    from mersdk.training.metrics import bootstrap_ci

    rows = {}
    for name in RUNS:
        if not (Path(args.runs) / name / "best").is_dir():
            continue
        variants = [("", True)] + ([(" lyrics withheld", False)] if "gate" in name else [])
        for suffix, lyr in variants:
            r = {}
            for split in ("val", "test"):
                preds, meta = _predict(args, name, split, lyrics=lyr)
                for ds, (clips, p) in preds.items():
                    s = score(clips, p)
                    task = clips[0].task
                    e = {
                        "macro_f1": s["macro_f1"],
                        "accuracy": s["accuracy"],
                        "roc_auc": s["roc_auc"],
                        "va_mean_ccc": s["va"]["mean_ccc"],
                        "n": s["n"],
                    }
                    if split == "test":
                        ci = bootstrap_ci([c.label for c in clips], p[task], len(labels_of(task)), n_resamples=1000)
                        e["macro_f1_ci95"] = ci["macro_f1"]
                    if ds == "mirex_mm":  # the clips with lyrics only, where lyrics can matter
                        keep = [i for i, c in enumerate(clips) if c.lyrics_path is not None]
                        sub = score([clips[i] for i in keep], {k: v[keep] for k, v in p.items()})
                        e["macro_f1_with_lyrics_only"] = sub["macro_f1"]
                    r[f"{split}/{ds}"] = e
            r["best_epoch"] = meta.get("epoch")
            rows[name + suffix] = r
            print(name + suffix, {k: round(v["macro_f1"], 3) for k, v in r.items() if isinstance(v, dict)}, flush=True)
    (Path(args.results) / "musicnn_runs.json").write_text(json.dumps(rows, indent=1) + "\n")
    _write_md(args, rows)


def _write_md(args, rows):
    def agg(prefix, key):
        names = [
            n
            for n in rows
            if n.rsplit(" lyrics", 1)[0].rsplit("_s", 1)[0] == prefix.split(" ")[0]
            and (" lyrics withheld" in n) == (" lyrics withheld" in prefix)
        ]
        v = [rows[n][key]["macro_f1"] for n in names if key in rows[n]]
        return (float(np.mean(v)), float(np.std(v)), len(v)) if v else None

    lines = [
        "| run | val mirex_mm | val 4q | val selection | test mirex_mm macro-F1 [95 % CI] | "
        "test mirex_mm, clips with lyrics | test quadrants_4q macro-F1 [95 % CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, r in rows.items():
        sel = np.mean([r[f"val/{ds}"]["macro_f1"] for ds in DATASETS])
        t = [r[f"test/{ds}"] for ds in DATASETS]
        lines.append(
            f"| {n} | {r['val/mirex_mm']['macro_f1']:.3f} | {r['val/quadrants_4q']['macro_f1']:.3f} | {sel:.3f} | "
            f"{t[0]['macro_f1']:.3f} [{t[0]['macro_f1_ci95'][0]:.3f}, {t[0]['macro_f1_ci95'][1]:.3f}] | "
            f"{t[0]['macro_f1_with_lyrics_only']:.3f} | "
            f"{t[1]['macro_f1']:.3f} [{t[1]['macro_f1_ci95'][0]:.3f}, {t[1]['macro_f1_ci95'][1]:.3f}] |"
        )
    lines += [
        "",
        "| model (mean ± sd over seeds) | seeds | test mirex_mm macro-F1 | test quadrants_4q macro-F1 |",
        "|---|---|---|---|",
    ]
    for prefix in ("mgate", "mgate lyrics withheld", "maudio"):
        a = [agg(prefix, f"test/{ds}") for ds in DATASETS]
        if a[0]:
            lines.append(f"| {prefix} | {a[0][2]} | {a[0][0]:.3f} ± {a[0][1]:.3f} | {a[1][0]:.3f} ± {a[1][1]:.3f} |")
    (Path(args.results) / "musicnn_runs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def cmd_ship(args):
    """Rule fixed before the runs: among the gated musicnn runs trained on both sets, the best val
    selection score (mean val macro-F1 over both datasets); it replaces the bundled model only if it
    beats the bundled model's own val selection score (stored in its metadata)."""
    import dataclasses

    from mersdk.checkpoint import DEFAULT_MODEL_DIR, read_checkpoint, save_checkpoint
    from mersdk.training.baselines import load_model

    bundled = read_checkpoint(None).metadata
    bundled_val = bundled["val_selection_scores"][bundled["run"]]
    cands = {
        n: json.loads((Path(args.runs) / n / "history.json").read_text())["best"]["val_selection"]
        for n in RUNS
        if n.startswith("mgate") and (Path(args.runs) / n / "history.json").is_file()
    }
    name = max(cands, key=cands.get)
    print("val selection:", {n: round(v, 4) for n, v in cands.items()}, f"bundled {bundled['run']} {bundled_val:.4f}")
    if cands[name] <= bundled_val:
        print(f"the bundled model stays: {name} ({cands[name]:.4f}) does not beat it on val")
        return
    model, kind, cfg, meta, _ = load_model(Path(args.runs) / name / "best")
    model.cfg = dataclasses.replace(
        cfg,
        description=(
            "mersdk default model: pretrained musicnn MSD_musicnn audio encoder (frozen; Pons & Serra 2019, ISC licence) "
            "+ MiniLM lyric tokens, cross-modal attention with a dynamic fusion gate; heads trained on mirex_mm "
            "(audio+lyrics, 5 MIREX clusters) and quadrants_4q (audio, Russell quadrants); valence/arousal are "
            "regressed on derived VA targets (quadrant signs, Warriner lexicon values of mood adjectives), not "
            "listener ratings"
        ),
    )
    scores = dict(bundled["val_selection_scores"]) | cands
    meta = dict(meta) | {
        "trained": True,
        "run": name,
        "data": bundled["data"],
        "val_selection_scores": scores,
        "val_selection_rule": "best mean val macro-F1 over both datasets among gated runs; ships "
        "only above the bundled model's own val score",
    }
    ck = save_checkpoint(model, DEFAULT_MODEL_DIR, meta)
    print(
        f"shipped {name} -> {ck.path} ({ck.weights_path.stat().st_size / 1e6:.2f} MB, hash {ck.model_hash}); "
        "now `shipped-test` per dataset, then `ship-finalize`"
    )


def cmd_shipped_test(args):
    """The bundled model end to end (audio files -> Recognizer windows -> log-mel -> backbone) on the
    test split, with 95 % bootstrap intervals; ``--snr`` adds noise like `mersdk evaluate`."""
    from mersdk.training.evaluate import evaluate_checkpoint

    for ds in args.datasets:
        for lyrics in (True, False) if ds == "mirex_mm" and args.snr is None else (True,):
            r = evaluate_checkpoint(None, args.data, ds, "test", snr_db=args.snr, noise=args.noise, lyrics=lyrics)
            tag = f"{ds}{'' if lyrics else '_no_lyrics'}{'' if args.snr is None else f'_snr{args.snr:g}_{args.noise}'}"
            (Path(args.results) / f"musicnn_shipped_test_{tag}.json").write_text(json.dumps(r, indent=1) + "\n")
            print(tag, round(r["macro_f1"], 4), r["ci95"]["macro_f1"], flush=True)


def cmd_ship_finalize(args):
    from mersdk.checkpoint import DEFAULT_MODEL_DIR, read_checkpoint, save_checkpoint
    from mersdk.training.baselines import load_model

    model, _, _, meta, _ = load_model(None)
    meta = dict(meta)
    meta["test"] = {}
    for ds in DATASETS:
        r = json.loads((Path(args.results) / f"musicnn_shipped_test_{ds}.json").read_text())
        meta["test"][ds] = {
            "n": r["n"],
            "accuracy": r["accuracy"],
            "macro_f1": r["macro_f1"],
            "roc_auc": r["roc_auc"],
            "va_mean_ccc": r["va"]["mean_ccc"],
            "va_targets": "derived",
        }
    ck = save_checkpoint(model, DEFAULT_MODEL_DIR, meta)
    assert ck.model_hash == read_checkpoint(None).model_hash
    print("test figures stored:", meta["test"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["probe", "train", "table", "ship", "shipped-test", "ship-finalize"])
    ap.add_argument("--data", default=str(HERE.parents[2] / "shared" / "data"))
    ap.add_argument("--cache", default="cache_musicnn")
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--results", default=str(HERE / "results"))
    ap.add_argument("--only", nargs="+", choices=list(RUNS))
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--snr", type=float)
    ap.add_argument("--noise", default="white", choices=["white", "pink", "music"])
    args = ap.parse_args()
    {
        "probe": cmd_probe,
        "train": cmd_train,
        "table": cmd_table,
        "ship": cmd_ship,
        "shipped-test": cmd_shipped_test,
        "ship-finalize": cmd_ship_finalize,
    }[args.command](args)


if __name__ == "__main__":
    main()
