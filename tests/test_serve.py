"""`mersdk serve`: the real app on a real uvicorn socket (loopback), real model, real requests.

Each answer is checked against a direct `Recognizer.predict` of the same input. Batched and single
forward passes agree to float32 rounding: probabilities and valence/arousal within 1e-4.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import EXAMPLE_AUDIO, EXAMPLE_LYRICS, ROOT, tone

pytest.importorskip("fastapi", reason="needs the [serve] extra")
pytest.importorskip("uvicorn", reason="needs the [serve] extra")
httpx = pytest.importorskip("httpx", reason="needs the [serve] extra")

from mersdk.serve import ServeConfig, create_app, resolve_under_root  # noqa: E402
from mersdk.serve.app import RequestError  # noqa: E402

TOL = 1e-4


def wav_bytes(seconds: float, freq: float = 440.0, seed: int = 0, sr: int = 16000) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, tone(seconds, sr=sr, freq=freq, seed=seed), sr, format="WAV")
    return buf.getvalue()


def same_prediction(got: dict, want) -> bool:
    want = want.to_dict()
    return (
        got["label"] == want["label"]
        and got["lyrics_used"] == want["lyrics_used"]
        and all(abs(got["probabilities"][k] - v) <= TOL for k, v in want["probabilities"].items())
        and abs(got["valence"] - want["valence"]) <= TOL
        and abs(got["arousal"] - want["arousal"]) <= TOL
    )


@contextlib.contextmanager
def serving(app):
    """Run ``app`` on uvicorn in a thread on a free loopback port; yields the base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=10))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("serve")
    inside = base / "music"
    inside.mkdir()
    (inside / "a.wav").write_bytes(wav_bytes(3.0, 330.0, seed=1))
    (base / "secret.wav").write_bytes(wav_bytes(3.0, 550.0, seed=2))
    (inside / "link_out.wav").symlink_to(base / "secret.wav")
    (inside / "link_in.wav").symlink_to(inside / "a.wav")
    (base / "words.lrc").write_text("[00:01.00] a line only a file read would show\n")
    return inside


@pytest.fixture(scope="module")
def server(recognizer, root):
    app = create_app(ServeConfig(root=str(root), max_batch=8, max_wait_ms=20), recognizer=recognizer)
    with serving(app) as url:
        yield url


def test_predict_raw_bytes_with_lrc_matches_direct_predict(server, recognizer):
    audio, lrc = EXAMPLE_AUDIO.read_bytes(), EXAMPLE_LYRICS.read_text()
    r = httpx.post(
        f"{server}/predict", content=audio, params={"lyrics": lrc}, headers={"content-type": "audio/flac"}, timeout=60
    )
    assert r.status_code == 200, r.text
    assert same_prediction(r.json(), recognizer.predict(audio, lrc.encode()))
    assert r.json()["lyrics_used"] is True


def test_predict_multipart_and_json_path(server, recognizer, root):
    audio = EXAMPLE_AUDIO.read_bytes()
    r = httpx.post(f"{server}/predict", files={"audio": ("x.flac", audio)}, data={"lyrics": "sunny day"}, timeout=60)
    assert r.status_code == 200, r.text
    assert same_prediction(r.json(), recognizer.predict(audio, b"sunny day"))
    r = httpx.post(f"{server}/predict", json={"path": "a.wav"}, timeout=60)
    assert r.status_code == 200, r.text
    assert same_prediction(r.json(), recognizer.predict(str(root / "a.wav")))
    r = httpx.post(f"{server}/predict", json={"path": str(root / "link_in.wav")}, timeout=60)
    assert r.status_code == 200, r.text  # absolute, and a symlink that stays inside: allowed


@pytest.mark.parametrize(
    "path,status",
    [("../secret.wav", 403), ("link_out.wav", 403), ("/etc/hostname", 403), ("missing.wav", 404), ("", 400)],
)
def test_paths_outside_root_refused(server, path, status):
    r = httpx.post(f"{server}/predict", json={"path": path}, timeout=30)
    assert r.status_code == status, r.text
    assert "error" in r.json()


def test_no_root_reads_no_paths(tmp_path):
    with pytest.raises(RequestError) as e:
        resolve_under_root(None, str(tmp_path))
    assert e.value.status == 403


def test_lyrics_are_text_never_a_server_file(server, recognizer, root):
    """A lyrics value that looks like a file name is read as those words, not as the file."""
    name = str(root.parent / "words.lrc")
    audio = (root / "a.wav").read_bytes()
    r = httpx.post(f"{server}/predict", content=audio, params={"lyrics": name}, timeout=60)
    assert r.status_code == 200, r.text
    assert same_prediction(r.json(), recognizer.predict(audio, name.encode()))
    from_file = recognizer.predict(audio, name)  # what reading the file would have given
    assert abs(from_file.fusion_weight - r.json()["fusion_weight"]) > 1e-6


def test_bad_requests_are_clean_errors(server):
    r = httpx.post(f"{server}/predict", content=b"this is not audio at all" * 10, timeout=30)
    assert r.status_code == 422 and r.json()["error"] == "AudioDecodeError", r.text
    r = httpx.post(f"{server}/predict", content=b"", timeout=30)
    assert r.status_code == 400
    r = httpx.post(f"{server}/predict", content=b"{not json", headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 400
    r = httpx.post(f"{server}/analyze", content=wav_bytes(2.0), params={"window_s": 0.1}, timeout=30)
    assert r.status_code == 400


def test_concurrent_requests_are_batched_and_correct(server, recognizer):
    clips = [wav_bytes(2.0 + 0.25 * i, 200.0 + 40 * i, seed=i) for i in range(12)]
    want = [recognizer.predict(c) for c in clips]

    async def go():
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(client.post(f"{server}/predict", content=c) for c in clips))

    got = asyncio.run(go())
    assert [r.status_code for r in got] == [200] * len(clips)
    assert all(same_prediction(r.json(), w) for r, w in zip(got, want))
    metrics = httpx.get(f"{server}/metrics").text

    # some model call served more than one request: the count of batches of size <= 1 is below the total
    def value(prefix: str) -> float:
        return float(next(ln.split()[-1] for ln in metrics.splitlines() if ln.startswith(prefix)))

    le1, total = value('mersdk_batch_size_bucket{le="1.0"}'), value("mersdk_batch_size_count")
    assert le1 < total
    for name in ("mersdk_requests_total", "mersdk_request_seconds_bucket", "mersdk_queue_depth", "mersdk_in_flight"):
        assert name in metrics


def test_analyze_timeline(server, recognizer):
    audio = EXAMPLE_AUDIO.read_bytes()
    r = httpx.post(f"{server}/analyze", content=audio, params={"window_s": 4, "hop_s": 2, "smooth": 1}, timeout=60)
    assert r.status_code == 200, r.text
    want = recognizer.analyze(audio, window_s=4, hop_s=2, smooth=1)
    got = r.json()
    assert len(got["timeline"]) == len(want.timeline) > 3
    assert max(abs(g["valence"] - w.valence) for g, w in zip(got["timeline"], want.timeline)) <= TOL


def test_health_info_docs(server, recognizer):
    assert httpx.get(f"{server}/health").json()["status"] == "ok"
    info = httpx.get(f"{server}/info").json()
    assert info["model"]["hash"] == recognizer.info()["model"]["hash"] and info["server"]["max_batch"] == 8
    spec = httpx.get(f"{server}/openapi.json").json()
    assert {"/predict", "/analyze", "/health", "/info", "/metrics"} <= set(spec["paths"])
    assert "application/octet-stream" in spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert httpx.get(f"{server}/docs").status_code == 200


def test_oversized_body_refused(recognizer):
    app = create_app(ServeConfig(max_body_bytes=10_000), recognizer=recognizer)
    with serving(app) as url:
        r = httpx.post(f"{url}/predict", content=wav_bytes(2.0), timeout=30)  # 64 kB, declared length
        assert r.status_code == 413, r.text

        def chunks():  # no Content-Length: the limit is enforced while streaming
            for _ in range(20):
                yield b"\0" * 1000

        r = httpx.post(f"{url}/predict", content=chunks(), timeout=30)
        assert r.status_code == 413, r.text
        r = httpx.post(f"{url}/predict", content=wav_bytes(0.6, sr=8000), timeout=30)  # 9.6 kB: under it
        assert r.status_code == 200, r.text


def test_full_queue_gives_429_with_retry_after(recognizer):
    app = create_app(ServeConfig(max_batch=1, max_queue=1, max_wait_ms=0), recognizer=recognizer)
    long_clip = wav_bytes(45.0, seed=3)  # a couple of windows: long enough to keep the worker busy

    async def go():
        async with httpx.AsyncClient(timeout=120) as client:
            return await asyncio.gather(*(client.post(f"{url}/predict", content=long_clip) for _ in range(8)))

    with serving(app) as url:
        got = asyncio.run(go())
    codes = sorted(r.status_code for r in got)
    assert 200 in codes and 429 in codes and set(codes) <= {200, 429}, codes
    busy = [r for r in got if r.status_code == 429]
    assert all(int(r.headers["retry-after"]) >= 1 and r.json()["error"] == "ServerBusyError" for r in busy)


def test_request_timeout_gives_504_and_duration_limit_422(recognizer):
    app = create_app(ServeConfig(request_timeout_s=0.001), recognizer=recognizer)
    with serving(app) as url:
        r = httpx.post(f"{url}/predict", content=wav_bytes(30.0), timeout=60)
        assert r.status_code == 504, r.text
        time.sleep(0.5)  # the worker finishes or skips it; the server still answers
        assert httpx.get(f"{url}/health").status_code == 200


def test_duration_limit(tmp_path):
    import mersdk

    rec = mersdk.Recognizer(backend="torch", max_duration_s=5.0)
    with serving(create_app(ServeConfig(), recognizer=rec)) as url:
        r = httpx.post(f"{url}/predict", content=wav_bytes(8.0), timeout=60)
        assert r.status_code == 422 and r.json()["error"] == "AudioTooLongError", r.text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-3000:]
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("server did not become healthy")


def test_cli_server_binds_loopback_and_finishes_in_flight_on_sigterm(recognizer):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mersdk",
            "serve",
            "--port",
            str(port),
            "--backend",
            "torch",
            "--max-batch",
            "1",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        clips = [wav_bytes(40.0, 300.0 + 50 * i, seed=i) for i in range(4)]

        async def go():
            async with httpx.AsyncClient(timeout=120) as client:
                tasks = [asyncio.ensure_future(client.post(f"{url}/predict", content=c)) for c in clips]
                await asyncio.sleep(0.5)  # all sent and queued behind a one-at-a-time worker
                proc.send_signal(signal.SIGTERM)
                return await asyncio.gather(*tasks)

        got = asyncio.run(go())
        assert [r.status_code for r in got] == [200] * 4, [r.text for r in got]
        assert all(same_prediction(r.json(), recognizer.predict(c)) for r, c in zip(got, clips))
        # uvicorn re-raises SIGTERM once it has shut down cleanly, so the status is "killed by SIGTERM"
        assert proc.wait(60) in (0, -signal.SIGTERM)
        assert b"Traceback" not in proc.stderr.read()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/health", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_load_test_short_with_restart():
    """benchmarks/load_test.py, short: 8 clients for 5 s, the server killed (SIGKILL) at 2.5 s and
    restarted. Every answer is right; the outage shows only as refused connections."""
    import argparse
    import importlib.util

    spec = importlib.util.spec_from_file_location("load_test", ROOT / "benchmarks" / "load_test.py")
    load_test = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load_test)
    ap = argparse.ArgumentParser()
    load_test.add_args(ap)
    out = load_test.run(
        ap.parse_args(
            [
                "--clients",
                "8",
                "--seconds",
                "10",
                "--restart-at",
                "5",
                "--after-restart-s",
                "6",
                "--n-clips",
                "6",
                "--backend",
                "torch",
            ]
        )
    )
    assert out["wrong"] == 0 and out["lost"] == 0 and out["other_status"] == {}, out
    assert out["restart"]["ok_before_kill"] > 0 and out["restart"]["ok_after_restart"] > 0, out
    assert out["clean_errors"] > 0  # the clients saw the outage, as refused connections
    assert sum(out["batch_sizes"].values()) > 0 and max(out["batch_sizes"]) > 1, out


@pytest.mark.slow
def test_ray_serve_two_replicas(recognizer):
    """The same app on a local Ray Serve with two replicas (about 2 minutes on a loaded 2-core machine)."""
    pytest.importorskip("ray.serve", reason='needs ray[serve] (pip install "mersdk[ray-serve]")')
    import ray
    from ray import serve

    from mersdk.serve.ray_deployment import build

    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception as e:
        pytest.skip(f"a local Ray cannot start here: {e}")
    try:
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build(ServeConfig(backend="torch"), num_replicas=2, num_cpus=0.5), name="mersdk", route_prefix="/")
        states = {k: v.replica_states for k, v in serve.status().applications["mersdk"].deployments.items()}
        assert states == {"mersdk": {"RUNNING": 2}}
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/health", timeout=30).json()["status"] == "ok"
        audio = EXAMPLE_AUDIO.read_bytes()
        r = httpx.post(f"{url}/predict", content=audio, params={"lyrics": EXAMPLE_LYRICS.read_text()}, timeout=120)
        assert r.status_code == 200, r.text
        assert same_prediction(r.json(), recognizer.predict(audio, EXAMPLE_LYRICS.read_bytes()))
        pids = {httpx.get(f"{url}/info", timeout=30).json()["server"]["pid"] for _ in range(20)}
        assert len(pids) >= 1 and os.getpid() not in pids  # answered by replica processes, not this one
    finally:
        serve.shutdown()
        ray.shutdown()


def test_ray_builder_args_are_typed():
    from mersdk.serve.ray_deployment import parse_builder_args

    config, opts = parse_builder_args(
        {
            "num_replicas": "2",
            "num_gpus": "1",
            "max_batch": "16",
            "num_threads": "1",
            "root": "/music",
            "max_wait_ms": "5",
        }
    )
    assert opts == {"num_replicas": 2, "num_gpus": 1.0}
    assert (config.max_batch, config.num_threads, config.root, config.max_wait_ms) == (16, 1, "/music", 5.0)
    with pytest.raises(ValueError, match="unknown option 'replicas'"):
        parse_builder_args({"replicas": "2"})


def test_batcher_isolates_a_bad_input_and_refuses_after_close(recognizer):
    from mersdk.errors import AudioDecodeError
    from mersdk.serve import Batcher, ShuttingDownError
    from mersdk.serve.batching import Job

    clips = [wav_bytes(2.0, 300.0 + 100 * i, seed=i) for i in range(3)]
    batches = []
    with Batcher(recognizer, max_batch=8, max_wait_s=0.5, on_batch=lambda n, s: batches.append(n)) as batcher:
        jobs = [Job("predict", c, None) for c in clips[:2]] + [
            Job("predict", b"not audio" * 50, None),
            Job("predict", clips[2], b"la la"),
        ]
        futures = [batcher.submit(j) for j in jobs]
        results = [f.exception(60) or f.result() for f in futures]
    assert batches == [4]  # one model call for all four
    assert isinstance(results[2], AudioDecodeError)
    for r, c, ly in ((results[0], clips[0], None), (results[1], clips[1], None), (results[3], clips[2], b"la la")):
        assert same_prediction(r.to_dict(), recognizer.predict(c, ly))
    with pytest.raises(ShuttingDownError):
        batcher.submit(Job("predict", clips[0], None))
