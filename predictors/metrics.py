"""Metrics for property predictors, with NaN targets masked: MAE, R², Spearman ρ (regression)
and ROC-AUC (classification).

Every function takes ``y_true`` and ``y_pred`` of shape [n] and ignores the entries where
``y_true`` is NaN (a missing label); it returns NaN when too few labelled entries are left for
the metric to be defined (R² and ρ need two distinct values, ROC-AUC both classes).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

KINDS = ("regression", "classification")


def _labelled(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    mask = np.isfinite(y_true)
    return y_true[mask], y_pred[mask]


def mae(y_true, y_pred) -> float:
    """Mean absolute error, in the target's unit."""
    t, p = _labelled(y_true, y_pred)
    return float(np.mean(np.abs(t - p))) if len(t) else float("nan")


def r2(y_true, y_pred) -> float:
    """Coefficient of determination ``1 - Σ(t - p)² / Σ(t - mean t)²`` (1 is perfect, 0 is
    the mean predictor, negative is worse than it)."""
    t, p = _labelled(y_true, y_pred)
    total = float(np.sum((t - t.mean()) ** 2)) if len(t) else 0.0
    if total == 0.0:
        return float("nan")
    return 1.0 - float(np.sum((t - p) ** 2)) / total


def spearman(y_true, y_pred) -> float:
    """Spearman rank correlation ρ (scipy; ties get average ranks)."""
    from scipy.stats import spearmanr

    t, p = _labelled(y_true, y_pred)
    if len(t) < 2 or np.ptp(t) == 0 or np.ptp(p) == 0:
        return float("nan")
    return float(spearmanr(t, p).statistic)


def roc_auc(y_true, y_score) -> float:
    """Area under the ROC curve (scikit-learn) of scores for labels in {0, 1}."""
    from sklearn.metrics import roc_auc_score

    t, s = _labelled(y_true, y_score)
    if len(np.unique(t)) < 2:
        return float("nan")
    return float(roc_auc_score(t, s))


def evaluate(
    Y_true: np.ndarray,
    Y_pred: np.ndarray,
    kinds: Sequence[str],
    names: Sequence[str] | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics per target.

    Args:
        Y_true: [n, T] labels (NaN = missing).
        Y_pred: [n, T] predictions (probabilities of class 1 for classification targets).
        kinds: [T] ``"regression"`` or ``"classification"``.
        names: [T] target names (default ``"0"``, ``"1"``, …).

    Returns:
        ``{name: {"mae", "r2", "spearman"}}`` for regression targets and ``{name: {"roc_auc"}}``
        for classification targets, plus ``"n"``, the number of labelled entries.
    """
    Y_true, Y_pred = np.atleast_2d(Y_true), np.atleast_2d(Y_pred)
    kinds = check_kinds(kinds, Y_true.shape[1])
    names = [str(t) for t in range(len(kinds))] if names is None else list(names)
    out = {}
    for t, (name, kind) in enumerate(zip(names, kinds)):
        y, p = Y_true[:, t], Y_pred[:, t]
        n = float(np.isfinite(y).sum())
        if kind == "regression":
            out[name] = {"n": n, "mae": mae(y, p), "r2": r2(y, p), "spearman": spearman(y, p)}
        else:
            out[name] = {"n": n, "roc_auc": roc_auc(y, p)}
    return out


def check_kinds(kinds: Sequence[str], n_targets: int) -> tuple[str, ...]:
    """Validate one kind per target."""
    kinds = tuple(kinds)
    if len(kinds) != n_targets:
        raise ValueError(f"{len(kinds)} kinds for {n_targets} targets")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown target kinds {unknown}; use one of {KINDS}")
    return kinds
