"""Hostile inputs (issue 11): files that are not regular files, arrays too long or absurd, ambiguous
lyrics, damaged files, odd argument types. Each must give a clear MersdkError (or the documented
behaviour) quickly: nothing may hang or read without bound. Anything that could block runs under a
deadline (SIGALRM interrupts a blocking open or read) or in a subprocess with a timeout."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import EXAMPLE_AUDIO, tone
from fuzz_harness import case_timeout as deadline  # fails the test instead of hanging the suite

import mersdk
from mersdk.audio import MAX_SAMPLE_ABS, load_audio
from mersdk.lyrics import MAX_LYRICS_BYTES, load_lyrics, parse_lyrics_text, read_lyrics_file

ROOT = Path(__file__).resolve().parents[1]


def make_special(tmp_path: Path, kind: str, name: str) -> Path:
    """A path named ``name`` that is not a regular file: FIFO, /dev/zero by symlink, directory,
    symlink loop or broken symlink."""
    p = tmp_path / name
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "devzero":
        p.symlink_to("/dev/zero")
    elif kind == "directory":
        p.mkdir()
    elif kind == "loop":
        other = tmp_path / f"other_{name}"
        p.symlink_to(other)
        other.symlink_to(p)
    elif kind == "broken":
        p.symlink_to(tmp_path / "gone")
    return p


SPECIAL = {  # kind -> what the message must say
    "fifo": "FIFO",
    "devzero": "character device",
    "directory": "directory",
    "loop": "symbolic link loop",
    "broken": "broken symbolic link",
}


# ---- only regular files are opened -------------------------------------------------------------


@pytest.mark.parametrize("kind", SPECIAL)
def test_audio_path_must_be_a_regular_file(tmp_path, kind):
    p = make_special(tmp_path, kind, "song.wav")
    err = mersdk.AudioFileNotFoundError if kind == "broken" else mersdk.AudioDecodeError
    with deadline(10), pytest.raises(err, match=SPECIAL[kind]) as e:
        load_audio(p, 16000)
    assert str(p) in str(e.value)
    if kind == "loop":
        assert "no such file" not in str(e.value)


@pytest.mark.parametrize("kind", SPECIAL)
@pytest.mark.parametrize("form", [Path, str])
def test_lyrics_path_must_be_a_regular_file(tmp_path, kind, form):
    p = make_special(tmp_path, kind, "song.lrc")
    with deadline(10), pytest.raises(mersdk.LyricsError, match=SPECIAL[kind]) as e:
        load_lyrics(form(p))
    assert str(p) in str(e.value)


def test_fifo_lyrics_do_not_hang_the_api(recognizer, tmp_path):
    fifo = make_special(tmp_path, "fifo", "l.lrc")
    with deadline(30):
        for call in (recognizer.predict, recognizer.analyze):
            with pytest.raises(mersdk.LyricsError, match="FIFO"):
                call(tone(2.0), fifo, sample_rate=16000)
        with pytest.raises(mersdk.LyricsError, match="FIFO"):
            list(recognizer.iter_analyze(tone(2.0), str(fifo), sample_rate=16000))
        with pytest.raises(mersdk.AudioDecodeError, match="FIFO"):
            recognizer.analyze(make_special(tmp_path, "fifo", "a.wav"))


def _bounded_subprocess(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``code`` with at most 2 GiB of address space and a timeout: an unbounded read fails
    the test instead of the machine."""
    pre = "import resource; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", pre + code], capture_output=True, text=True, timeout=timeout, env=env)


def test_dev_zero_is_never_read(tmp_path):
    for name in ("z.wav", "z.txt"):
        os.symlink("/dev/zero", tmp_path / name)
    r = _bounded_subprocess(f"""
import mersdk
from mersdk.audio import load_audio
from mersdk.lyrics import load_lyrics
for f, err in ((lambda: load_audio({str(tmp_path / "z.wav")!r}, 16000), mersdk.AudioDecodeError),
               (lambda: load_lyrics({str(tmp_path / "z.txt")!r}), mersdk.LyricsError)):
    try:
        f()
    except err as e:
        print("refused:", e)
""")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("character device") == 2


def test_lyrics_file_size_is_bounded(tmp_path):
    big = tmp_path / "huge.lrc"
    with open(big, "wb") as f:  # sparse: no disk used
        f.truncate(MAX_LYRICS_BYTES + 1)
    t = time.perf_counter()
    with pytest.raises(mersdk.LyricsError, match="limit"):
        read_lyrics_file(big)
    assert time.perf_counter() - t < 1.0
    ok = tmp_path / "ok.lrc"
    ok.write_text("[00:01.00]la la\n" * 1000)
    assert len(read_lyrics_file(ok).lines) == 1000


def test_file_objects_that_are_not_seekable_binary_files(tmp_path):
    wav = tmp_path / "x.wav"
    sf.write(wav, tone(1.0), 16000)
    with open(wav) as text_mode, pytest.raises(mersdk.InvalidAudioError, match="text mode"):
        load_audio(text_mode, 16000)
    r, w = os.pipe()
    os.write(w, wav.read_bytes()[:4096])
    with os.fdopen(r, "rb") as pipe, os.fdopen(w, "wb"), deadline(10):
        with pytest.raises(mersdk.InvalidAudioError, match="FIFO"):
            load_audio(pipe, 16000)
    with open("/dev/zero", "rb") as zero, deadline(10):
        with pytest.raises(mersdk.InvalidAudioError, match="character device"):
            load_audio(zero, 16000)

    class ReadOnly:  # a reader without seek (a network stream, say)
        def read(self, n=-1):
            return b"\x00" * max(n, 0)

    with deadline(10), pytest.raises(mersdk.InvalidAudioError, match="cannot seek"):
        load_audio(ReadOnly(), 16000)
    closed = io.BytesIO(wav.read_bytes())
    closed.close()
    with pytest.raises(mersdk.InvalidAudioError):
        load_audio(closed, 16000)
    with open(wav, "rb") as good:  # a binary file object still works
        assert load_audio(good, 16000).duration_s == pytest.approx(1.0)


# ---- arrays: bounded work, no NaN out --------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5 * 3600 * 44100,), (5 * 3600 * 44100, 2), (2, 5 * 3600 * 44100)])
def test_too_long_array_is_refused_from_its_shape(shape):
    """Five hours of int16 at 44.1 kHz (1.6 GB+ if real; here a zero-stride view that costs no
    memory) is refused before any conversion or resampling: in milliseconds, not 46 s / 7 GB."""
    x = np.broadcast_to(np.zeros(1, np.int16), shape)
    t = time.perf_counter()
    with pytest.raises(mersdk.AudioTooLongError, match="18000 s"):
        load_audio(x, 16000, sample_rate=44100, max_duration_s=4 * 3600)
    assert time.perf_counter() - t < 0.5


def test_too_long_array_through_the_recognizer():
    rec = mersdk.Recognizer(backend="torch", max_duration_s=60)
    t = time.perf_counter()
    with pytest.raises(mersdk.AudioTooLongError):
        rec.predict(np.broadcast_to(np.zeros(1, np.float32), (61 * 48000,)), sample_rate=48000)
    assert time.perf_counter() - t < 0.5


@pytest.mark.parametrize("value", [3e38, -3e38, 1e18, MAX_SAMPLE_ABS * 1.01])
def test_absurd_samples_are_refused(recognizer, value):
    with pytest.raises(mersdk.InvalidAudioError, match="beyond the limit"):
        recognizer.predict(np.full(48000, value, np.float32), sample_rate=48000)


def test_large_but_allowed_samples_give_finite_probabilities(recognizer):
    """int16-scaled floats and anything up to MAX_SAMPLE_ABS are accepted, and the result is finite."""
    for value in (32768.0, MAX_SAMPLE_ABS):
        x = (value * np.sin(np.arange(48000) / 7)).astype(np.float32)
        p = recognizer.predict(x, sample_rate=48000)
        assert np.isfinite(list(p.probabilities.values())).all() and np.isfinite([p.valence, p.arousal]).all()


@pytest.mark.parametrize("fill", [np.nan, np.inf, -np.inf])
def test_all_nan_or_inf_arrays(recognizer, fill):
    with pytest.raises(mersdk.InvalidAudioError, match="NaN or Inf"):
        recognizer.predict(np.full((48000, 2), fill, np.float32), sample_rate=48000)


def test_float64_overflowing_float32_is_refused(recognizer):
    with pytest.raises(mersdk.InvalidAudioError):
        recognizer.predict(np.full(48000, 1e300), sample_rate=48000)


def test_absurd_samples_in_a_float_file(recognizer, tmp_path):
    f = tmp_path / "loud.wav"
    sf.write(f, np.full(32000, 3e38, np.float32), 16000, subtype="FLOAT")
    with pytest.raises(mersdk.InvalidAudioError, match="beyond the limit"):
        recognizer.predict(f)
    with pytest.raises(mersdk.InvalidAudioError):
        recognizer.analyze(f)


@pytest.mark.parametrize("sr", [float("inf"), float("-inf"), float("nan"), "44100", b"44100", True, [44100], 1e400])
def test_sample_rate_types(sr):
    with pytest.raises(mersdk.InvalidAudioError, match="sample_rate"):
        load_audio(tone(1.0), 16000, sample_rate=sr)


@pytest.mark.parametrize("sr", [44100.0, np.int64(44100), np.float32(44100)])
def test_sample_rate_numeric_types_accepted(sr):
    assert load_audio(tone(1.0, sr=44100), 16000, sample_rate=sr).source_sample_rate == 44100


@pytest.mark.parametrize(
    "source,match",
    [
        ([[0.0] * 20000, [0.0] * 10000], "rectangular"),
        ([["a"] * 20000], "dtype"),
        ([[[0.0] * 20000]], "shape"),
        (np.array(0.5, np.float32), "shape"),
        (np.float32(0.5), "unsupported audio source"),
        (np.array([None] * 20000), "dtype"),
    ],
)
def test_odd_arrays_and_lists(source, match):
    with pytest.raises(mersdk.InvalidAudioError, match=match):
        load_audio(source, 16000, sample_rate=16000)


# ---- damaged and disguised files ----------------------------------------------------------------


def test_flac_cut_mid_stream_uses_what_decodes(tmp_path, caplog):
    data = EXAMPLE_AUDIO.read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 3])
    with caplog.at_level(logging.WARNING, logger="mersdk.audio"):
        a = load_audio(cut, 16000)
    assert 4.0 < a.duration_s < 5.5  # a third of the 16 s clip, less the damaged frame
    assert any("decoding stopped" in r.getMessage() and "cut.flac" in r.getMessage() for r in caplog.records)
    full = load_audio(EXAMPLE_AUDIO, 16000).samples
    n = len(a.samples) - 2000  # the resampler's tail differs where the stream ended
    np.testing.assert_allclose(a.samples[:n], full[:n], atol=1e-6)
    # the same from bytes and from a file object
    assert load_audio(cut.read_bytes(), 16000).duration_s == pytest.approx(a.duration_s)
    with open(cut, "rb") as f:
        assert load_audio(f, 16000).duration_s == pytest.approx(a.duration_s)


def test_cut_flac_streams_in_timelines(recognizer, tmp_path):
    data = EXAMPLE_AUDIO.read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 2])
    res = recognizer.analyze(cut, window_s=2, hop_s=2)
    assert 6.0 < res.summary.duration_s < 8.5 and len(res.timeline) >= 3


@pytest.mark.parametrize("ext", ["mp3", "flac", "wav", "ogg", "opus", "aiff"])
def test_random_bytes_name_the_file(tmp_path, ext):
    f = tmp_path / f"noise.{ext}"
    f.write_bytes(np.random.default_rng(1).bytes(20000))
    with deadline(30), pytest.raises(mersdk.AudioDecodeError, match="not decodable audio") as e:
        load_audio(f, 16000)
    assert str(f) in str(e.value) and "sample_rate 0" not in str(e.value)


@pytest.mark.parametrize("ext", ["mp3", "flac", "wav"])
def test_extras_hint_only_where_it_applies(tmp_path, monkeypatch, ext):
    f = tmp_path / f"noise.{ext}"
    f.write_bytes(np.random.default_rng(2).bytes(5000))
    monkeypatch.setitem(sys.modules, "av", None)  # as if the decoders extra were not installed
    with pytest.raises(mersdk.AudioDecodeError) as e:
        load_audio(f, 16000)
    assert "decoders" not in str(e.value) and "not decodable audio" in str(e.value)
    # an MP4 container by its bytes (named .bin) still gets the hint
    m4a = tmp_path / "x.bin"
    m4a.write_bytes(b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 4000)
    with pytest.raises(mersdk.AudioDecodeError, match=r"mersdk\[decoders\]"):
        load_audio(m4a, 16000)


def test_random_bytes_object(recognizer):
    with pytest.raises(mersdk.AudioDecodeError, match="not decodable audio"):
        recognizer.predict(np.random.default_rng(3).bytes(30000))


# ---- lyrics: text or path, unambiguous -------------------------------------------------------------


def test_lyrics_text_versus_path(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    # text that ends like a file name is text when no such file exists
    assert load_lyrics("and then we said goodbye.txt").text == "and then we said goodbye.txt"
    # a Path is always a file: a missing one is an error, whatever its name
    with pytest.raises(mersdk.LyricsError, match="no such file"):
        load_lyrics(Path("goodbye.txt"))
    with pytest.raises(mersdk.LyricsError, match="no such file"):
        load_lyrics(Path("lyrics"))
    # a single word ending in .lrc that names nothing is a mistyped path, not lyrics
    with pytest.raises(mersdk.LyricsError, match="no such file"):
        load_lyrics("song.lrc")
    assert parse_lyrics_text("song.lrc").text == "song.lrc"  # the explicit way to say it is text
    # the documented str form: a .txt/.lrc that exists is read as the file
    Path("song.lrc").write_text("[00:01.00]sunny day\n")
    assert load_lyrics("song.lrc").timed and load_lyrics("song.lrc").text == "sunny day"
    # a file without a lyrics suffix: Path reads it; a str stays text, with a warning
    Path("words").write_text("the real words\n")
    assert load_lyrics(Path("words")).text == "the real words"
    with caplog.at_level(logging.WARNING, logger="mersdk.lyrics"):
        assert load_lyrics("words").text == "words"
    assert any("pathlib.Path" in r.getMessage() for r in caplog.records)
    with pytest.raises(mersdk.LyricsError, match="must be a str"):
        parse_lyrics_text(Path("words"))
    with pytest.raises(mersdk.LyricsError, match="file name"):
        load_lyrics(Path("bad\x00name.lrc"))
    assert load_lyrics("bad\x00name.lrc").text == "badname.lrc"  # NULs dropped from text


# ---- the command line ------------------------------------------------------------------------------


def cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "mersdk", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        timeout=timeout,
        env=env,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--window-s", "0"],
        ["--window-s", "nan"],
        ["--window-s", "inf"],
        ["--window-s", "x"],
        ["--hop-s", "-1"],
        ["--hop-s", "0"],
        ["--smooth", "0"],
        ["--plot", "/nonexistent/x.png"],
        ["--plot", "{tmp}"],
        ["--plot", "{tmp}/x.notanimage"],
        ["--backend", "foo"],
        ["--device", "tpu"],
        ["--lyrics-file", "{tmp}/l.lrc", "--lyrics-text", "hi"],
        ["--lyrics-file", "{tmp}/missing"],
        ["--lyrics", "{tmp}/fifo.lrc"],
        ["--lyrics-file", "{tmp}"],
        ["--plot", "{tmp}/fifo.png"],
        ["--plot", "{tmp}/loop.png"],
    ],
)
def test_analyze_usage_errors_before_any_work(tmp_path, args):
    os.mkfifo(tmp_path / "fifo.lrc")
    os.mkfifo(tmp_path / "fifo.png")
    make_special(tmp_path, "loop", "loop.png")
    r = cli("analyze", EXAMPLE_AUDIO, *[a.replace("{tmp}", str(tmp_path)) for a in args], timeout=60)
    assert r.returncode == 2, r.stderr
    assert "error:" in r.stderr and "Traceback" not in r.stderr and r.stdout == ""


def test_predict_lyrics_fifo_is_a_usage_error(tmp_path):
    os.mkfifo(tmp_path / "l.lrc")
    for opt in ("--lyrics", "--lyrics-file"):
        r = cli("predict", EXAMPLE_AUDIO, opt, tmp_path / "l.lrc", timeout=60)
        assert r.returncode == 2 and "FIFO" in r.stderr and "Traceback" not in r.stderr


def test_version():
    r = cli("--version", timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"mersdk {mersdk.__version__}"


def test_predict_many_files_json_lines(tmp_path):
    """One JSON object per line as each file is done; a bad file is reported and the rest go on;
    exit 1 because one failed; a progress bar when asked."""
    fifo = make_special(tmp_path, "fifo", "f.wav")
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(np.random.default_rng(4).bytes(5000))
    files = [EXAMPLE_AUDIO, tmp_path / "missing.wav", fifo, noise, tmp_path, EXAMPLE_AUDIO]
    r = cli("predict", *files, "--json", "--lyrics-text", "sunny day", "--progress")
    assert r.returncode == 1, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["audio"] for row in rows] == [str(f) for f in files]
    assert [row["error"] is None for row in rows] == [True, False, False, False, False, True]
    assert rows[0]["label"] == rows[-1]["label"] and rows[0]["lyrics_used"]
    assert "no such file" in rows[1]["error"] and "FIFO" in rows[2]["error"]
    assert "not decodable audio" in rows[3]["error"] and "directory" in rows[4]["error"]
    assert "6/6" in r.stderr and "4 of 6 files failed" in r.stderr and "Traceback" not in r.stderr


def test_predict_one_file_has_the_same_shape_and_lyrics_rule(tmp_path):
    words = tmp_path / "words"  # a lyrics file without a .txt/.lrc name
    words.write_text("we are dancing in the sun\n")
    by_file = cli("predict", EXAMPLE_AUDIO, "--json", "--lyrics", words)
    by_text = cli("predict", EXAMPLE_AUDIO, "--json", "--lyrics-text", "we are dancing in the sun")
    assert by_file.returncode == 0 and by_text.returncode == 0
    a, b = json.loads(by_file.stdout), json.loads(by_text.stdout)  # exactly one line each
    assert a["error"] is None and a["lyrics_used"]
    assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-9)


# ---- generated inputs: only MersdkErrors, never a crash ------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=4096), st.sampled_from([b"", b"RIFF", b"fLaC", b"OggS", b"ID3\x03", b"\xff\xfb"]))
def test_fuzz_audio_bytes(data, magic):
    try:
        a = load_audio(magic + data, 16000)
    except mersdk.MersdkError:
        return
    assert np.isfinite(a.samples).all() and a.duration_s >= 0.5


@FUZZ
@given(
    hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64, np.int16, np.int32, np.uint8, np.float16]),
        shape=st.one_of(
            st.tuples(st.integers(1, 40000)),
            st.tuples(st.integers(1, 9), st.integers(1, 20000)),
            st.tuples(st.integers(1, 20000), st.integers(1, 9)),
            st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 100)),
        ),
    ),
    st.one_of(
        st.sampled_from([8000, 16000, 44100, 48000.0]),
        st.integers(-10, 400000),
        st.floats(allow_nan=True, allow_infinity=True),
    ),
)
def test_fuzz_audio_arrays(x, sr):
    try:
        a = load_audio(x, 16000, sample_rate=sr, max_duration_s=60)
    except mersdk.MersdkError:
        return
    assert np.isfinite(a.samples).all() and a.sample_rate == 16000


@FUZZ
@given(
    st.one_of(
        st.text(max_size=400),
        st.binary(max_size=400),
        st.lists(st.tuples(st.integers(0, 999), st.floats(0, 99), st.text(max_size=20)), max_size=20).map(
            lambda rows: "\n".join(f"[{m}:{s:05.2f}]{t}" for m, s, t in rows)
        ),
    )
)
def test_fuzz_lyrics(text):
    try:
        ly = load_lyrics(text)
    except mersdk.LyricsError:
        return
    assert ly is None or (isinstance(ly.text, str) and ly.lines)
