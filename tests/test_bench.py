"""The latency benchmark: real songs (distinct, each once), stages, the background load it starts
and stops itself, and the synthetic fallback labelled as such."""

from __future__ import annotations

import os

import pytest
from conftest import DATA, needs_data

from mersdk import bench


@needs_data
def test_real_songs_are_distinct_with_lyrics():
    warm, songs = bench.real_songs(DATA, 30)
    ids = [s["id"] for s in warm + songs]
    assert len(songs) == 30 and len(set(ids)) == len(ids)
    assert all(os.path.isfile(s["audio"]) and os.path.isfile(s["lyrics"]) for s in warm + songs)


def test_real_songs_refuses_too_few(tmp_path):
    (tmp_path / "mirex_mm" / "lyrics").mkdir(parents=True)
    with pytest.raises(ValueError, match="clips with lyrics"):
        bench.real_songs(tmp_path, 30)


def test_background_load_starts_and_stops_its_processes():
    with bench.BackgroundLoad(2) as load:
        pids = [p.pid for p in load.procs]
        assert all(p.poll() is None for p in load.procs)
    assert len(pids) == 2 and all(p.poll() is not None for p in load.procs)


@needs_data
def test_real_benchmark_reports_stages_and_ratios():
    pytest.importorskip("vibenet")
    report = bench.run_real(DATA, engines=("onnx", "vibenet"), n_songs=2, background_load=1, log=lambda m: None)
    assert set(report["passes"]) == {"quiet", "background_load_1"}
    for p in report["passes"].values():
        s = p["summary"]["onnx"]
        assert s["total"]["n"] == 2 and s["p50_vs_vibenet"] > 0
        assert all(s[k]["p50_ms"] > 0 for k in ("decode", "resample", "log_mel", "text_encoder", "model"))
        assert s["tokens_p50"] > 0
    md = bench.markdown_real(report)
    assert "real mirex_mm clips" in md and "background_load_1" in md


def test_synthetic_fallback_is_labelled(tmp_path, capsys):
    import argparse

    ap = argparse.ArgumentParser()
    bench.add_args(ap)
    args = ap.parse_args(
        [
            "--data",
            str(tmp_path),
            "--backends",
            "onnx",
            "--repeats",
            "3",
            "--cold-runs",
            "1",
            "--max-batch",
            "1",
            "--md",
            str(tmp_path / "out.md"),
        ]
    )
    assert bench.main_from_args(args) == 0
    assert "SYNTHETIC" in (tmp_path / "out.md").read_text()
    assert "SYNTHETIC" in capsys.readouterr().err
