"""Latency benchmark of every backend that can run here, side by side (``mersdk bench``,
``benchmarks/latency.py``).

With real data (``--data``, default ``../shared/data`` beside the project) it measures what users
run: per-song latency of real clips at their decoded sample rate with their own lyrics, over
``--songs`` different songs, p50/p95/p99 and split by stage (decode, resample, log-mel, tokenise,
text encoder, model), each backend and vibenet side by side in one run, quiet and then beside
``--background-load N`` busy processes (``run_real``). Without data (or with ``--synthetic``) it
falls back to the synthetic benchmark below, labelled as such in its report.

Synthetic mode: each backend runs in its own fresh subprocess (so peak RSS and caches are its own): cold start
(imports, then model load, then the first prediction, timed separately, repeated in fresh
processes), per-call latency p50/p95/p99 after warm-up for a 30 s clip with lyrics, the same clip
without lyrics and a 3-minute track, and a batch sweep of 30 s clips (throughput in clips/s and the
real-time factor RTF = wall time / audio time). "torch" is the PyTorch eager baseline; "vibenet"
(an audio-only music-emotion model on ONNX Runtime, if installed) is the outside reference. Audio
is given as 16 kHz arrays (the model's rate): decoding and resampling files is not timed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SR = 16000
LYRICS_WORDS = 200  # about the median of the mirex_mm lyrics (150-260 words between the quartiles)
BATCHES = (1, 2, 4, 8, 16, 32, 64)
MERSDK_BACKENDS = ("onnx", "torch", "tensorrt")


def _audio(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.3 * t)) + 0.05 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def _lyrics(words: int = LYRICS_WORDS) -> str:
    vocab = [
        "love",
        "night",
        "fire",
        "heart",
        "rain",
        "dance",
        "alone",
        "tonight",
        "burning",
        "cold",
        "summer",
        "river",
        "light",
        "dream",
        "road",
        "home",
    ]
    rng = np.random.default_rng(1)
    w = [vocab[i] for i in rng.integers(0, len(vocab), words)]
    return "\n".join(" ".join(w[i : i + 8]) for i in range(0, words, 8))


def _pcts(xs: list[float]) -> dict[str, float]:
    a = np.array(xs) * 1000.0
    # min beside the percentiles: on a shared machine it is the best estimate of the uncontended cost
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p95_ms": float(np.percentile(a, 95)),
        "p99_ms": float(np.percentile(a, 99)),
        "min_ms": float(a.min()),
        "mean_ms": float(a.mean()),
        "n": len(xs),
    }


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


# ---- worker side (runs inside a fresh subprocess) ------------------------------------------------
def _make(backend: str, checkpoint, threads):
    """(predict(audio, lyrics), predict_batch(list of audio)) for one backend, timing import/load."""
    t0 = time.perf_counter()
    if backend == "vibenet":
        import vibenet

        t1 = time.perf_counter()
        model = vibenet.load_model()
        t2 = time.perf_counter()
        return (
            (lambda x, lyr: model.predict(x, sr=SR), lambda xs: model.predict(list(xs), sr=SR), None),
            t1 - t0,
            t2 - t1,
        )
    import mersdk  # noqa: F401
    from mersdk import Recognizer

    # the backend's own runtime is part of its import cost, not of the model load
    for mod in {
        "onnx": ("onnxruntime", "tokenizers"),
        "torch": ("torch", "transformers"),
        "tensorrt": ("tensorrt", "tokenizers"),
    }[backend]:
        __import__(mod)
    t1 = time.perf_counter()
    rec = Recognizer(checkpoint, backend=backend, num_threads=threads)
    t2 = time.perf_counter()

    def batch(xs):
        return rec.predict_batch([(x, None, SR) for x in xs], batch_size=len(xs))

    return (lambda x, lyr: rec.predict(x, lyrics=lyr, sample_rate=SR), batch, rec), t1 - t0, t2 - t1


def _stages(rec, clip, lyr, repeats: int) -> dict:
    """Where a 30 s prediction with lyrics spends its time: log-mel (the path the Recognizer takes:
    compiled kernel or NumPy reference, see ``mersdk.ops``), text encoder, model."""
    from .ops import log_mel_batch_fast
    from .text_encoder import pad_embeddings

    cfg = rec.config
    mel, lengths = log_mel_batch_fast([clip], cfg.frontend)
    emb, mask = pad_embeddings(rec.runtime.encode_lyrics([lyr]), cfg.text_encoder.hidden_size)
    return {
        "log_mel": _pcts(_time(lambda: log_mel_batch_fast([clip], cfg.frontend), 2, repeats, 15)),
        "text_encoder": _pcts(_time(lambda: rec.runtime.encode_lyrics([lyr]), 2, repeats, 15)),
        "model": _pcts(_time(lambda: rec.runtime.forward(mel, lengths, emb, mask), 2, repeats, 15)),
    }


def _time(fn, warmup: int, repeats: int, budget_s: float) -> list[float]:
    for _ in range(warmup):
        fn()
    out: list[float] = []
    start = time.perf_counter()
    while len(out) < repeats and (len(out) < 3 or time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def worker(backend: str, checkpoint, mode: str, repeats: int, threads, max_batch: int) -> dict:
    (predict, predict_batch, rec), t_import, t_load = _make(backend, checkpoint, threads)
    clip, track, lyr = _audio(30.0), _audio(180.0, 2), _lyrics()
    t = time.perf_counter()
    predict(clip, lyr)
    first = time.perf_counter() - t
    res = {
        "backend": backend,
        "import_s": t_import,
        "load_s": t_load,
        "first_predict_s": first,
        "total_s": t_import + t_load + first,
    }
    if mode == "cold":
        res["peak_rss_mb"] = _peak_rss_mb()
        return res
    res["latency"] = {}
    if rec is not None:  # vibenet has no lyrics input
        res["latency"]["30s_lyrics"] = _pcts(_time(lambda: predict(clip, lyr), 3, repeats, 30))
    res["latency"]["30s_no_lyrics"] = _pcts(_time(lambda: predict(clip, None), 3, repeats, 30))
    res["latency"]["3min_no_lyrics"] = _pcts(_time(lambda: predict(track, None), 1, max(5, repeats // 4), 40))
    if rec is not None:
        res["stages_30s_lyrics"] = _stages(rec, clip, lyr, repeats)
    res["peak_rss_mb_single_clips"] = _peak_rss_mb()  # before the batch sweep holds 64 clips at once
    sweep = {}
    for b in (b for b in BATCHES if b <= max_batch):
        xs = [clip] * b
        ts = _time(lambda xs=xs: predict_batch(xs), 1, 5 if b <= 8 else 2, 20)
        med = statistics.median(ts)
        sweep[b] = {"ms_per_call": med * 1000, "clips_per_s": b / med, "rtf": med / (30.0 * b)}
    res["batch_sweep"] = sweep
    res["peak_rss_mb"] = _peak_rss_mb()
    return res


# ---- real inputs: the clips users decode and their lyrics (issue 14) ----------------------------
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
STAGES = ("decode", "resample", "log_mel", "tokenise", "text_encoder", "model")
BUSY_LOOP = "while True: pass"


def real_songs(data: Path, n: int, warmup: int = 2) -> tuple[list[dict], list[dict]]:
    """(warm-up songs, measured songs): mirex_mm clips with lyrics, spread evenly over the ids, each
    song once (no cache can help). Each is {"id", "audio", "lyrics"}."""
    folder = Path(data) / "mirex_mm"
    songs = [
        {"id": p.stem, "audio": str(folder / "audio" / f"{p.stem}.opus"), "lyrics": str(p)}
        for p in sorted((folder / "lyrics").glob("*.txt"))
        if (folder / "audio" / f"{p.stem}.opus").is_file()
    ]
    if len(songs) < n + warmup:
        raise ValueError(f"{folder} has {len(songs)} clips with lyrics; {n + warmup} are needed")
    step = len(songs) / (n + warmup)
    picked = [songs[int(i * step)] for i in range(n + warmup)]
    return picked[:warmup], picked[warmup:]


class _RealWorker:
    """One engine in its own process (its own threads, caches and RSS): "vibenet" or a mersdk
    backend ("torch", "onnx", "auto"); ``song(s)`` times one song there."""

    def __init__(self, engine: str, checkpoint=None, threads=None):
        cmd = [sys.executable, "-m", "mersdk.bench", "--serve", engine]
        cmd += ["--checkpoint", str(checkpoint)] if checkpoint else []
        cmd += ["--threads", str(threads)] if threads else []
        self.engine = engine
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ready = self._read()

    def _read(self) -> dict:
        assert self.proc.stdout is not None  # Popen(stdout=PIPE)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.engine}: the worker exited ({self.proc.wait()})")
        return json.loads(line)

    def song(self, s: dict) -> dict:
        assert self.proc.stdin is not None  # Popen(stdin=PIPE)
        self.proc.stdin.write(json.dumps(s) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None  # Popen(stdin=PIPE, stdout=PIPE)
        self.proc.stdin.close()  # the worker's loop ends at end of input
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


def _serve(engine: str, checkpoint, threads) -> int:
    """Worker loop: one JSON song per stdin line -> one JSON timing line on stdout."""
    t0 = time.perf_counter()
    if engine == "vibenet":
        import vibenet

        model = vibenet.load_model()

        def time_song(s):
            pcm, sr = _pcm(s)
            return {
                "total": _timed(lambda: model.predict(s["audio"])),
                "pcm": _timed(lambda: model.predict(pcm, sr=sr)),
            }

        info = {"backend": "vibenet"}
    else:
        from . import Recognizer

        rec = Recognizer(checkpoint, backend=engine, num_threads=threads)
        time_song = lambda s: _time_mersdk(rec, s)
        info = {"backend": rec.backend, "threads": threads}
    print(json.dumps({"load_s": time.perf_counter() - t0, **info}), flush=True)
    for line in sys.stdin:
        print(json.dumps(time_song(json.loads(line))), flush=True)
    return 0


def _pcm(s: dict) -> tuple[np.ndarray, int]:
    """The song decoded (untimed) at its own rate: what a player that decodes itself passes in."""
    import soundfile

    x, sr = soundfile.read(s["audio"], dtype="float32", always_2d=True)
    return np.ascontiguousarray(x.mean(axis=1)), sr


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _time_mersdk(rec, s: dict) -> dict:
    """The user's call end to end (file and lyrics paths in, as ``mersdk predict`` runs it), then
    the same song stage by stage, each stage called the way the Recognizer calls it."""
    import soundfile

    from .audio import load_audio
    from .lyrics import load_lyrics
    from .ops import log_mel_batch_fast
    from .text_encoder import pad_embeddings

    out = {"total": _timed(lambda: rec.predict(s["audio"], lyrics=s["lyrics"]))}
    pcm, sr = _pcm(s)
    out["pcm"] = _timed(lambda: rec.predict(pcm, lyrics=s["lyrics"], sample_rate=sr))
    backend, cfg = rec.runtime, rec.config
    sr = soundfile.info(s["audio"]).samplerate
    t = time.perf_counter()
    decoded = load_audio(s["audio"], sr)
    out["decode"] = time.perf_counter() - t
    t = time.perf_counter()
    audio = load_audio(decoded.samples, cfg.frontend.sample_rate, sample_rate=sr)
    out["resample"] = time.perf_counter() - t
    log_mel = getattr(backend, "log_mel", None) or (lambda w: log_mel_batch_fast(w, cfg.frontend))
    t = time.perf_counter()
    mel, lengths = log_mel([audio.samples])
    out["log_mel"] = time.perf_counter() - t
    lyrics = load_lyrics(s["lyrics"])
    assert lyrics is not None  # the real-song benchmark takes songs that have lyrics
    text = lyrics.text
    encoder = backend.text_encoder
    out["tokenise"] = _timed(lambda: encoder.plan(text))
    t = time.perf_counter()
    emb = backend.encode_lyrics([text])
    out["text_encoder"] = time.perf_counter() - t - out["tokenise"]
    e, m = pad_embeddings(emb, cfg.text_encoder.hidden_size)
    out["model"] = _timed(lambda: backend.forward(mel, lengths, e, m))
    out["tokens"] = int(emb[0].shape[0]) if emb[0] is not None else 0
    return out


class BackgroundLoad:
    """``n`` busy Python processes (one core each), started and stopped by the benchmark itself."""

    def __init__(self, n: int):
        self.n = n
        self.procs: list[subprocess.Popen] = []

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(self.n)]
        time.sleep(0.5 if self.n else 0)
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


def run_real(
    data,
    checkpoint=None,
    engines=("torch", "onnx", "vibenet"),
    n_songs: int = 30,
    background_load: int = 0,
    threads=None,
    log=logging.getLogger("mersdk.bench").info,
) -> dict:
    """Every engine side by side on real songs: for each song, each engine in turn (the order
    rotates per song), quiet and then (``background_load`` > 0) beside that many busy processes."""
    warm, songs = real_songs(data, n_songs)
    report = {
        "command": _command(),
        "machine": machine(),
        "inputs": "real",
        "data": str(data),
        "songs": [s["id"] for s in songs],
        "threads": threads,
        "passes": {},
        "workers": {},
    }
    workers = []
    try:
        for e in engines:
            log(f"{e}: loading ...")
            w = _RealWorker(e, checkpoint, threads)
            workers.append(w)
            report["workers"][e] = w.ready
        passes = [("quiet", 0)] + ([(f"background_load_{background_load}", background_load)] if background_load else [])
        for name, load in passes:
            with BackgroundLoad(load):
                log(f"{name}: {len(songs)} songs x {len(workers)} engines ...")
                start = os.getloadavg()
                for s in warm:
                    for w in workers:
                        w.song(s)
                rows: dict[str, list[dict]] = {w.engine: [] for w in workers}
                for i, s in enumerate(songs):
                    for w in workers[i % len(workers) :] + workers[: i % len(workers)]:
                        rows[w.engine].append(w.song(s))
                report["passes"][name] = {
                    "background_load": load,
                    "loadavg_start": start,
                    "loadavg_end": os.getloadavg(),
                    "per_song": rows,
                    "summary": _summarise(rows),
                }
    finally:
        for w in workers:
            w.close()
    report["machine"]["loadavg_end"] = os.getloadavg()
    return report


def _summarise(rows: dict[str, list[dict]]) -> dict:
    out: dict[str, dict] = {}
    ref = rows.get("vibenet")
    for engine, rs in rows.items():
        s: dict[str, Any] = {"total": _pcts([r["total"] for r in rs]), "pcm": _pcts([r["pcm"] for r in rs])}
        for k in STAGES:
            if k in rs[0]:
                s[k] = _pcts([r[k] for r in rs])
        if ref and engine != "vibenet":
            s["p50_vs_vibenet"] = s["total"]["p50_ms"] / _pcts([r["total"] for r in ref])["p50_ms"]
            s["median_paired_ratio"] = float(np.median([a["total"] / b["total"] for a, b in zip(rs, ref)]))
            s["pcm_p50_vs_vibenet"] = s["pcm"]["p50_ms"] / _pcts([r["pcm"] for r in ref])["p50_ms"]
        if "tokens" in rs[0]:
            s["tokens_p50"] = float(np.median([r["tokens"] for r in rs]))
        out[engine] = s
    return out


def markdown_real(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['platform']}, Python {m['python']}",
        f"Versions: {', '.join(f'{k} {v}' for k, v in m['versions'].items())}",
        f"Command: `{report['command']}`",
        f"Inputs: real mirex_mm clips as they decode (48 kHz Opus, ~30 s) with their own lyrics, "
        f"{len(report['songs'])} different songs, one call each per engine, engines alternating per song; "
        "each engine in its own process. mersdk: `Recognizer(backend=...).predict(path, lyrics=path)`; "
        "vibenet: `load_model().predict(path)` (audio only). *file*: from the file path (decode included, "
        "the same libsndfile Opus decoder for both); *PCM*: from the decoded samples at their own rate "
        "(48 kHz), as a player that decodes itself calls it (resample included). Stages: the same song "
        "again, stage by stage.",
        "",
    ]
    for name, p in report["passes"].items():
        lines += [
            f"**{name}** (background: {p['background_load']} busy processes; load average "
            f"{p['loadavg_start'][0]:.1f} at start, {p['loadavg_end'][0]:.1f} at end)",
            "",
            "| engine | file: p50 ms | p95 ms | p99 ms | p50 vs vibenet | median per-song ratio | "
            "PCM: p50 ms | p99 ms | p50 vs vibenet | "
            + " | ".join(f"{k} p50" for k in STAGES)
            + " | lyric tokens p50 |",
            "|---|---|---|---|---|---|---|---|---|" + "---|" * len(STAGES) + "---|",
        ]
        for engine, s in p["summary"].items():
            t = s["total"]
            ratio = f"{s['p50_vs_vibenet']:.2f}x" if "p50_vs_vibenet" in s else "-"
            paired = f"{s['median_paired_ratio']:.2f}x" if "median_paired_ratio" in s else "-"
            stages = " | ".join(f"{s[k]['p50_ms']:.1f}" if k in s else "-" for k in STAGES)
            pcm, pcm_ratio = s["pcm"], (f"{s['pcm_p50_vs_vibenet']:.2f}x" if "pcm_p50_vs_vibenet" in s else "-")
            lines.append(
                f"| {engine} ({report['workers'][engine].get('backend')}) | {t['p50_ms']:.1f} | "
                f"{t['p95_ms']:.1f} | {t['p99_ms']:.1f} | {ratio} | {paired} | {pcm['p50_ms']:.1f} | "
                f"{pcm['p99_ms']:.1f} | {pcm_ratio} | {stages} | "
                f"{s.get('tokens_p50', '-')} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


# ---- driver side ---------------------------------------------------------------------------------
def _run_worker(args: list[str], timeout: float = 900) -> dict:
    r = subprocess.run(
        [sys.executable, "-m", "mersdk.bench", "--worker", *args], capture_output=True, text=True, timeout=timeout
    )
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def available(checkpoint) -> tuple[list[str], dict[str, str | None]]:
    from . import backends
    from .checkpoint import read_checkpoint

    avail = backends.availability(checkpoint=read_checkpoint(checkpoint))
    run = [b for b in MERSDK_BACKENDS if avail.get(b, "not registered") is None]
    skipped = {b: avail.get(b, "not registered") for b in MERSDK_BACKENDS if b not in run}
    try:
        import importlib.util

        if importlib.util.find_spec("vibenet") is not None:
            run.append("vibenet")
        else:
            skipped["vibenet"] = "not installed (pip install vibenet)"
    except ImportError:
        pass
    return run, skipped


def machine() -> dict:
    cpu = platform.processor()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    versions = {}
    for mod in ("mersdk", "numpy", "onnxruntime", "torch", "tensorrt", "vibenet"):
        try:
            from importlib.metadata import version

            versions[mod] = version(mod)
        except Exception:
            pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "loadavg_start": os.getloadavg(),
    }


def run_all(
    checkpoint=None, backends_=None, repeats: int = 30, cold_runs: int = 3, threads=None, max_batch: int = 64, log=print
) -> dict:
    run, skipped = available(checkpoint)
    if backends_:
        run = [b for b in run if b in backends_]
    report = {
        "command": _command(),
        "machine": machine(),
        "inputs": "synthetic (no real data)",
        "checkpoint": str(checkpoint or "bundled"),
        "lyrics_words": LYRICS_WORDS,
        "threads": threads,
        "skipped": skipped,
        "results": {},
    }
    from .ops import describe

    report["machine"]["kernels_cpu"] = describe("cpu")
    ck = ["--checkpoint", str(checkpoint)] if checkpoint else []
    th = ["--threads", str(threads)] if threads else []
    for b in run:
        log(f"{b}: cold start x{cold_runs} ...")
        colds = [_run_worker([b, "--mode", "cold", *ck, *th]) for _ in range(cold_runs)]
        if any("error" in c for c in colds):
            report["results"][b] = {"error": next(c["error"] for c in colds if "error" in c)}
            continue
        log(f"{b}: latency, batch sweep ...")
        warm = _run_worker([b, "--mode", "warm", "--repeats", str(repeats), "--max-batch", str(max_batch), *ck, *th])
        cold = {
            k: statistics.median(c[k] for c in colds)
            for k in ("import_s", "load_s", "first_predict_s", "total_s", "peak_rss_mb")
        }
        report["results"][b] = {"cold_median": cold, "cold_runs": colds, **warm}
    report["machine"]["loadavg_end"] = os.getloadavg()
    return report


def _command() -> str:
    prog = Path(sys.argv[0]).name
    return " ".join(["mersdk" if prog == "__main__.py" else prog, *sys.argv[1:]])


def _ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def markdown(report: dict) -> str:
    m = report["machine"]
    R = {k: v for k, v in report["results"].items() if "error" not in v}
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['platform']}, Python {m['python']}; "
        f"load average at start {m['loadavg_start'][0]:.2f}, at end {m['loadavg_end'][0]:.2f} "
        "(the machine is shared: figures are noisy)",
        f"Versions: {', '.join(f'{k} {v}' for k, v in m['versions'].items())}",
        f"Command: `{report['command']}`",
        f"Inputs: SYNTHETIC (no real data was given): 16 kHz arrays (decoding and resampling not timed), "
        f"{report['lyrics_words']} made-up words of lyrics",
        f"Log-mel on the CPU: {m.get('kernels_cpu', {}).get('log_mel', 'NumPy reference')}",
        "",
        "Cold start (median of fresh processes; first predict = 30 s clip with lyrics, which for onnx "
        "includes creating the text-encoder session):",
        "",
        "| backend | import s | load s | import + load s | first predict s | total s "
        "| peak RSS MB (cold / single clips / with batch 64) |",
        "|---|---|---|---|---|---|---|",
    ]
    for b, r in R.items():
        c = r["cold_median"]
        lines.append(
            f"| {b} | {c['import_s']:.3f} | {c['load_s']:.3f} | {c['import_s'] + c['load_s']:.3f} | "
            f"{c['first_predict_s']:.3f} | {c['total_s']:.3f} | "
            f"{c['peak_rss_mb']:.0f} / {r['peak_rss_mb_single_clips']:.0f} / {r['peak_rss_mb']:.0f} |"
        )
    lines += [
        "",
        "Per call (vs vibenet: its audio-only call on the same audio, lyrics or not):",
        "",
        "| backend | case | p50 ms | p95 ms | p99 ms | min ms | p50 vs torch | p50 vs vibenet |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for b, r in R.items():
        for case, s in r["latency"].items():
            t = R.get("torch", {}).get("latency", {}).get(case, {}).get("p50_ms")
            v = (
                R.get("vibenet", {})
                .get("latency", {})
                .get("30s_no_lyrics" if case.startswith("30s") else case, {})
                .get("p50_ms")
            )
            lines.append(
                f"| {b} | {case} | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} | {s['p99_ms']:.1f} | {s['min_ms']:.1f} | "
                f"{_ratio(s['p50_ms'], t)} | {_ratio(s['p50_ms'], v)} |"
            )
    lines += [
        "",
        "Stages of a 30 s call with lyrics (p50 / min ms):",
        "",
        "| backend | log-mel | text encoder | model |",
        "|---|---|---|---|",
    ]
    for b, r in R.items():
        if "stages_30s_lyrics" in r:
            st = r["stages_30s_lyrics"]
            lines.append(
                f"| {b} | "
                + " | ".join(
                    f"{st[k]['p50_ms']:.1f} / {st[k]['min_ms']:.1f}" for k in ("log_mel", "text_encoder", "model")
                )
                + " |"
            )
    lines += [
        "",
        "Batch sweep (30 s clips, no lyrics; RTF = wall / audio time):",
        "",
        "| backend | batch | ms / call | clips / s | RTF |",
        "|---|---|---|---|---|",
    ]
    for b, r in R.items():
        for n, s in r["batch_sweep"].items():
            lines.append(f"| {b} | {n} | {s['ms_per_call']:.0f} | {s['clips_per_s']:.1f} | {s['rtf']:.4f} |")
    for b, r in report["results"].items():
        if "error" in r:
            lines.append(f"\n{b}: failed: {r['error']}")
    for b, why in report["skipped"].items():
        lines.append(f"\n{b}: not run: {why}")
    return "\n".join(lines) + "\n"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", help="checkpoint folder (default: the bundled model)")
    p.add_argument(
        "--data",
        default=str(DEFAULT_DATA),
        help="folder with mirex_mm/ (real clips and lyrics); absent: the synthetic benchmark",
    )
    p.add_argument("--synthetic", action="store_true", help="the synthetic benchmark even when real data is there")
    p.add_argument("--songs", type=int, default=30, help="different songs in the real benchmark")
    p.add_argument(
        "--background-load",
        type=int,
        default=0,
        metavar="N",
        help="after the quiet pass, run again beside N busy processes (real benchmark)",
    )
    p.add_argument(
        "--backends", nargs="*", help=f"subset of {MERSDK_BACKENDS + ('vibenet',)} (default: all that run here)"
    )
    p.add_argument("--repeats", type=int, default=30, help="timed calls per latency case (after 3 warm-up calls)")
    p.add_argument("--cold-runs", type=int, default=3, help="fresh processes for the cold-start figures")
    p.add_argument("--threads", type=int, help="CPU threads per backend (default: each runtime's own)")
    p.add_argument("--max-batch", type=int, default=64)
    p.add_argument("--json", help="write the full report here")
    p.add_argument("--md", help="write the tables here (markdown)")


def main_from_args(args) -> int:
    def progress(msg):
        print(msg, file=sys.stderr, flush=True)

    if not args.synthetic and (Path(args.data) / "mirex_mm").is_dir():
        run, skipped = available(args.checkpoint)
        engines = [b for b in (args.backends or run) if b in run and b != "tensorrt"]
        report = run_real(
            Path(args.data), args.checkpoint, engines, args.songs, args.background_load, args.threads, log=progress
        )
        report["skipped"] = skipped
        md = markdown_real(report)
    else:
        if not args.synthetic:
            progress(f"no real data in {args.data}: running the SYNTHETIC benchmark")
        report = run_all(
            args.checkpoint, args.backends, args.repeats, args.cold_runs, args.threads, args.max_batch, log=progress
        )
        md = markdown(report)
    print(md)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.md:
        Path(args.md).write_text(md)
    return 0


def _worker_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("backend")
    ap.add_argument("--mode", choices=("cold", "warm"), default="warm")
    ap.add_argument("--checkpoint")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--max-batch", type=int, default=64)
    a = ap.parse_args(argv)
    print(json.dumps(worker(a.backend, a.checkpoint, a.mode, a.repeats, a.threads, a.max_batch)))
    return 0


def _serve_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("engine")
    ap.add_argument("--checkpoint")
    ap.add_argument("--threads", type=int)
    a = ap.parse_args(argv)
    return _serve(a.engine, a.checkpoint, a.threads)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        sys.exit(_worker_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        sys.exit(_serve_main(sys.argv[2:]))
    ap = argparse.ArgumentParser(prog="mersdk.bench", description=__doc__.splitlines()[0])
    add_args(ap)
    sys.exit(main_from_args(ap.parse_args()))
