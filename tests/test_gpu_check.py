"""benchmarks/gpu_check.sh cannot rot between GPU loans: its CPU dry run (every test selection still
selects tests, every script still parses, the embedded Python compiles, CMake still configures) runs
here and must pass, and it must name every GPU step it would run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GPU_STEPS = {
    "build",
    "cuda_kernel_tests",
    "memcheck",
    "racecheck",
    "kernel_benchmarks",
    "ort_gpu_providers",
    "bench_gpu",
}


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_check_dry_run(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    r = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["mode"] == "dry-run" and not summary["failed"], summary
    steps = {s["step"]: s for s in summary["steps"]}
    assert set(summary["skipped"]) >= GPU_STEPS, "every GPU step is named as skipped in a dry run"
    for check in (
        "collect_kernel_tests",
        "collect_sanitizer_tests",
        "parse_kernel_benchmark",
        "parse_bench",
        "compile_ort_check",
        "cmake_configure_cpu",
        "kernel_test_count",
        "sanitizer_test_count",
    ):
        assert steps[check]["status"] == "passed", steps[check]
    assert int(steps["kernel_test_count"]["detail"].split()[0]) >= 50
    assert (tmp_path / "environment.txt").read_text().startswith("date:")
