"""What each way of cutting the lyric cost buys, and what it changes (issue 14, item 2).

For every option: the text encoder's time per song (real mirex_mm lyrics, one call per song, the
backend's default threads unless the option sets them) and, on the mirex_mm val split with the
bundled model, how far its predictions move from the current outputs (the torch backend, lyrics in
windows) and the val macro-F1 of the cluster task. Options that change the encoder's inputs
("lines", shorter windows) are scored with a model trained on windows: their F1 says what they cost
this model, not what a model trained that way would reach.

    python benchmarks/lyric_cost.py --json benchmarks/results/lyric_cost.json --md benchmarks/results/lyric_cost.md
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mersdk import Recognizer
from mersdk.audio import load_audio
from mersdk.bench import DEFAULT_DATA, _pcts, machine
from mersdk.lyrics import load_lyrics


def val_clips(data: Path) -> list[dict]:
    folder = data / "mirex_mm"
    with open(folder / "splits.csv") as f:
        split = {r["id"]: r["split"] for r in csv.DictReader(f)}
    with open(folder / "labels.csv") as f:
        labels = list(csv.DictReader(f))
    out = []
    for r in labels:
        if split.get(r["id"]) != "val":
            continue
        lyr = folder / "lyrics" / f"{r['id']}.txt"
        out.append(
            {
                "id": r["id"],
                "cluster": int(r["cluster"]),
                "audio": folder / "audio" / f"{r['id']}.opus",
                "lyrics": load_lyrics(lyr).text if lyr.is_file() else None,
            }
        )
    return out


def int8_session_run(full_onnx: Path, so):
    """A run(ids, mask) on a dynamically int8-quantised copy of the full text-encoder graph."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst = Path(tempfile.mkdtemp()) / "text_encoder.int8.onnx"
    quantize_dynamic(str(full_onnx), str(dst), weight_type=QuantType.QInt8)
    s = ort.InferenceSession(str(dst), so, providers=["CPUExecutionProvider"])
    return lambda i, a: s.run(["last_hidden_state"], {"input_ids": i, "attention_mask": a})[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--json")
    ap.add_argument("--md")
    args = ap.parse_args()
    clips = val_clips(Path(args.data))
    waves = [load_audio(str(c["audio"]), 16000).samples for c in clips]
    texts = [c["lyrics"] for c in clips]
    y = np.array([c["cluster"] - 1 for c in clips])

    ref_rec = Recognizer(backend="torch")
    onnx_rec = Recognizer(backend="onnx")
    from mersdk.backends.onnx_backend import OnnxTextEncoder, session_options

    export, base_cfg = onnx_rec._backend.export, onnx_rec.config.text_encoder
    full = export.text_encoder_path
    int8_run = int8_session_run(full, session_options(1)) if full.is_file() else None

    def onnx_encoder(threads=None, int8=False, **cfg):
        enc = OnnxTextEncoder(
            export,
            dataclasses.replace(base_cfg, **cfg),
            lambda: session_options(threads or onnx_rec._backend.threads),
            run=int8_run if int8 else None,
        )
        return enc.encode_arrays

    options = {
        "torch, windows (current)": ref_rec._backend.encode_lyrics,
        "torch, windows, 2 threads (the old default here)": Recognizer(
            backend="torch", num_threads=2
        )._backend.encode_lyrics,
        "onnx, windows": onnx_rec._backend.encode_lyrics,
        "onnx, windows, 2 threads": onnx_encoder(threads=2),
        "onnx, windows of 128 tokens": onnx_encoder(max_tokens=128),
        "onnx, distinct lines": onnx_encoder(lyric_units="lines"),
    }
    if int8_run is not None:
        options["onnx, windows, int8"] = onnx_encoder(int8=True)
        options["onnx, distinct lines, int8"] = onnx_encoder(lyric_units="lines", int8=True)
    from sklearn.metrics import f1_score

    # outputs: each option's lyric embeddings through the same model (the torch backend's)
    results, ref_probs = {}, None
    backend = ref_rec._backend
    from mersdk.ops import log_mel_batch_fast
    from mersdk.text_encoder import pad_embeddings

    mels = [log_mel_batch_fast([w], ref_rec.config.frontend) for w in waves]
    for name, encode in options.items():
        probs = []
        for (mel, lengths), t in zip(mels, texts):
            emb, mask = pad_embeddings(encode([t]) if t else [None], base_cfg.hidden_size)
            probs.append(backend.forward(mel, lengths, emb, mask)["cluster"][0])
        probs = np.array(probs)
        ref_probs = probs if ref_probs is None else ref_probs
        results[name] = {
            "val_macro_f1_cluster": float(f1_score(y, probs.argmax(1), average="macro")),
            "label_agreement_with_current": float(np.mean(probs.argmax(1) == ref_probs.argmax(1))),
            "max_abs_prob_diff": float(np.abs(probs - ref_probs).max()),
            "mean_abs_prob_diff": float(np.abs(probs - ref_probs).mean()),
        }
        print(name, json.dumps(results[name]), file=sys.stderr, flush=True)
    # speed: every option on the same song in turn (the order rotates), so load changes hit all alike
    times = {name: [] for name in options}
    names = list(options)
    with_lyrics = [t for t in texts if t]
    for name in names:
        options[name](with_lyrics[:1])  # session creation is not part of a song's cost
    for i, t in enumerate(with_lyrics):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            t0 = time.perf_counter()
            options[name]([t])
            times[name].append(time.perf_counter() - t0)
    for name in names:
        results[name]["text_encoder"] = _pcts(times[name])
        results[name]["median_paired_ratio"] = float(
            np.median(np.array(times[name]) / np.array(times["torch, windows (current)"]))
        )
    report = {
        "command": " ".join(sys.argv),
        "machine": machine(),
        "n_val": len(clips),
        "n_val_with_lyrics": sum(bool(t) for t in texts),
        "results": results,
        "loadavg_end": os.getloadavg(),
    }
    md = markdown(report)
    print(md)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.md:
        Path(args.md).write_text(md)
    return 0


def markdown(report: dict) -> str:
    results = report["results"]
    base = results["torch, windows (current)"]["text_encoder"]["p50_ms"]
    lines = [
        f"Command: `{report['command']}`; mirex_mm val, {report['n_val']} clips "
        f"({report['n_val_with_lyrics']} with lyrics); load average {report['loadavg_end'][0]:.1f} at the end "
        "(a shared 2-core machine, 8-20 during the run: read the ratios; the options alternate song by song)",
        "",
        "| option | text encoder p50 ms | p95 ms | p50 vs current | median per-song ratio | val macro-F1 (cluster) | "
        "labels as current | max / mean prob diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        t = r["text_encoder"]
        lines.append(
            f"| {name} | {t['p50_ms']:.1f} | {t['p95_ms']:.1f} | {t['p50_ms'] / base:.2f}x | "
            f"{r['median_paired_ratio']:.2f}x | {r['val_macro_f1_cluster']:.3f} | "
            f"{r['label_agreement_with_current']:.1%} | "
            f"{r['max_abs_prob_diff']:.3f} / {r['mean_abs_prob_diff']:.4f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
