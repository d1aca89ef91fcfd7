"""Hostile files and outputs for ``mersdk tag``: FIFOs and devices named like audio or lyrics,
unusable ``--out`` targets, a full disk (``RLIMIT_FSIZE``), bad numbers, and Ctrl-C while a worker is
stuck. Each ends with an error row or ``mersdk: error: ...``, never a hang; subprocesses run under
a timeout so a regression fails instead of hanging the suite."""

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tagging_helpers import write_clip

from mersdk.cli import main as cli_main
from mersdk.tagging import tag_library
from mersdk.tagging.store import StoreError

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    "PYTHONDONTWRITEBYTECODE": "1",
}
MODEL_LOAD_S = 300  # a generous bound: the model loads in seconds, but the test machine may be busy


def _cli(args, timeout=MODEL_LOAD_S, **kw):
    return subprocess.run(
        [sys.executable, "-m", "mersdk.cli", "tag", *map(str, args)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def _jsonl(path):
    return {os.path.basename(r["path"]): r for r in map(json.loads, Path(path).read_text().splitlines())}


def test_fifos_and_devices_named_like_audio_or_lyrics(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    os.mkfifo(lib / "pipe.wav")
    (lib / "zero.wav").symlink_to("/dev/zero")
    write_clip(lib / "a.wav", "wav")
    (lib / "a.txt").symlink_to("/dev/zero")  # lyrics that would read forever
    write_clip(lib / "b.wav", "wav", seed=1)
    os.mkfifo(lib / "b.lrc")  # lyrics that would block forever
    out = tmp_path / "o.jsonl"
    p = _cli([lib, "--out", out, "--no-progress", "--backend", "torch"])
    assert p.returncode == 0, p.stderr[-3000:]
    rows = _jsonl(out)
    assert "FIFO" in rows["pipe.wav"]["error"] and "not a regular file" in rows["pipe.wav"]["error"]
    assert "character device" in rows["zero.wav"]["error"]
    for name in ("a.wav", "b.wav"):
        assert rows[name]["error"] is None and rows[name]["lyrics_used"] is False


def test_a_file_that_became_a_fifo_is_not_read(tmp_path):
    """The hash opens non-blocking and checks the file type again, so a swap after the check cannot block."""
    from mersdk.tagging.runner import sha256_of

    os.mkfifo(tmp_path / "p.wav")
    with pytest.raises(OSError, match="not a regular file"):
        sha256_of(str(tmp_path / "p.wav"))


@pytest.mark.parametrize(
    "case", ["folder", "dev-full", "fifo", "missing-folder", "text-as-sqlite", "text-as-jsonl", "binary-as-csv"]
)
def test_unusable_out_is_a_usage_error(tmp_path, capsys, case):
    lib = tmp_path / "lib"
    lib.mkdir()
    write_clip(lib / "a.wav", "wav")
    out = {
        "folder": tmp_path,
        "dev-full": Path("/dev/full"),
        "fifo": tmp_path / "o.sqlite",
        "missing-folder": tmp_path / "nope" / "o.sqlite",
        "text-as-sqlite": tmp_path / "notes.sqlite",
        "text-as-jsonl": tmp_path / "notes.jsonl",
        "binary-as-csv": tmp_path / "x.csv",
    }[case]
    if case == "fifo":
        os.mkfifo(out)
    elif case.startswith("text"):
        out.write_text("shopping list\nmilk\n" * 100)
    elif case == "binary-as-csv":
        out.write_bytes(os.urandom(5000))
    before = out.stat().st_size if out.is_file() else None
    t0 = time.perf_counter()
    assert cli_main(["tag", str(lib), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mersdk: error: ") and "Traceback" not in err, err
    assert time.perf_counter() - t0 < 30  # refused before the model loads
    if before is not None:
        assert out.stat().st_size == before  # the user's file is left as it was


def test_out_dev_stdout_into_a_pipe(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    write_clip(lib / "a.wav", "wav")
    p = _cli([lib, "--out", "/dev/stdout", "--no-progress"], timeout=120)
    assert p.returncode == 2 and p.stderr.startswith("mersdk: error: --out /dev/stdout is a FIFO"), p.stderr[-2000:]


def test_corrupt_sqlite_store(tmp_path, recognizer):
    lib = tmp_path / "lib"
    lib.mkdir()
    write_clip(lib / "a.wav", "wav")
    out = tmp_path / "o.sqlite"
    db = sqlite3.connect(out)
    db.execute(
        "CREATE TABLE tracks (path TEXT, model_hash TEXT, sha256 TEXT, error TEXT, filler TEXT, "
        "PRIMARY KEY (path, model_hash))"
    )
    db.executemany(
        "INSERT INTO tracks VALUES (?, ?, ?, NULL, ?)",
        [(f"/x/{i}.wav", recognizer.checkpoint.model_hash, "0" * 64, "y" * 500) for i in range(200)],
    )
    db.commit()
    db.close()
    data = bytearray(out.read_bytes())
    data[4096 * 2 : 4096 * 6] = os.urandom(4096 * 4)  # table pages overwritten; the schema page is intact
    out.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="malformed|not a database"):
        tag_library([lib], out, recognizer=recognizer, progress=False)


def _limit_file_size(limit):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("name, limit", [("o.jsonl", 3000), ("o.sqlite", 48_000)])
def test_disk_full_ends_the_run_with_an_error(tmp_path, name, limit):
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(40):
        write_clip(lib / f"t{i:02d}.wav", "wav", seconds=1.0, seed=i)
    out = tmp_path / name
    p = _cli(
        [lib, "--out", out, "--no-progress", "--backend", "torch", "--batch-size", "4"],
        preexec_fn=_limit_file_size(limit),
    )
    assert p.returncode == 2, (p.returncode, p.stderr[-3000:])
    assert p.stderr.count("mersdk: error: cannot write to") == 1 and "Traceback" not in p.stderr, p.stderr[-3000:]
    assert "File too large" in p.stderr or "full" in p.stderr
    assert all(f.stat().st_size <= limit for f in tmp_path.iterdir() if f.is_file())
    if name.endswith(".jsonl"):  # the rows written before the limit are whole and kept
        assert 1 <= len(_jsonl(out)) < 40


@pytest.mark.parametrize("flag", ["--batch-size", "--workers", "--threads"])
@pytest.mark.parametrize("value", ["0", "-3", "two"])
def test_bad_numbers_are_usage_errors(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as e:
        cli_main(["tag", str(tmp_path), "--out", str(tmp_path / "o.sqlite"), flag, value])
    assert e.value.code == 2 and flag in capsys.readouterr().err


# the CLI with one file whose decode never returns (as on a dead network mount)
STUCK_CLI = r"""
import sys, threading
from mersdk.tagging import runner
real_load = runner.load_audio
def load_audio(path, *a, **kw):
    if path.endswith("stuck.wav"):
        threading.Event().wait()
    return real_load(path, *a, **kw)
runner.load_audio = load_audio
from mersdk.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_stops_promptly_while_a_worker_is_stuck(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    write_clip(lib / "stuck.wav", "wav")
    for i in range(30):
        write_clip(lib / f"t{i:02d}.wav", "wav", seconds=3.0, seed=i)
    out = tmp_path / "o.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            STUCK_CLI,
            "tag",
            str(lib),
            "--out",
            str(out),
            "--no-progress",
            "--backend",
            "torch",
            "--batch-size",
            "2",
            "--workers",
            "2",
        ],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + MODEL_LOAD_S
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.read_text().count("\n") >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"\nstopped {took:.2f} s after Ctrl-C")
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err[-3000:]
    assert took < 2.0, took  # "about a second": the grace period is 0.6 s
    rows = _jsonl(out)
    assert 2 <= len(rows) < 31 and "stuck.wav" not in rows
