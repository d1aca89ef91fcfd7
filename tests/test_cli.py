"""The command line as a user runs it (subprocesses), including the README quick-start command."""

import json
import subprocess
import sys
import tempfile

from conftest import EXAMPLE_AUDIO, EXAMPLE_LYRICS


def mersdk(*args, check=True):
    r = subprocess.run(
        [sys.executable, "-m", "mersdk", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        timeout=300,
    )
    if check:
        assert r.returncode == 0, r.stderr
    return r


def test_quickstart_predict_table():
    out = mersdk("predict", EXAMPLE_AUDIO, "--lyrics", EXAMPLE_LYRICS).stdout
    for word in ("label", "valence", "arousal", "lyrics used", "yes", "backend"):
        assert word in out


def test_predict_json():
    d = json.loads(mersdk("predict", EXAMPLE_AUDIO, "--lyrics", "we are dancing in the sun", "--json").stdout)
    keys = {"label", "probabilities", "valence", "arousal", "lyrics_used", "fusion_weight", "duration_s", "backend"}
    assert keys <= set(d)
    assert d["lyrics_used"] is True and abs(sum(d["probabilities"].values()) - 1) < 1e-6


def test_info_json():
    d = json.loads(mersdk("info", "--json").stdout)
    assert d["backends"]["torch"] == "available" and "hash" in d["model"]
    from mersdk import _ext

    # which implementation the hot ops take on the CPU, and why
    want = "compiled CPU kernel" if _ext.available() else "NumPy reference"
    assert d["kernels"]["cpu"]["log_mel"].startswith(want)


def test_errors_are_messages_not_tracebacks(tmp_path):
    r = mersdk("predict", tmp_path / "missing.wav", check=False)
    # an input that failed exits 1 (2 is for usage errors only: issue 12, CLI conventions)
    assert r.returncode == 1 and "no such file" in r.stderr and "Traceback" not in r.stderr
