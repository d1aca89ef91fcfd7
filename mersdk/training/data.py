"""Dataset folders (``mirex_mm``, ``quadrants_4q``), their fixed splits, and the derived
valence/arousal targets.

Layout read (see the data README): ``<root>/<dataset>/labels.csv``, ``splits.csv``,
``audio/<id>.opus`` (or another extension), for mirex_mm ``lyrics/<id>.txt``, and
``<root>/lexicon/Ratings_Warriner_et_al.csv``.
Nothing from the data folder is ever copied into the repository; the folder comes from the command
line or ``MERSDK_DATA`` (default ``../shared/data`` relative to the repository root).

Derived valence/arousal targets (NOT listener ratings; always called "derived VA targets"):

* quadrants_4q: the quadrant's signs at magnitude 0.5: Q1 (+0.5, +0.5), Q2 (-0.5, +0.5),
  Q3 (-0.5, -0.5), Q4 (+0.5, -0.5).
* mirex_mm: the clip's AllMusic mood adjective looked up in the Warriner et al. (2013) norms
  (``V.Mean.Sum``, ``A.Mean.Sum``, scale 1-9) and rescaled linearly to [-1, 1] by (x - 5) / 4.
  Adjectives are mapped to lemmas by ``MOOD_LEMMAS`` (spelling fixed, compounds averaged); an
  adjective with no lemma in the norms gets the mean of the covered adjectives of its MIREX cluster.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import CLUSTER_LABELS, QUADRANT_LABELS

DATASETS = ("mirex_mm", "quadrants_4q")
TASK_OF_DATASET = {"mirex_mm": "cluster", "quadrants_4q": "quadrant"}
QUADRANT_VA = {"Q1": (0.5, 0.5), "Q2": (-0.5, 0.5), "Q3": (-0.5, -0.5), "Q4": (0.5, -0.5)}

# mood adjective (as spelled in labels.csv) -> lexicon lemmas averaged; others: the lower-cased word.
# "good" is not used for "Amiable-good natured": the norms rate "good" alone, another meaning.
MOOD_LEMMAS = {
    "Agressive": ("aggressive",),
    "Amiable-good natured": ("amiable",),
    "Tense - Anxious": ("tense", "anxious"),
}

# Shared binary space for the cross-dataset experiment: MIREX cluster -> (valence sign, arousal
# sign); None = undetermined (cluster 4, humorous/whimsical, has no clear arousal: left out of the
# arousal AUC). Following Russell's circumplex reading of the cluster adjectives:
# 1 passionate/rousing +V +A; 2 cheerful/fun +V +A; 3 poignant/wistful -V -A;
# 4 humorous/whimsical +V ?A; 5 aggressive/tense -V +A.
CLUSTER_BINARY_VA = {0: (1, 1), 1: (1, 1), 2: (0, 0), 3: (1, None), 4: (0, 1)}
# quadrant index (Q1..Q4 = 0..3) -> (valence positive, arousal high)
QUADRANT_BINARY_VA = {0: (1, 1), 1: (0, 1), 2: (0, 0), 3: (1, 0)}

# the same recordings in both sets (left out of the test side of the cross-dataset experiment)
SHARED_RECORDINGS = {
    "mirex_mm": ("187", "833", "835"),
    "quadrants_4q": ("MT0000442827", "MT0015541501", "MT0004028719"),
}


def default_data_dir() -> Path:
    env = os.environ.get("MERSDK_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


@dataclass(frozen=True)
class Clip:
    dataset: str
    id: str
    split: str
    fold: int
    task: str
    label: int  # index into the task's labels
    va: tuple[float, float]  # derived VA target
    artist: str
    audio_path: Path
    lyrics_path: Path | None  # None: no lyrics for this clip


def load_lexicon(root: Path) -> dict[str, tuple[float, float]]:
    path = Path(root) / "lexicon" / "Ratings_Warriner_et_al.csv"
    with open(path, newline="", encoding="utf-8") as f:
        return {r["Word"]: (float(r["V.Mean.Sum"]), float(r["A.Mean.Sum"])) for r in csv.DictReader(f)}


def mood_va_table(moods_by_cluster: dict[str, int], lexicon: dict[str, tuple[float, float]]):
    """mood adjective -> derived (valence, arousal) in [-1, 1] (see module docstring)."""
    raw: dict[str, tuple[float, float]] = {}
    for mood in moods_by_cluster:
        lemmas = MOOD_LEMMAS.get(mood, (mood.strip().lower(),))
        found = [lexicon[w] for w in lemmas if w in lexicon]
        if found:
            raw[mood] = tuple(np.mean(found, axis=0))
    table = {}
    for mood, cluster in moods_by_cluster.items():
        if mood in raw:
            v, a = raw[mood]
        else:
            same = [raw[m] for m, c in moods_by_cluster.items() if c == cluster and m in raw]
            v, a = np.mean(same, axis=0)
        table[mood] = (float((v - 5.0) / 4.0), float((a - 5.0) / 4.0))
    return table


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def load_clips(root: os.PathLike, dataset: str) -> list[Clip]:
    """Every clip of a dataset folder with its split, label and derived VA target."""
    root = Path(root)
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
    d = root / dataset
    splits = {r["id"]: (r["split"], int(r["fold"])) for r in _read_csv(d / "splits.csv")}
    # <id>.opus in the shipped data; any extension soundfile reads is accepted (tests write .wav)
    audio = {p.stem: p for p in sorted((d / "audio").iterdir())}
    rows = _read_csv(d / "labels.csv")
    clips = []
    if dataset == "mirex_mm":
        moods = {r["mood"]: int(r["cluster"]) for r in rows}
        va_of_mood = mood_va_table(moods, load_lexicon(root))
        for r in rows:
            lyr = d / "lyrics" / f"{r['id']}.txt"
            has = r.get("has_lyrics", "1") == "1" and lyr.is_file()
            split, fold = splits[r["id"]]
            clips.append(
                Clip(
                    dataset,
                    r["id"],
                    split,
                    fold,
                    "cluster",
                    int(r["cluster"]) - 1,
                    va_of_mood[r["mood"]],
                    r["artist"],
                    audio[r["id"]],
                    lyr if has else None,
                )
            )
    else:
        for r in rows:
            split, fold = splits[r["id"]]
            q = r["quadrant"]
            clips.append(
                Clip(
                    dataset,
                    r["id"],
                    split,
                    fold,
                    "quadrant",
                    int(q[1]) - 1,
                    QUADRANT_VA[q],
                    r["artist"],
                    audio[r["id"]],
                    None,
                )
            )
    return clips


def labels_of(task: str) -> tuple[str, ...]:
    return CLUSTER_LABELS if task == "cluster" else QUADRANT_LABELS
