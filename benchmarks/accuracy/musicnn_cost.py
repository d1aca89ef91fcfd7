"""Cost of the musicnn encoder per 30 s clip, and what fewer patches cost in accuracy (val only).

    python benchmarks/accuracy/musicnn_cost.py latency --run runs/mgate_s0/best   # CPU, 1 thread
    python benchmarks/accuracy/musicnn_cost.py patches --run runs/mgate_s0/best   # val macro-F1 vs patches

``latency``: median of ``--repeats`` forwards of one 30 s clip (front end excluded, then included) for
a baseline checkpoint (the previous CNN model) and the musicnn model, 1 thread, in the same run (report the ratio; the machine is
shared, so the load is printed beside). ``patches``: the model run on only the k central 3 s patches
of each val clip (from the token cache) against all of them: the accuracy a k-patch inference keeps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
DATASETS = ("mirex_mm", "quadrants_4q")


def _median_s(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def cmd_latency(args):
    import torch

    from mersdk.features import log_mel
    from mersdk.training.baselines import load_model

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(30 * 16000)).astype(np.float32)
    out = {"load_before": os.getloadavg()}
    for name, path in (("baseline", args.baseline), ("musicnn", args.run)):
        model, _, cfg, _, _ = load_model(path)
        n_params = sum(p.numel() for p in model.parameters())
        mel = torch.from_numpy(log_mel(wave, cfg.frontend))[None]
        lyr, mask = torch.zeros(1, 1, 384), torch.zeros(1, 1, dtype=torch.bool)
        with torch.inference_mode():
            fwd = _median_s(lambda: model(mel, torch.tensor([mel.shape[-1]]), lyr, mask), args.repeats)
            fe = _median_s(lambda: log_mel(wave, cfg.frontend), args.repeats)
            res = {"params": n_params, "forward_s": round(fwd, 4), "front_end_s": round(fe, 4)}
            if cfg.audio_encoder != "cnn":
                full = model.audio.max_patches
                for k in (3, 1):  # a model with max_patches=k: the k central patches only
                    model.audio.max_patches = k
                    res[f"forward_{k}_patches_s"] = round(
                        _median_s(lambda: model(mel, torch.tensor([mel.shape[-1]]), lyr, mask), args.repeats), 4
                    )
                model.audio.max_patches = full
        out[name] = res
        print(name, res, flush=True)
    out["load_after"] = os.getloadavg()
    out["ratio_forward"] = round(out["musicnn"]["forward_s"] / out["baseline"]["forward_s"], 2)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))


def cmd_patches(args):
    from mersdk.training.baselines import load_model
    from mersdk.training.cache import FeatureCache
    from mersdk.training.data import load_clips
    from mersdk.training.evaluate import score
    from mersdk.training.train import predict_cached

    model, _, cfg, _, _ = load_model(args.run)
    cache = FeatureCache(args.cache, DATASETS, tokens=cfg.audio_encoder)
    clips = {ds: [c for c in load_clips(args.data, ds) if c.split == "val"] for ds in DATASETS}
    full = {k: dict(v) for k, v in cache.tokens.items()}
    res = {}
    for k in (5, 3, 1):  # the cache holds the 5 central patches; their central k = the clip's central k
        for key, layers in full.items():
            n = len(next(iter(layers.values())))
            first = max(0, (n - k) // 2)
            cache.tokens[key] = {name: a[first : first + k] for name, a in layers.items()}
        preds = predict_cached(model, clips, cache, cfg)
        res[k] = {ds: round(score(c, p)["macro_f1"], 4) for ds, (c, p) in preds.items()}
        print(k, "central patches: val macro-F1", res[k], flush=True)
    Path(args.out).write_text(json.dumps({"val_macro_f1_by_patches": res}, indent=1) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["latency", "patches"])
    ap.add_argument("--run", required=True)
    ap.add_argument("--baseline", help="checkpoint to compare with in the same run (default: the bundled model)")
    ap.add_argument("--data", default=str(HERE.parents[2] / "shared" / "data"))
    ap.add_argument("--cache", default="cache_musicnn")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    args.out = args.out or str(HERE / "results" / f"musicnn_{args.command}.json")
    {"latency": cmd_latency, "patches": cmd_patches}[args.command](args)


if __name__ == "__main__":
    main()
