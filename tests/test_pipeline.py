"""The one inference pipeline: the windowing rule in every form, option checks, the push-style stream
(equal to ``iter_analyze`` however the audio is cut), and evaluation measuring what users get."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import EXAMPLE_LYRICS, tone
from hypothesis import given, settings
from hypothesis import strategies as st

import mersdk
from mersdk.pipeline import ONE_WINDOW_SLACK, WindowCutter, Windower, check_window_options, window_bounds


def cut_in_blocks(n: int, sizes: list[int]) -> list[int]:
    out, left = [], n
    for s in sizes:
        if left <= 0:
            break
        out.append(min(s, left))
        left -= out[-1]
    if left > 0:
        out.append(left)
    return out


# ---- windowing ----------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 5000),
    win=st.integers(1, 700),
    hop=st.integers(1, 700),
    slack=st.sampled_from([1.0, ONE_WINDOW_SLACK]),
    sizes=st.lists(st.integers(1, 900), max_size=30),
)
def test_cutter_on_a_stream_equals_the_rule_for_a_known_length(n, win, hop, slack, sizes):
    sr = 100  # window_s and hop_s in hundredths: exact sample counts
    expected = window_bounds(n, sr, win / sr, hop / sr, slack)
    cut = WindowCutter(sr, win / sr, hop / sr, slack)
    got = []
    for b in cut_in_blocks(n, sizes):
        got += [(s, s + cut.win) for s in cut.push(b)]
        coming = expected[len(got) :]
        assert not coming or cut.keep_from <= coming[0][0]  # a buffering caller still holds what comes
    got += cut.finish()
    assert got == expected
    # the rule itself: full coverage, windows in order, full length unless the signal is one window
    assert expected[0][0] == 0 and expected[-1][1] == n
    assert all(a[0] < b[0] for a, b in zip(expected, expected[1:]))
    if len(expected) > 1:
        assert all(e - s == win for s, e in expected) and n > int(win * slack)


def test_window_rule_examples():
    sr = 100
    assert window_bounds(10 * sr, sr, 30, 30) == [(0, 1000)]
    assert window_bounds(37 * sr, sr, 30, 30) == [(0, 3700)]  # within the one-window slack
    assert window_bounds(37 * sr, sr, 30, 30, slack=1.0) == [(0, 3000), (700, 3700)]
    assert window_bounds(60 * sr, sr, 30, 30) == [(0, 3000), (3000, 6000)]  # no end window needed


def test_windower_gives_the_samples_and_holds_little():
    sr, x = 100, np.arange(10_000, dtype=np.float32)
    w = Windower(sr, 5.0, 2.0)
    got, held = [], 0
    rng = np.random.default_rng(0)
    i = 0
    while i < len(x):
        n = int(rng.integers(1, 300))
        got += w.feed(x[i : i + n])
        i += n
        held = max(held, len(w._buf))
    got += w.finish()
    bounds = window_bounds(len(x), sr, 5.0, 2.0, slack=1.0)
    assert [s for s, _ in got] == [s for s, _ in bounds]
    for (s, samples), (_, e) in zip(got, bounds):
        np.testing.assert_array_equal(samples, x[s:e])
    assert held <= 500 + 300  # one window plus one block, never the whole signal


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 0.0, 0.5, 601.0, 1e300, "ten", None, True])
def test_bad_window_options_are_clear_errors(bad, recognizer):
    with pytest.raises(mersdk.InvalidOptionError, match="window_s"):
        check_window_options(bad, 5.0)
    with pytest.raises(mersdk.InvalidOptionError, match="window_s"):
        recognizer.analyze(tone(3.0), sample_rate=16000, window_s=bad)
    if bad is not None:  # None means the model's default there
        with pytest.raises(mersdk.InvalidOptionError, match="window_s"):
            mersdk.Recognizer(backend="torch", window_s=bad)


@pytest.mark.parametrize("bad", [float("nan"), float("-inf"), math.inf, -1.0, 0.0, 1e-9, 0.05, "x"])
def test_bad_hop_options_are_clear_errors(bad, recognizer):
    with pytest.raises(mersdk.InvalidOptionError, match="hop_s"):
        recognizer.analyze(tone(3.0), sample_rate=16000, hop_s=bad)
    with pytest.raises(mersdk.InvalidOptionError, match="hop_s"):
        list(recognizer.iter_analyze(tone(3.0), sample_rate=16000, hop_s=bad))
    with pytest.raises(mersdk.InvalidOptionError, match="hop_s"):
        recognizer.stream(16000, hop_s=bad)


def test_bad_batch_size_and_smooth(recognizer):
    for bad in (0, -1, 2.5, "3", True):
        with pytest.raises(mersdk.InvalidOptionError, match="batch_size"):
            recognizer.predict_batch([tone(1.0)], batch_size=bad)
    assert isinstance(mersdk.InvalidOptionError("x"), ValueError)  # old handlers of ValueError still work
    with pytest.raises(mersdk.InvalidOptionError, match="smooth"):
        recognizer.analyze(tone(3.0), sample_rate=16000, smooth=0)


def test_huge_finite_samples_are_refused_not_nan(recognizer):
    with pytest.raises(mersdk.InvalidAudioError, match="not finite|beyond the limit"):
        recognizer.predict(np.full(48000, 3e38, np.float32), sample_rate=16000)


# ---- the push-style stream ----------------------------------------------------------------------
def assert_same_segments(a, b, tol=1e-5):
    assert len(a) == len(b)
    for s, t in zip(a, b):
        assert (s.start_s, s.end_s, s.lyric_lines, s.label) == (t.start_s, t.end_s, t.lyric_lines, t.label)
        for k in s.probabilities:
            assert s.probabilities[k] == pytest.approx(t.probabilities[k], abs=tol)
        assert s.valence == pytest.approx(t.valence, abs=tol)
        assert s.fusion_weight == pytest.approx(t.fusion_weight, abs=tol)


def feed_randomly(stream, x, seed, max_block):
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, max_block))
        out += stream.feed(x[i : i + n])
        i += n
    return out + stream.close()


@pytest.mark.parametrize("seed", [0, 1])
def test_stream_equals_iter_analyze_at_44100_stereo_int16(recognizer, seed):
    rng = np.random.default_rng(seed)
    sr = 44100
    left, right = tone(23.3, sr=sr, freq=220, seed=seed), tone(23.3, sr=sr, freq=330, seed=seed + 7)
    x = (np.stack([left, right], axis=1) * 30000).astype(np.int16)
    lrc = EXAMPLE_LYRICS.read_text()
    kw = dict(window_s=4.0, hop_s=3.0, context_s=1.0)
    ref = list(recognizer.iter_analyze(x, lrc, sample_rate=sr, **kw))
    got = feed_randomly(recognizer.stream(sr, lrc, channels=2, **kw), x, seed, int(rng.integers(50, 40000)))
    assert len(ref) == 8 and any(s.lyric_lines for s in ref)
    assert_same_segments(got, ref)


def test_stream_at_the_model_rate_and_segments_come_early(recognizer):
    x = tone(12.0, freq=500)
    ref = list(recognizer.iter_analyze(x, sample_rate=16000, window_s=3, hop_s=2))
    with recognizer.stream(16000, window_s=3, hop_s=2) as stream:
        first = stream.feed(x[: int(3.5 * 16000)])  # [0, 3) is complete, [2, 5) is not
        assert [s.start_s for s in first] == [0.0]
        rest = stream.feed(x[int(3.5 * 16000) :]) + stream.close()
        assert stream.close() == []
    assert_same_segments(first + rest, ref)


def test_stream_keeps_no_reference_to_the_callers_block(recognizer):
    x = tone(9.0, freq=700)
    ref = list(recognizer.iter_analyze(x, sample_rate=16000, window_s=3, hop_s=3))
    stream, block, got = recognizer.stream(16000, window_s=3, hop_s=3), np.empty(4000, np.float32), []
    for i in range(0, len(x), 4000):
        n = min(4000, len(x) - i)
        block[:n] = x[i : i + n]  # a player reuses one buffer
        got += stream.feed(block[:n])
        block[:] = 0.0
    assert_same_segments(got + stream.close(), ref)


def test_stream_errors(recognizer):
    s = recognizer.stream(16000)
    s.feed(tone(0.2))
    with pytest.raises(mersdk.AudioTooShortError):
        s.close()
    s = recognizer.stream(22050, channels=2)
    with pytest.raises(mersdk.InvalidAudioError, match="shape"):
        s.feed(np.zeros(100, np.float32))
    with pytest.raises(mersdk.InvalidAudioError, match="NaN"):
        s.feed(np.full((100, 2), np.nan, np.float32))
    with pytest.raises(mersdk.InvalidAudioError, match="sample_rate"):
        recognizer.stream(float("inf"))
    with pytest.raises(mersdk.InvalidOptionError, match="channels"):
        recognizer.stream(16000, channels=0)
    with recognizer.stream(16000) as s:
        pass
    with pytest.raises(mersdk.InvalidOptionError, match="closed"):
        s.feed(tone(1.0))


# ---- evaluation measures what users get ---------------------------------------------------------
def test_evaluation_equals_predict_batch(recognizer):
    from mersdk.lyrics import load_lyrics
    from mersdk.training.baselines import load_model
    from mersdk.training.evaluate import encode_texts, predict_waves

    model, _, cfg, _, _ = load_model(None)
    waves = [tone(3.0, freq=300), tone(35.0, freq=600, seed=1), tone(70.0, freq=150, seed=2)]
    texts = [None, "sunshine all day long\nwe dance", EXAMPLE_LYRICS.read_text()]
    # evaluation reads lyrics as load_split does: the text of load_lyrics (LRC timestamps removed)
    read = [load_lyrics(t).text if t else None for t in texts]
    pred = predict_waves(model, cfg, waves, encode_texts(read, cfg.text_encoder))
    users = recognizer.predict_batch([(w, t, 16000) for w, t in zip(waves, texts)])
    assert [u.n_windows for u in users] == [1, 1, 3]
    for i, u in enumerate(users):
        for t in cfg.tasks:
            for j, lab in enumerate(t.labels):
                assert pred[t.name][i, j] == pytest.approx(u.task_probabilities[t.name][lab], abs=1e-5)
        assert pred["va"][i, 0] == pytest.approx(u.valence, abs=1e-5)
        assert pred["gate"][i] == pytest.approx(u.fusion_weight, abs=1e-5)
