"""Regenerates the bundled example clip ``sunny_day.flac`` and its lyrics ``sunny_day.lrc``.

Both are synthesized here from scratch (additive synthesis of a major-key chord progression, a
melody and a drum pattern; lyrics written for this project), so they are freely redistributable
(CC0). Run: ``python -m mersdk.examples.make_example``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SR = 22050
BPM = 124
HERE = Path(__file__).parent

LRC = """[ti:Sunny Day (mersdk example)]
[ar:mersdk]
[00:00.50]Wake up, the sun is on the window
[00:04.40]Dancing in the kitchen, singing loud
[00:08.30]Every little thing is going right today
[00:12.20]Hold my hand, we're running through the crowd
"""


def _tone(freq, dur, sr=SR, harmonics=(1.0, 0.5, 0.25), decay=3.0):
    t = np.arange(int(dur * sr)) / sr
    y = sum(a * np.sin(2 * np.pi * freq * (k + 1) * t) for k, a in enumerate(harmonics))
    env = np.minimum(1.0, t / 0.01) * np.exp(-decay * t)
    return (y * env).astype(np.float32)


def _midi(n):
    return 440.0 * 2 ** ((n - 69) / 12)


def synthesize(seconds: float = 16.0, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    beat = 60.0 / BPM
    out = np.zeros(int(seconds * SR) + SR, np.float32)

    def add(sig, at):
        i = int(at * SR)
        n = min(len(sig), len(out) - i)
        if n > 0:
            out[i : i + n] += sig[:n]

    chords = [(60, 64, 67), (67, 71, 74), (69, 72, 76), (65, 69, 72)]  # I V vi IV in C major
    melody = [72, 74, 76, 79, 76, 74, 72, 74, 76, 76, 74, 72, 71, 72, 74, 79]
    n_bars = int(seconds / (4 * beat)) + 1
    for bar in range(n_bars):
        t0 = bar * 4 * beat
        for note in chords[bar % 4]:
            add(0.12 * _tone(_midi(note), 4 * beat, decay=0.8), t0)
        add(0.25 * _tone(_midi(chords[bar % 4][0] - 24), 4 * beat, harmonics=(1.0, 0.3), decay=1.0), t0)
        for k in range(4):
            bt = t0 + k * beat
            add(0.5 * _tone(55.0, 0.25, harmonics=(1.0,), decay=18.0), bt)  # kick
            if k % 2:
                add(
                    0.15
                    * rng.standard_normal(int(0.12 * SR)).astype(np.float32)
                    * np.exp(-np.arange(int(0.12 * SR)) / (0.03 * SR)).astype(np.float32),
                    bt,
                )
            for half in (0, 0.5):  # hi-hat on eighths
                add(0.04 * rng.standard_normal(int(0.04 * SR)).astype(np.float32), bt + half * beat)
            add(
                0.18
                * _tone(_midi(melody[(bar * 4 + k) % len(melody)]), beat, harmonics=(1.0, 0.4, 0.2, 0.1), decay=2.5),
                bt,
            )
    out = out[: int(seconds * SR)]
    fade = int(0.5 * SR)
    out[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
    return (0.8 * out / np.max(np.abs(out))).astype(np.float32)


def main() -> None:
    import soundfile as sf

    sf.write(HERE / "sunny_day.flac", synthesize(), SR, subtype="PCM_16")
    (HERE / "sunny_day.lrc").write_text(LRC)
    print("wrote", HERE / "sunny_day.flac", HERE / "sunny_day.lrc")


if __name__ == "__main__":
    main()
