"""One Recognizer shared by 8 threads mixing predict, predict_batch(batch_size=k), analyze and
streams: every result equals the single-threaded one, and no per-call setting leaks."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import EXAMPLE_LYRICS, tone

N_THREADS = 8
CLIPS = [tone(2.0 + 0.7 * i, freq=200 + 90 * i, seed=i) for i in range(6)]
LYRICS = [None, "la la la\nsing along", EXAMPLE_LYRICS.read_text(), None, "rain on my window", None]


def job(rec, kind: int, i: int):
    """One call of one of four kinds on clip i; returns comparable numbers."""
    clip, lyr = CLIPS[i % len(CLIPS)], LYRICS[i % len(LYRICS)]
    if kind == 0:
        p = rec.predict(clip, lyr, sample_rate=16000)
        return [p.label, *p.probabilities.values(), p.valence, p.arousal, p.fusion_weight]
    if kind == 1:
        k = 1 + i % 3  # a per-call batch size: the call that used to change rec.batch_size
        items = [(CLIPS[(i + j) % len(CLIPS)], LYRICS[(i + j) % len(LYRICS)], 16000) for j in range(4)]
        return [[p.label, *p.probabilities.values(), p.valence] for p in rec.predict_batch(items, batch_size=k)]
    if kind == 2:
        a = rec.analyze(clip, lyr, sample_rate=16000, window_s=1.0, hop_s=0.5, smooth=1)
        return [[s.start_s, *s.probabilities.values(), s.valence] for s in a.timeline]
    stream = rec.stream(16000, lyr, window_s=1.0, hop_s=0.5)
    segs = [s for b in np.array_split(clip, 5) for s in stream.feed(b)] + stream.close()
    return [[s.start_s, *s.probabilities.values(), s.valence] for s in segs]


def assert_close(a, b):
    if isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_close(x, y)
    elif isinstance(a, str):
        assert a == b
    else:
        assert a == pytest.approx(b, abs=1e-5)


def run_shared(rec):
    calls = [(kind, i) for i in range(6) for kind in range(4)]  # 24 calls, 3 per thread
    reference = {c: job(rec, *c) for c in calls}
    results, errors = {}, []
    barrier = threading.Barrier(N_THREADS)

    def worker(t):
        try:
            barrier.wait()
            for c in calls[t::N_THREADS]:
                results[c] = job(rec, *c)
        except Exception as e:  # reported below with the thread that raised it
            errors.append((t, repr(e)))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(N_THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=600)
    assert not any(th.is_alive() for th in threads), "a thread hung"
    assert errors == []
    assert set(results) == set(calls)
    for c in calls:
        assert_close(results[c], reference[c])


def test_torch_recognizer_shared_by_threads(recognizer):
    size = recognizer.batch_size
    run_shared(recognizer)
    assert recognizer.batch_size == size


def test_onnx_recognizer_shared_by_threads(exported_ckpt):
    import mersdk

    with mersdk.Recognizer(exported_ckpt, backend="onnx") as rec:
        run_shared(rec)
