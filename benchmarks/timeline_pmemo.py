"""Timelines against listener ratings: the 4 PMEmo sample clips (valence/arousal rated at 2 Hz).

For each clip, ``Recognizer.analyze`` runs with its default settings (10 s windows, 5 s hop,
smoothing 3) and the clip's plain lyrics; the model's valence/arousal curve (segment centres,
linearly interpolated) is compared with the listeners' curve at the rating times: Pearson r per clip
and per dimension, plus the static means. Nothing here is tuned to these clips: four clips say very
little, and they are reported whatever the figures are.

    python benchmarks/timeline_pmemo.py [--data ../shared/data] [--out benchmarks/results]

Writes ``timeline_pmemo.{md,json}`` and ``timeline_pmemo.png`` (model vs listeners over time).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr

import mersdk


def compare_clip(rec, audio: Path, meta: dict) -> dict:
    res = rec.analyze(audio, lyrics=meta.get("lyrics") or None)
    centres = np.array([(s.start_s + s.end_s) / 2 for s in res.timeline])
    dyn = meta["dynamic"]
    t = np.asarray(dyn["t"], float)
    out = {
        "id": meta["id"],
        "title": meta["title"],
        "artist": meta["artist"],
        "n_ratings": int(t.size),
        "n_segments": len(res.timeline),
    }
    curves = {}
    for key, name in (("v", "valence"), ("a", "arousal")):
        model = np.interp(t, centres, [getattr(s, name) for s in res.timeline])
        listeners = np.asarray(dyn[key], float)
        r, p = (
            pearsonr(model, listeners) if np.std(model) > 0 and np.std(listeners) > 0 else (float("nan"), float("nan"))
        )
        out[f"{name}_pearson_r"] = float(r)
        out[f"{name}_p_value"] = float(p)
        # listeners rate in [0, 1]; the model's scale is [-1, 1]
        out[f"{name}_static_listeners"] = float(meta[f"{name}_mean"] * 2 - 1)
        out[f"{name}_static_model"] = float(getattr(res.summary, name))
        curves[name] = (t, model, listeners * 2 - 1)
    out["label"] = res.summary.label
    return out, curves


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args()
    folder = Path(args.data) / "pmemo_samples"
    if not folder.is_dir():
        print(f"no {folder}: the PMEmo samples are on the project's development machines only", file=sys.stderr)
        return 2
    rec = mersdk.Recognizer(backend="torch")
    rows, curves = [], {}
    for js in sorted(folder.glob("*.json")):
        meta = json.loads(js.read_text(encoding="utf-8"))
        row, c = compare_clip(rec, js.with_suffix(".opus"), meta)
        rows.append(row)
        curves[row["id"]] = c
        print(row)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = rec.info()
    report = {
        "command": " ".join(["python", "benchmarks/timeline_pmemo.py"] + sys.argv[1:]),
        "machine": platform.platform(),
        "model": info["model"]["hash"],
        "backend": info["backend"],
        "analyze": "defaults: window_s=10, hop_s=5, context_s=2, smooth=3; plain lyrics",
        "clips": rows,
    }
    (out / "timeline_pmemo.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [
        "# Timelines vs listener ratings (PMEmo samples, 2 Hz)",
        "",
        f"Command: `{report['command']}`; model `{report['model']}`; backend {info['backend']['name']}; "
        f"`Recognizer.analyze` {report['analyze']}. Pearson r between the model's curve "
        "(interpolated at the rating times) and the listeners' mean curve; static = the clip's mean, "
        "listeners rescaled from [0, 1] to [-1, 1]. Four clips: read as a smoke test, not a score.",
        "",
        "| clip | ratings | segments | valence r | arousal r | static valence (listeners / model) | static arousal (listeners / model) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['id']} {r['artist']} - {r['title']} | {r['n_ratings']} | {r['n_segments']} | "
            f"{r['valence_pearson_r']:+.2f} | {r['arousal_pearson_r']:+.2f} | "
            f"{r['valence_static_listeners']:+.2f} / {r['valence_static_model']:+.2f} | "
            f"{r['arousal_static_listeners']:+.2f} / {r['arousal_static_model']:+.2f} |"
        )
    (out / "timeline_pmemo.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return 0
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 2.4 * len(rows)), squeeze=False)
    for i, r in enumerate(rows):
        for j, name in enumerate(("valence", "arousal")):
            t, model, listeners = curves[r["id"]][name]
            ax = axes[i, j]
            ax.plot(t, listeners, label="listeners (rescaled)")
            ax.plot(t, model, label="model")
            ax.set_ylim(-1, 1)
            ax.set_title(f"{r['id']} {r['title'][:30]}: {name}, r = {r[f'{name}_pearson_r']:+.2f}", fontsize=9)
            if i == len(rows) - 1:
                ax.set_xlabel("time (s)")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "timeline_pmemo.png", dpi=100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
