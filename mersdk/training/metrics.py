"""Metrics (scikit-learn / SciPy where they exist): classification and valence/arousal agreement.

VA metrics compare predictions with *derived* VA targets (see ``data``), not listener ratings.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
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
    out = {}
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
        auc = float(roc_auc_score(y_true, probs / probs.sum(1, keepdims=True), multi_class="ovr",
                                  average="macro", labels=labels))
    except ValueError:  # a class absent from y_true (tiny sets)
        auc = float("nan")
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "roc_auc": auc,
        "n": int(len(y_true)),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def binary_auc(y_true, score) -> float:
    y_true = np.asarray(y_true)
    if len(np.unique(y_true)) < 2:
        return float("nan")
    return float(roc_auc_score(y_true, score))
