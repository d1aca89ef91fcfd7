"""Load test of `mersdk serve` on loopback: N concurrent clients for D seconds, every answer checked.

    python benchmarks/load_test.py --clients 32 --seconds 60 --json benchmarks/results/load_test.json
    python benchmarks/load_test.py --clients 8 --seconds 10 --restart-at 4   # kill -9 and restart mid-run

It starts the server (`python -m mersdk serve`, 127.0.0.1 only), predicts each of a set of synthetic
clips directly with a Recognizer in this process (the reference), then runs the clients: each sends a
clip as the raw body (with lyrics for some) and compares the answer with the reference: the label and
lyrics_used exactly, probabilities and valence/arousal within 1e-4 (batched and single forward passes
differ by float32 rounding only). Every request ends as exactly one of: ok, wrong, busy (429), a clean
error (connection refused or reset, 503: the server is down or stopping), another HTTP status, or lost
(no answer within the client timeout). With --restart-at, the server is killed with SIGKILL at that
second and started again on the same port; the run then lasts until the new server has served for
--after-restart-s. Batch sizes come from the server's /metrics (scraped before the kill and at the end).
Bounded in count and time: --seconds, plus at most one restart and its model load.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-4
LYRICS = [
    "[00:00.50] sunshine on the water\n[00:02.00] we are dancing all day",
    "the night is cold and I am alone",
    None,
    None,
]


def make_clips(n: int, seed: int = 0) -> list[tuple[bytes, str | None]]:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n):
        sr, seconds = 16000, float(rng.uniform(2.0, 8.0))
        t = np.arange(int(seconds * sr)) / sr
        freq = float(rng.uniform(110, 880))
        x = 0.3 * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.5, 4) * t))
        x = (x + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
        buf = io.BytesIO()
        sf.write(buf, x, sr, format="WAV")
        clips.append((buf.getvalue(), LYRICS[i % len(LYRICS)]))
    return clips


def matches(got: dict, want: dict) -> bool:
    return (
        got.get("label") == want["label"]
        and got.get("lyrics_used") == want["lyrics_used"]
        and all(abs(got["probabilities"][k] - v) <= TOL for k, v in want["probabilities"].items())
        and abs(got["valence"] - want["valence"]) <= TOL
        and abs(got["arousal"] - want["arousal"]) <= TOL
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [
        sys.executable,
        "-m",
        "mersdk",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend",
        args.backend,
        "--max-batch",
        str(args.max_batch),
        "--max-wait-ms",
        str(args.max_wait_ms),
        "--max-queue",
        str(args.max_queue),
        "--log-level",
        "warning",
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_healthy(url: str, proc: subprocess.Popen, seconds: float = 300) -> float:
    import httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return time.monotonic() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become healthy")


def batch_histogram(metrics_text: str) -> dict[int, int]:
    """Model calls per batch size, from the cumulative mersdk_batch_size buckets."""
    cum = {}
    for line in metrics_text.splitlines():
        if line.startswith('mersdk_batch_size_bucket{le="') and "+Inf" not in line:
            le = int(float(line.split('"')[1]))
            cum[le] = int(float(line.split()[-1]))
    out, prev = {}, 0
    for le in sorted(cum):
        if cum[le] - prev:
            out[le] = cum[le] - prev
        prev = cum[le]
    return out


def scrape(url: str) -> dict[int, int]:
    import httpx

    try:
        return batch_histogram(httpx.get(f"{url}/metrics", timeout=5).text)
    except httpx.TransportError:
        return {}


async def client(i: int, url: str, clips, refs, stop: asyncio.Event, stats: dict, timeout_s: float) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=timeout_s) as http:
        k = i
        while not stop.is_set():
            audio, lyrics = clips[k % len(clips)]
            want = refs[k % len(clips)]
            k += 1
            t0 = time.perf_counter()
            try:
                r = await http.post(f"{url}/predict", content=audio, params={"lyrics": lyrics} if lyrics else None)
            except httpx.TimeoutException:
                stats["lost"] += 1
                continue
            except httpx.TransportError as e:
                stats["clean_error"] += 1  # refused (server down) or reset (killed while answering)
                kind = "refused" if isinstance(e, httpx.ConnectError) else type(e).__name__
                stats["errors_by_kind"][kind] = stats["errors_by_kind"].get(kind, 0) + 1
                await asyncio.sleep(0.1)
                continue
            if r.status_code == 200:
                if matches(r.json(), want):
                    stats["ok"] += 1
                    stats["latencies"].append(time.perf_counter() - t0)
                else:
                    stats["wrong"] += 1
            elif r.status_code == 429:
                stats["busy"] += 1
                await asyncio.sleep(min(float(r.headers.get("retry-after", 1)), 1.0))
            elif r.status_code == 503:
                stats["clean_error"] += 1
                stats["errors_by_kind"]["503"] = stats["errors_by_kind"].get("503", 0) + 1
                await asyncio.sleep(0.1)
            else:
                stats["other"][r.status_code] = stats["other"].get(r.status_code, 0) + 1


async def drive(args, url: str, proc_box: list, port: int, clips, refs) -> dict:
    stats = {
        "ok": 0,
        "wrong": 0,
        "busy": 0,
        "clean_error": 0,
        "lost": 0,
        "other": {},
        "latencies": [],
        "errors_by_kind": {},
    }
    stop = asyncio.Event()
    batches: dict[int, int] = {}
    restart = {}
    t0 = time.monotonic()
    tasks = [
        asyncio.create_task(client(i, url, clips, refs, stop, stats, args.client_timeout_s))
        for i in range(args.clients)
    ]
    end = t0 + args.seconds
    if args.restart_at is not None:
        await asyncio.sleep(max(0.0, args.restart_at))
        for k, v in (await asyncio.to_thread(scrape, url)).items():
            batches[k] = batches.get(k, 0) + v
        ok_before = stats["ok"]
        proc_box[0].send_signal(signal.SIGKILL)
        proc_box[0].wait()
        killed = time.monotonic()
        proc_box[0] = start_server(port, args)
        ready = await asyncio.to_thread(wait_healthy, url, proc_box[0])
        restart = {
            "killed_at_s": round(killed - t0, 2),
            "down_s": round(time.monotonic() - killed, 2),
            "model_load_s": round(ready, 2),
            "ok_before_kill": ok_before,
        }
        end = max(end, time.monotonic() + args.after_restart_s)
        restart["ok_at_restart"] = stats["ok"]
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    stop.set()
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - t0
    for k, v in (await asyncio.to_thread(scrape, url)).items():
        batches[k] = batches.get(k, 0) + v
    if restart:
        restart["ok_after_restart"] = stats["ok"] - restart.pop("ok_at_restart")
    lat = np.array(stats.pop("latencies")) * 1000
    return {
        "clients": args.clients,
        "seconds": round(elapsed, 2),
        "ok": stats["ok"],
        "wrong": stats["wrong"],
        "lost": stats["lost"],
        "busy_429": stats["busy"],
        "clean_errors": stats["clean_error"],
        "other_status": stats["other"],
        "clean_errors_by_kind": stats["errors_by_kind"],
        "throughput_per_s": round(stats["ok"] / elapsed, 2),
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 1) if lat.size else None,
        "batch_sizes": dict(sorted(batches.items())),
        "mean_batch": round(sum(k * v for k, v in batches.items()) / max(1, sum(batches.values())), 2),
        "restart": restart or None,
    }


def run(args) -> dict:
    import mersdk

    clips = make_clips(args.n_clips, seed=args.seed)
    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}"
    proc_box = [start_server(port, args)]
    try:
        rec = mersdk.Recognizer(backend=args.backend)
        refs = [rec.predict(a, ly.encode() if ly else None).to_dict() for a, ly in clips]
        del rec
        wait_healthy(url, proc_box[0])
        load_before = os.getloadavg()
        result = asyncio.run(drive(args, url, proc_box, port, clips, refs))
        result["loadavg_before"] = [round(x, 2) for x in load_before]
        result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        result["server"] = {
            "max_batch": args.max_batch,
            "max_wait_ms": args.max_wait_ms,
            "max_queue": args.max_queue,
            "backend": args.backend,
            "cpus": os.cpu_count(),
        }
        result["tolerance"] = TOL
        return result
    finally:
        proc = proc_box[0]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def add_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--restart-at", type=float, help="kill -9 the server at this second and start it again")
    ap.add_argument("--after-restart-s", type=float, default=5.0, help="with --restart-at: run this long after")
    ap.add_argument("--n-clips", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--port", type=int)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--max-wait-ms", type=float, default=10.0)
    ap.add_argument("--max-queue", type=int, default=64)
    ap.add_argument("--client-timeout-s", type=float, default=120.0)
    ap.add_argument("--json", help="also write the result here")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_args(ap)
    args = ap.parse_args()
    if not 1 <= args.clients <= 1024 or not 0 < args.seconds <= 3600:
        ap.error("need 1 <= --clients <= 1024 and 0 < --seconds <= 3600")
    out = run(args)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    sys.exit(1 if out["wrong"] or out["lost"] else 0)
