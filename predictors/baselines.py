"""Descriptor baselines: the training mean and gradient-boosted trees, one model per target.

Gradient boosting is scikit-learn's ``HistGradientBoostingRegressor`` /
``HistGradientBoostingClassifier``: scikit-learn is already a dependency, its histogram GBM is
LightGBM-like (binned features, leaf-wise trees, native NaN handling) and fast on a CPU, and it
needs no extra compiled package. Each target gets its own model, fitted on the rows where that
target is labelled (NaN labels are masked), with early stopping on the validation split that the
caller passes (``X_val``/``y_val``; the training rows are never resplit) and a fixed
``random_state``, so a fit is reproducible.

Targets are ``"regression"`` (predictions in the target's unit) or ``"classification"`` with
labels in {0, 1} (predictions are probabilities of class 1). Models are immutable: ``fit``
returns a new object.

    model = fit_gbm(X_train, Y_train, X_val, Y_val, kinds=["regression", "classification"])
    Y_pred = predict(model, X_test)  # [n_test, 2]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from predictors.metrics import check_kinds


def _as_2d(Y: np.ndarray) -> np.ndarray:
    Y = np.asarray(Y, dtype=np.float64)
    return Y[:, None] if Y.ndim == 1 else Y


@dataclasses.dataclass(frozen=True)
class MeanPredictor:
    """Predicts a constant per target: the training mean (regression) or the training rate of
    class 1 (classification), both over labelled rows only.

    Attributes:
        values: [T] the constants; ``None`` before :meth:`fit`.
    """

    values: np.ndarray | None = None

    def fit(self, X: np.ndarray | None, Y: np.ndarray) -> MeanPredictor:
        """A fitted copy; ``X`` is ignored (accepted for a uniform API). Y: [n, T] or [n]."""
        Y = _as_2d(Y)
        labelled = np.isfinite(Y)
        counts = labelled.sum(axis=0)
        if np.any(counts == 0):
            raise ValueError(f"targets {np.flatnonzero(counts == 0).tolist()} have no labels")
        values = np.where(labelled, Y, 0.0).sum(axis=0) / counts
        return MeanPredictor(values=values)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """[n, T], the constants repeated for each of the ``n`` rows of ``X``."""
        if self.values is None:
            raise ValueError("MeanPredictor is not fitted: call fit first")
        return np.tile(self.values, (len(X), 1))


@dataclasses.dataclass(frozen=True)
class GBMConfig:
    """Hyper-parameters shared by every target (scikit-learn names)."""

    learning_rate: float = 0.05
    max_iter: int = 2000  # upper bound; early stopping decides
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 20
    l2_regularization: float = 1e-3
    n_iter_no_change: int = 50
    random_state: int = 0


@dataclasses.dataclass(frozen=True)
class GBM:
    """One fitted gradient-boosting model per target.

    Attributes:
        models: [T] fitted scikit-learn estimators, or a float (a constant prediction) for a
            classification target whose training labels are all one class.
        kinds: [T] ``"regression"`` or ``"classification"``.
        config: the hyper-parameters used.
    """

    models: tuple
    kinds: tuple[str, ...]
    config: GBMConfig

    @property
    def n_iter(self) -> list[int]:
        """Boosting iterations kept per target (after early stopping)."""
        return [0 if isinstance(m, float) else int(m.n_iter_) for m in self.models]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """[n, T]: values for regression targets, probabilities of class 1 for classification."""
        X = np.asarray(X, dtype=np.float64)
        out = np.empty((len(X), len(self.models)))
        for t, (model, kind) in enumerate(zip(self.models, self.kinds)):
            if isinstance(model, float):
                out[:, t] = model
            elif kind == "classification":
                out[:, t] = model.predict_proba(X)[:, list(model.classes_).index(1.0)]
            else:
                out[:, t] = model.predict(X)
        return out


def fit_gbm(
    X_train: np.ndarray,
    Y_train: np.ndarray,
    X_val: np.ndarray,
    Y_val: np.ndarray,
    kinds: Sequence[str],
    *,
    config: GBMConfig | None = None,
) -> GBM:
    """Fit one histogram gradient-boosting model per target, early-stopped on the validation set.

    Args:
        X_train: [n, F] descriptors; NaN features are allowed (trees route them).
        Y_train: [n, T] (or [n]) targets, NaN where unlabelled.
        X_val: [m, F] validation descriptors.
        Y_val: [m, T] (or [m]) validation targets, NaN where unlabelled.
        kinds: [T] ``"regression"`` or ``"classification"`` (labels in {0, 1}).
        config: hyper-parameters (default :class:`GBMConfig`).

    Raises:
        ValueError: shape mismatch, unknown kind, a target with no training or validation
            labels, or classification labels outside {0, 1}.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    config = config or GBMConfig()
    X_train, X_val = np.asarray(X_train, np.float64), np.asarray(X_val, np.float64)
    Y_train, Y_val = _as_2d(Y_train), _as_2d(Y_val)
    if len(X_train) != len(Y_train) or len(X_val) != len(Y_val):
        raise ValueError(
            f"X and Y rows differ: train {len(X_train)} vs {len(Y_train)}, "
            f"val {len(X_val)} vs {len(Y_val)}"
        )
    kinds = check_kinds(kinds, Y_train.shape[1])
    params = dict(
        learning_rate=config.learning_rate,
        max_iter=config.max_iter,
        max_leaf_nodes=config.max_leaf_nodes,
        min_samples_leaf=config.min_samples_leaf,
        l2_regularization=config.l2_regularization,
        early_stopping=True,
        n_iter_no_change=config.n_iter_no_change,
        random_state=config.random_state,
    )
    models = []
    for t, kind in enumerate(kinds):
        train, val = np.isfinite(Y_train[:, t]), np.isfinite(Y_val[:, t])
        if not train.any() or not val.any():
            raise ValueError(
                f"target {t} has {train.sum()} training and {val.sum()} validation labels; "
                "both must be non-zero"
            )
        y, y_val = Y_train[train, t], Y_val[val, t]
        if kind == "classification":
            if not np.isin(np.concatenate([y, y_val]), (0.0, 1.0)).all():
                raise ValueError(f"target {t}: classification labels must be 0 or 1")
            if len(np.unique(y)) < 2:
                models.append(float(y[0]))
                continue
            estimator = HistGradientBoostingClassifier(**params)
        else:
            estimator = HistGradientBoostingRegressor(**params)
        estimator.fit(X_train[train], y, X_val=X_val[val], y_val=y_val)
        models.append(estimator)
    return GBM(models=tuple(models), kinds=kinds, config=config)


def predict(model: GBM | MeanPredictor, X: np.ndarray) -> np.ndarray:
    """[n, T] predictions of a fitted baseline (``model.predict(X)``)."""
    return model.predict(X)
