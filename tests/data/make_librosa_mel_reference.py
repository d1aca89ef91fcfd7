"""Writes librosa_mel_reference.npz: librosa's mel filterbanks, the reference for the Slaney (and HTK)
filterbank of mersdk.features (tests/test_features.py). Run once in a throwaway venv:

    python3 -m venv /tmp/librosa-venv && /tmp/librosa-venv/bin/pip install librosa==0.11.0
    /tmp/librosa-venv/bin/python tests/data/make_librosa_mel_reference.py

librosa is not a dependency of mersdk or its tests; only its output is stored here.
"""

import json
import os

import librosa
import numpy as np

CASES = [  # (sr, n_fft, n_mels, fmin, fmax, htk, norm)
    (16000, 512, 96, 0.0, 8000.0, False, "slaney"),  # musicnn's front end
    (22050, 2048, 128, 30.0, 11025.0, False, "slaney"),
    (44100, 1023, 40, 50.0, 16000.0, False, None),
    (16000, 1024, 64, 30.0, 8000.0, True, None),  # mersdk's default (HTK, peak 1)
]

arrays = {}
for i, (sr, n_fft, n_mels, fmin, fmax, htk, norm) in enumerate(CASES):
    arrays[f"fb{i}"] = librosa.filters.mel(
        sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm, dtype=np.float32
    )
arrays["cases"] = np.array(json.dumps({"librosa": librosa.__version__, "cases": CASES}))
np.savez_compressed(os.path.join(os.path.dirname(os.path.abspath(__file__)), "librosa_mel_reference.npz"), **arrays)
