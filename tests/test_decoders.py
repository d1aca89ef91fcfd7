"""The PyAV fallback (``mersdk[decoders]``): containers libsndfile cannot open, and the message
when the extra is missing."""

import sys

import numpy as np
import pytest
from tagging_helpers import needs_av, write_clip, write_wma

import mersdk
from mersdk.audio import load_audio


@needs_av
@pytest.mark.parametrize("container", ["m4a-aac", "m4a-alac", "wma"])
def test_pyav_decodes_what_libsndfile_cannot(tmp_path, container):
    f = write_wma(tmp_path / "x.wma") if container == "wma" else write_clip(tmp_path / "x.m4a", container)
    a = load_audio(f, 16000)
    assert a.sample_rate == 16000 and a.source_sample_rate == 44100
    assert 1.4 < a.duration_s < 1.7  # codec priming/padding adds a few ms
    assert a.peak > 0.01 and np.isfinite(a.samples).all()


@needs_av
def test_pyav_lossless_matches_soundfile_path(tmp_path):
    """ALAC decoded by PyAV equals the same signal written as WAV and decoded by libsndfile."""
    import soundfile as sf
    from tagging_helpers import source_signal

    write_clip(tmp_path / "x.m4a", "m4a-alac")
    x = source_signal(1.5, 44100)
    sf.write(tmp_path / "x.wav", x, 44100, subtype="PCM_16")
    a, b = load_audio(tmp_path / "x.m4a", 16000).samples, load_audio(tmp_path / "x.wav", 16000).samples
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) < 1e-3  # both 16-bit: quantisation only


@needs_av
def test_pyav_errors_are_typed(tmp_path):
    f = tmp_path / "fake.m4a"
    f.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(range(256)) * 40)  # a valid-looking header, then garbage
    with pytest.raises(mersdk.AudioDecodeError, match="FFmpeg"):
        load_audio(f, 16000)
    short = write_clip(tmp_path / "short.m4a", "m4a-alac", seconds=0.2)
    with pytest.raises(mersdk.AudioTooShortError):
        load_audio(short, 16000)
    with pytest.raises(mersdk.AudioTooLongError):
        load_audio(write_clip(tmp_path / "long.m4a", "m4a-alac", seconds=2.0), 16000, max_duration_s=1.0)


@needs_av
def test_drm_sample_entry_is_refused(tmp_path):
    """Simulated FairPlay: an AAC .m4a whose sample entry 'mp4a' is renamed 'drms', as iTunes does
    for protected tracks (the payload here is not really encrypted)."""
    data = write_clip(tmp_path / "x.m4a", "m4a-aac").read_bytes()
    assert data.count(b"mp4a") == 1
    (tmp_path / "x.m4p").write_bytes(data.replace(b"mp4a", b"drms"))
    with pytest.raises(mersdk.AudioDecodeError, match="DRM"):
        load_audio(tmp_path / "x.m4p", 16000)


@needs_av
def test_pyav_file_cut_mid_stream_uses_what_decodes(tmp_path, caplog):
    """As for FLAC through libsndfile: a WMA cut in half gives the audio before the cut, with a warning."""
    import logging

    data = write_wma(tmp_path / "x.wma").read_bytes()
    cut = tmp_path / "cut.wma"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with caplog.at_level(logging.WARNING, logger="mersdk.audio"):
        a = load_audio(cut, 16000)
    assert 0.5 < a.duration_s < 1.4 and np.isfinite(a.samples).all()
    assert any("decoding stopped" in r.getMessage() for r in caplog.records)
    cut.write_bytes(data[:600])  # the header only: nothing decodes
    with pytest.raises(mersdk.AudioError):
        load_audio(cut, 16000)


def test_without_pyav_the_error_names_the_extra(tmp_path, monkeypatch):
    f = tmp_path / "x.m4a"
    f.write_bytes(b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 4000)
    monkeypatch.setitem(sys.modules, "av", None)  # import av -> ImportError, as when not installed
    with pytest.raises(mersdk.AudioDecodeError, match=r'pip install "mersdk\[decoders\]"'):
        load_audio(f, 16000)


@needs_av
def test_timelines_stream_through_pyav(tmp_path, recognizer):
    """``stream_file`` (timelines, iter_analyze) takes the same PyAV fallback, block by block."""
    from mersdk.audio import StreamInfo, stream_file

    f = write_clip(tmp_path / "x.m4a", "m4a-alac", seconds=12.0)
    info = StreamInfo("x")
    blocks = list(stream_file(f, 16000, None, info))
    assert len(blocks) > 1 and info.source_sample_rate == 44100
    streamed = np.concatenate(blocks)
    np.testing.assert_array_equal(streamed, load_audio(f, 16000).samples)
    res = recognizer.analyze(f, window_s=5, hop_s=5)
    assert len(res.timeline) >= 2 and 11.5 < res.summary.duration_s < 12.5
