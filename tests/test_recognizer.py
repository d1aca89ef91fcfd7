"""The SDK entry point end to end: predict, predict_batch, windows, backends, info."""

import dataclasses
import io

import pytest
import soundfile as sf
from conftest import EXAMPLE_AUDIO, EXAMPLE_LYRICS, tone

import mersdk
from mersdk.recognizer import window_bounds


def check_prediction(p, rec):
    assert isinstance(p, mersdk.Prediction)
    assert set(p.probabilities) == set(rec.labels)
    assert abs(sum(p.probabilities.values()) - 1.0) < 1e-6
    assert p.label == max(p.probabilities, key=p.probabilities.get)
    assert -1 <= p.valence <= 1 and -1 <= p.arousal <= 1
    assert 0 <= p.fusion_weight <= 1
    assert p.backend == "torch"


def test_predict_example_with_lyrics(recognizer):
    p = recognizer.predict(EXAMPLE_AUDIO, lyrics=EXAMPLE_LYRICS)
    check_prediction(p, recognizer)
    assert p.lyrics_used and p.fusion_weight > 0
    assert p.duration_s == pytest.approx(16.0, abs=0.01)
    d = p.to_dict()
    assert d["label"] == p.label and d["probabilities"] == p.probabilities
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.label = "x"


def test_sources_agree(recognizer, tmp_path):
    """Path, str, file object, bytes and array (at the file's rate) give the same result."""
    data = EXAMPLE_AUDIO.read_bytes()
    x, sr = sf.read(EXAMPLE_AUDIO, dtype="float32")
    ps = [
        recognizer.predict(EXAMPLE_AUDIO),
        recognizer.predict(str(EXAMPLE_AUDIO)),
        recognizer.predict(io.BytesIO(data)),
        recognizer.predict(data),
        recognizer.predict(x, sample_rate=sr),
    ]
    for p in ps[1:]:
        for k in p.probabilities:
            assert p.probabilities[k] == pytest.approx(ps[0].probabilities[k], abs=1e-5)


def test_no_lyrics_means_zero_fusion(recognizer):
    for lyr in (None, "", "   \n\t "):
        p = recognizer.predict(EXAMPLE_AUDIO, lyrics=lyr)
        assert not p.lyrics_used and p.fusion_weight == 0.0


def test_batch_equals_one_by_one(recognizer):
    items = [
        (EXAMPLE_AUDIO, EXAMPLE_LYRICS),
        (tone(3.0), None, 16000),
        {"audio": tone(7.5, sr=44100, freq=220), "sample_rate": 44100, "lyrics": "la la la\nsing along"},
        (tone(1.0, freq=880), "short words", 16000),
    ]
    batch = recognizer.predict_batch(items, batch_size=3)
    assert len(batch) == len(items)
    for item, b in zip(items, batch):
        if isinstance(item, dict):
            one = recognizer.predict(item["audio"], item["lyrics"], sample_rate=item["sample_rate"])
        else:
            audio, lyr, *sr = item
            one = recognizer.predict(audio, lyr, sample_rate=sr[0] if sr else None)
        for k in one.probabilities:
            assert b.probabilities[k] == pytest.approx(one.probabilities[k], abs=1e-5)
        assert b.valence == pytest.approx(one.valence, abs=1e-5)
        assert b.fusion_weight == pytest.approx(one.fusion_weight, abs=1e-5)
        assert b.lyrics_used == one.lyrics_used
    assert recognizer.predict_batch([]) == []


def test_window_bounds():
    sr = 100
    assert window_bounds(10 * sr, sr, 30, 30) == [(0, 1000)]
    assert window_bounds(37 * sr, sr, 30, 30) == [(0, 3700)]  # within the one-window slack
    w = window_bounds(95 * sr, sr, 30, 30)
    assert w == [(0, 3000), (3000, 6000), (6000, 9000), (6500, 9500)]
    assert all(e - s == 3000 for s, e in w)
    w = window_bounds(60 * sr + 1, sr, 30, 15)
    assert w[-1][1] == 6001 and w[0] == (0, 3000)


def test_long_audio_is_windowed(recognizer):
    p = recognizer.predict(tone(100.0, sr=8000), sample_rate=8000)
    assert p.n_windows == 4 and p.duration_s == pytest.approx(100.0)


def test_backend_choice_and_errors():
    from mersdk import backends

    choice = backends.choose("auto", "auto")
    avail = backends.availability("auto")
    # auto takes the first usable backend in preference order (without a checkpoint, runtimes only)
    assert choice.name == next(n for n in backends.PREFERENCE if avail.get(n) is None) and choice.reason
    with pytest.raises(mersdk.BackendUnavailableError, match="not available"):
        mersdk.Recognizer(backend="no-such-backend")
    with pytest.raises(mersdk.BackendUnavailableError, match="cuda"):
        backends.choose("torch", "cuda")
    with pytest.raises(mersdk.BackendUnavailableError, match="unknown device"):
        backends.choose("auto", "tpu")


def test_info(recognizer):
    info = recognizer.info()
    assert info["backend"]["name"] == "torch" and info["backend"]["reason"]
    assert info["model"]["hash"] == recognizer.checkpoint.model_hash
    assert info["backends"]["torch"] == "available"
    assert "extension" in info["build"]


def test_every_backend_implements_the_contract(recognizer):
    from mersdk.backends import registered
    from mersdk.backends.base import Backend

    assert isinstance(recognizer.runtime, Backend)
    for spec in registered().values():
        cls = spec.create if isinstance(spec.create, type) else None
        if cls is not None:  # factories that are classes: check the methods without building them
            for method in ("log_mel", "encode_lyrics", "forward", "kernels", "close"):
                assert callable(getattr(cls, method, None)), f"{spec.name} lacks {method}"
    assert set(recognizer.info()["kernels"]) == {"log_mel", "attention"}


def test_close_and_context_manager():
    with mersdk.Recognizer(backend="torch") as rec:
        p = rec.predict(tone(2.0), sample_rate=16000)
        assert p.label in rec.labels
    rec.close()  # twice is harmless
    with pytest.raises(mersdk.BackendUnavailableError, match="closed"):
        rec.predict(tone(2.0), sample_rate=16000)


def test_loading_leaves_other_libraries_logging_alone():
    import logging
    import subprocess
    import sys
    import tempfile

    # torch and transformers first: what they set up on their own import is not ours
    code = (
        "import logging, numpy, torch, transformers, mersdk, transformers.utils.logging as hf;"
        "before = (hf.get_verbosity(), hf.is_progress_bar_enabled(), logging.getLogger('torch').level);"
        "mersdk.Recognizer(backend='torch').predict(numpy.zeros(16000), sample_rate=16000);"
        "after = (hf.get_verbosity(), hf.is_progress_bar_enabled(), logging.getLogger('torch').level);"
        "print(before == after, [type(h).__name__ for h in logging.getLogger('mersdk').handlers])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tempfile.gettempdir(), timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "['NullHandler']"]
    assert logging.getLogger("mersdk").propagate
