"""Timelines: segments, lyric alignment (moving a line's timestamp moves its influence), streaming."""

import json
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import soundfile as sf
from conftest import EXAMPLE_AUDIO, EXAMPLE_LYRICS, tone

from mersdk import audio as audio_mod
from mersdk import timeline as tl_mod
from mersdk.lyrics import load_lyrics
from mersdk.timeline import lines_for_segment


def test_segments_cover_the_track(recognizer):
    a = recognizer.analyze(tone(23.0), sample_rate=16000, window_s=5, hop_s=5, smooth=1)
    starts = [s.start_s for s in a.timeline]
    assert starts == [0.0, 5.0, 10.0, 15.0, 18.0]  # the last one is aligned to the end
    assert all(s.end_s - s.start_s == pytest.approx(5.0) for s in a.timeline)
    assert a.summary.n_windows == 5 and a.summary.duration_s == pytest.approx(23.0)
    for s in a.timeline:
        assert abs(sum(s.probabilities.values()) - 1) < 1e-6 and -1 <= s.valence <= 1


def test_moving_a_line_moves_its_influence(recognizer):
    audio = tone(30.0, freq=330)
    no_lyrics = recognizer.analyze(audio, sample_rate=16000, window_s=5, hop_s=5, context_s=0, smooth=1)

    def run(t):
        lrc = f"[00:{t:05.2f}]I am so sad and lonely tonight\n"
        return recognizer.analyze(audio, lrc, sample_rate=16000, window_s=5, hop_s=5, context_s=0, smooth=1)

    # a single (last) line is sung over [t, t + 8 s): segments of 5 s that overlap it read it
    for t, expected in ((3.0, [0, 1, 2]), (23.0, [4, 5])):
        a = run(t)
        touched = [i for i, s in enumerate(a.timeline) if s.lyric_lines]
        assert touched == expected
        for i, (s, ref) in enumerate(zip(a.timeline, no_lyrics.timeline)):
            if i in touched:
                assert s.fusion_weight > 0
                assert max(abs(s.probabilities[k] - ref.probabilities[k]) for k in s.probabilities) > 1e-4
            else:
                assert s.fusion_weight == 0
                for k in s.probabilities:
                    assert s.probabilities[k] == pytest.approx(ref.probabilities[k], abs=1e-5)


def test_lines_for_segment_rules():
    ly = load_lyrics("[00:05.00]one\n[00:12.00]two\n[00:40.00]three\n")
    assert lines_for_segment(ly, 0, 4, 0) == ()
    assert lines_for_segment(ly, 0, 4, 2) == ("one",)
    assert lines_for_segment(ly, 10, 11, 0) == ("one",)  # "one" lasts until "two" starts
    assert lines_for_segment(ly, 30, 35, 0) == ()  # "two" lasts at most 8 s: over by 20 s
    assert lines_for_segment(ly, 45, 50, 0) == ("three",)  # the last line lasts 8 s
    plain = load_lyrics("no timestamps\nhere")
    assert lines_for_segment(plain, 100, 110, 0) == ("no timestamps", "here")


def test_smoothing_is_a_centred_mean(recognizer):
    audio = np.concatenate(
        [tone(10.0, freq=220), np.random.default_rng(0).standard_normal(160000).astype(np.float32) * 0.5]
    )
    raw = recognizer.analyze(audio, sample_rate=16000, window_s=4, hop_s=2, smooth=1).timeline
    sm = recognizer.analyze(audio, sample_rate=16000, window_s=4, hop_s=2, smooth=3).timeline
    i = 3
    assert sm[i].valence == pytest.approx(np.mean([raw[j].valence for j in (2, 3, 4)]), abs=1e-6)
    assert sm[0].valence == pytest.approx(np.mean([raw[0].valence, raw[1].valence]), abs=1e-6)


def test_generator_streams_a_file(recognizer, tmp_path, monkeypatch):
    f = tmp_path / "long.flac"
    x = tone(300.0, sr=8000)
    sf.write(f, x, 8000)
    pulled = []
    real_stream = audio_mod.stream_file

    def counting_stream(*a, **k):
        for block in real_stream(*a, **k):
            pulled.append(len(block))
            yield block

    monkeypatch.setattr(tl_mod, "stream_file", counting_stream)
    monkeypatch.setattr(audio_mod, "_BLOCK_FRAMES", 8000 * 10)
    gen = recognizer.iter_analyze(f, window_s=10, hop_s=10)
    first = next(gen)
    assert first.start_s == 0.0
    # segments come a batch at a time: one batch of windows plus a block or two had been decoded
    assert sum(pulled) <= (recognizer.batch_size + 2) * 10 * 16000 < 300 * 16000
    rest = list(gen)
    assert len(rest) == 29 and rest[-1].end_s == pytest.approx(300.0)
    from_array = recognizer.analyze(x, sample_rate=8000, window_s=10, hop_s=10, smooth=1).timeline
    for s, t in zip([first] + rest, from_array):
        assert s.start_s == t.start_s and s.valence == pytest.approx(t.valence, abs=2e-3)


def test_analyze_cli_json_and_plot(tmp_path):
    png = tmp_path / "tl.png"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mersdk",
            "analyze",
            str(EXAMPLE_AUDIO),
            "--lyrics",
            str(EXAMPLE_LYRICS),
            "--json",
            "--plot",
            str(png),
        ],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        timeout=300,
    )
    pytest.importorskip("matplotlib", reason="matplotlib (extra 'plot') is not installed")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["timeline"] and any(s["lyric_lines"] for s in d["timeline"])
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


def test_plot_leaves_matplotlib_state_alone(recognizer, tmp_path):
    matplotlib = pytest.importorskip("matplotlib", reason="matplotlib (extra 'plot') is not installed")
    import sys as _sys

    backend = matplotlib.get_backend()
    matplotlib.use("svg")  # the application's choice, which the plot must not switch to Agg
    try:
        a = recognizer.analyze(tone(12.0), sample_rate=16000, window_s=4, hop_s=4)
        tl_mod.plot_analysis(a, None, str(tmp_path / "p.png"))
        assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(backend)
    if "matplotlib.pyplot" in _sys.modules:  # another test may have imported it: no figure of ours is left open
        assert _sys.modules["matplotlib.pyplot"].get_fignums() == []
