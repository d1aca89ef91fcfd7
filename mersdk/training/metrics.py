"""Metrics (scikit-learn / SciPy where they exist): classification and valence/arousal agreement.

VA metrics compare predictions with *derived* VA targets (see ``data``), not listener ratings.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import stats
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score


def ccc(x, y) -> float:
    """Lin's concordance correlation coefficient (population moments)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(), y.var()
    cov = np.mean((x - mx) * (y - my))
    denom = vx + vy + (mx - my) ** 2
    return float(2 * cov / denom) if denom > 0 else float("nan")


def pearson(x, y) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(stats.pearsonr(x, y)[0])


def icc_3_1(ratings) -> float:
    """ICC(3,1) of Shrout & Fleiss (1979): two-way mixed, consistency, single measure.

    ratings: (n_subjects, k_raters). Here k = 2: the prediction and the derived target."""
    r = np.asarray(ratings, np.float64)
    n, k = r.shape
    grand = r.mean()
    ss_rows = k * np.sum((r.mean(axis=1) - grand) ** 2)
    ss_cols = n * np.sum((r.mean(axis=0) - grand) ** 2)
    ss_err = np.sum((r - grand) ** 2) - ss_rows - ss_cols
    ms_rows = ss_rows / (n - 1)
    ms_err = ss_err / ((n - 1) * (k - 1))
    denom = ms_rows + (k - 1) * ms_err
    return float((ms_rows - ms_err) / denom) if denom > 0 else float("nan")


def va_metrics(pred_va, target_va) -> dict:
    """CCC, Pearson r and ICC(3,1) per dimension (valence, arousal) and their means."""
    pred_va, target_va = np.asarray(pred_va), np.asarray(target_va)
    out: dict[str, Any] = {}
    for j, dim in enumerate(("valence", "arousal")):
        p, t = pred_va[:, j], target_va[:, j]
        out[dim] = {"ccc": ccc(p, t), "pearson": pearson(p, t), "icc_3_1": icc_3_1(np.stack([p, t], 1))}
    for m in ("ccc", "pearson", "icc_3_1"):
        out[f"mean_{m}"] = float(np.mean([out["valence"][m], out["arousal"][m]]))
    return out


def classification_metrics(y_true, probs, n_classes: int) -> dict:
    y_true = np.asarray(y_true)
    probs = np.asarray(probs, np.float64)
    y_pred = probs.argmax(1)
    labels = list(range(n_classes))
    try:
        auc = float(
            roc_auc_score(
                y_true, probs / probs.sum(1, keepdims=True), multi_class="ovr", average="macro", labels=labels
            )
        )
    except ValueError:  # a class absent from y_true (tiny sets)
        auc = float("nan")
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "roc_auc": auc,
        "n": len(y_true),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def bootstrap_ci(y_true, probs, n_classes: int, n_resamples: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Percentile bootstrap intervals of accuracy, macro-F1 and ROC-AUC over the clips (SciPy).

    Clips are resampled with replacement (labels and predictions together), so the interval says how
    much a score would move on another test set of the same size from the same population: one split
    of 181 clips pins macro-F1 down only to about +-0.07. A resample that lacks a class has no AUC; the
    AUC interval is then NaN (happens only on tiny sets)."""
    y_true = np.asarray(y_true)
    probs = np.asarray(probs, np.float64)
    probs = probs / probs.sum(1, keepdims=True)
    y_pred = probs.argmax(1)
    labels = list(range(n_classes))

    def auc(idx):
        with warnings.catch_warnings():  # a resample missing a class: no AUC, say NaN, not a warning per draw
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            try:
                return roc_auc_score(y_true[idx], probs[idx], multi_class="ovr", average="macro", labels=labels)
            except ValueError:
                return float("nan")

    statistic = {
        "accuracy": lambda idx: accuracy_score(y_true[idx], y_pred[idx]),
        "macro_f1": lambda idx: f1_score(y_true[idx], y_pred[idx], labels=labels, average="macro", zero_division=0),
        "roc_auc": auc,
    }
    out = {"level": level, "n_resamples": int(n_resamples), "seed": int(seed), "method": "percentile bootstrap"}
    idx = np.arange(len(y_true))
    for name, fn in statistic.items():
        # the same seed for every metric: the three intervals come from the same resamples
        with warnings.catch_warnings():  # NaN AUC draws: the interval is NaN, as documented above
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            res = stats.bootstrap(
                (idx,),
                fn,
                n_resamples=n_resamples,
                confidence_level=level,
                vectorized=False,
                method="percentile",
                rng=np.random.default_rng(seed),
            )
        ci = res.confidence_interval
        out[name] = [float(ci.low), float(ci.high)]
    return out


def binary_auc(y_true, score) -> float:
    y_true = np.asarray(y_true)
    if len(np.unique(y_true)) < 2:
        return float("nan")
    return float(roc_auc_score(y_true, score))
