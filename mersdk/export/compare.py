"""Stage 3 of deployment: the same clips through PyTorch, ONNX Runtime and TensorRT, compared.

Clips: the package's bundled examples (``mersdk/examples``) when present, always a few synthetic
clips (tones + noise; one long enough for two windows; lyrics short, long enough for several
text-encoder windows, and absent), and real clips from ``../shared/data`` when that folder exists.
PyTorch is the reference; for every other runtime that can run here the largest absolute
difference in any task probability and in valence/arousal is printed and checked against
``TOLERANCES``. Returns non-zero when a runtime is over its tolerance.
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# (probabilities, valence/arousal) max abs difference allowed against PyTorch fp32, per runtime.
# fp32 graphs differ from PyTorch by rounding only (measured ~1e-7); the int8 text encoder moves
# the lyric embeddings (measured 6e-3 / 1.1e-2 on the placeholder model); fp16 engines by fp16 rounding.
TOLERANCES = {
    "onnx": (1e-4, 1e-4),
    "onnx-int8-text": (3e-2, 3e-2),
    "tensorrt-fp32": (1e-3, 1e-3),
    "tensorrt-fp16": (1e-2, 2e-2),
}
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

_SHORT_LYRICS = "I walk alone beneath the rain\nand every light goes out again"
_LONG_LYRICS = "\n".join(f"line {i}: the city hums a restless song of neon, smoke and fire" for i in range(80))


@dataclass
class Clip:
    name: str
    audio: object  # path or (samples, sample_rate)
    lyrics: str | None


def synthetic_clips(sample_rate: int = 16000) -> list[Clip]:
    """Deterministic audio that exercises the model: chords + noise with an envelope."""
    rng = np.random.default_rng(0)

    def tone(seconds, freqs):
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        x = sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs)
        x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t)) + 0.05 * rng.standard_normal(t.size)
        return (0.5 * x).astype(np.float32), sample_rate

    return [
        Clip("synth-30s-short-lyrics", tone(30, (220, 277, 330)), _SHORT_LYRICS),
        Clip("synth-30s-no-lyrics", tone(30, (110, 131, 165, 880)), None),
        Clip("synth-45s-long-lyrics", tone(45, (196, 247, 294)), _LONG_LYRICS),
        Clip("synth-3s-short-lyrics", tone(3, (440, 554)), _SHORT_LYRICS),
    ]


def shared_clips(data: Path = SHARED_DATA, n: int = 6) -> list[Clip]:
    """The first n mirex_mm clips (lyrics where the set has them) and n/2 quadrants_4q clips."""
    out: list[Clip] = []
    mm = data / "mirex_mm"
    if (mm / "labels.csv").is_file():
        with open(mm / "labels.csv", newline="") as f:
            for row in list(csv.DictReader(f))[:n]:
                ly = mm / "lyrics" / f"{row['id']}.txt"
                out.append(
                    Clip(f"mirex_mm/{row['id']}", mm / "audio" / f"{row['id']}.opus", str(ly) if ly.is_file() else None)
                )
    q4 = data / "quadrants_4q"
    if (q4 / "labels.csv").is_file():
        with open(q4 / "labels.csv", newline="") as f:
            for row in list(csv.DictReader(f))[: n // 2]:
                out.append(Clip(f"quadrants_4q/{row['id']}", q4 / "audio" / f"{row['id']}.opus", None))
    return out


def example_clips() -> list[Clip]:
    if not EXAMPLES.is_dir():
        return []
    clips = []
    for p in sorted(EXAMPLES.iterdir()):
        if p.suffix.lower() in (".wav", ".flac", ".ogg", ".opus", ".mp3"):
            lyr = next((q for q in (p.with_suffix(".lrc"), p.with_suffix(".txt")) if q.is_file()), None)
            clips.append(Clip(f"examples/{p.name}", p, str(lyr) if lyr else None))
    return clips


def default_clips(data: Path | None = SHARED_DATA, n_shared: int = 6) -> list[Clip]:
    clips = example_clips() + synthetic_clips()
    if data is not None and Path(data).is_dir():
        clips += shared_clips(Path(data), n_shared)
    return clips


def predict_all(rec, clips: list[Clip]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """clip name -> (probabilities of every task concatenated, valence/arousal)."""
    out = {}
    for c in clips:
        if isinstance(c.audio, tuple):
            p = rec.predict(c.audio[0], lyrics=c.lyrics, sample_rate=c.audio[1])
        else:
            p = rec.predict(c.audio, lyrics=c.lyrics)
        probs = np.array([v for t in p.task_probabilities.values() for v in t.values()])
        out[c.name] = (probs, np.array([p.valence, p.arousal]))
    return out


def max_diffs(ref: dict, got: dict) -> tuple[float, float, str]:
    worst_p = worst_va = 0.0
    where = ""
    for name, (p, va) in ref.items():
        dp = float(np.abs(p - got[name][0]).max())
        dva = float(np.abs(va - got[name][1]).max())
        if max(dp, dva) > max(worst_p, worst_va):
            where = name
        worst_p, worst_va = max(worst_p, dp), max(worst_va, dva)
    return worst_p, worst_va, where


def runtimes(checkpoint, cache_dir=None):
    """(label, backend, backend_options) for every non-reference runtime that can run here, and
    (label, reason) for those that cannot."""
    from .. import backends
    from ..checkpoint import read_checkpoint
    from . import find_export

    ck = read_checkpoint(checkpoint)
    avail = backends.availability(checkpoint=ck)
    run: list[tuple[str, str, dict]] = []
    skipped: list[tuple[str, str | None]] = []
    if avail.get("onnx") is None:
        exp, _ = find_export(ck)
        assert exp is not None  # the onnx backend's probe found this export
        label = "onnx-int8-text" if exp.manifest["text_encoder"].get("precision") == "int8" else "onnx"
        run.append((label, "onnx", {}))
    else:
        skipped.append(("onnx", avail.get("onnx")))
    for prec in ("fp16", "fp32"):
        if avail.get("tensorrt") is None:
            run.append((f"tensorrt-{prec}", "tensorrt", {"precision": prec, "cache_dir": cache_dir}))
        else:
            skipped.append((f"tensorrt-{prec}", avail.get("tensorrt")))
    return run, skipped


def compare(
    checkpoint=None, data=SHARED_DATA, n_shared: int = 6, cache_dir=None, log=logging.getLogger("mersdk.export").info
) -> int:
    from ..recognizer import Recognizer

    clips = default_clips(data, n_shared)
    n_real = sum(not isinstance(c.audio, tuple) for c in clips)
    log(
        f"{len(clips)} clips ({len(clips) - n_real} synthetic, {n_real} real files"
        f"{'' if data is not None and Path(data).is_dir() else f'; {data} not found'})"
    )
    t0 = time.perf_counter()
    ref = predict_all(Recognizer(checkpoint, backend="torch"), clips)
    log(f"{'torch':<16} reference ({time.perf_counter() - t0:.1f} s)")
    run, skipped = runtimes(checkpoint, cache_dir)
    failed = 0
    log(f"{'runtime':<16} {'max|dp|':>9} {'tol':>7} {'max|dva|':>9} {'tol':>7}  worst clip")
    for label, backend, opts in run:
        got = predict_all(Recognizer(checkpoint, backend=backend, backend_options=opts), clips)
        dp, dva, where = max_diffs(ref, got)
        tp, tva = TOLERANCES[label]
        ok = dp <= tp and dva <= tva
        failed += not ok
        log(f"{label:<16} {dp:9.2e} {tp:7.0e} {dva:9.2e} {tva:7.0e}  {where}  {'ok' if ok else 'OVER TOLERANCE'}")
    for label, why in skipped:
        log(f"{label:<16} not run: {why}")
    return 1 if failed else 0
