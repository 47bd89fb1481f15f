"""Targets in standardised units, and the masked loss that every property predictor trains on.

A predictor outputs ``[G, T]`` numbers in *model units*: for a regression target ``t`` the
standardised value ``(y - mean[t]) / std[t]``, for a classification target (a 0/1 label) the
logit of the probability of class 1. Mean and std come from the training split only
(:func:`fit_standardization`) and are stored in the model's config, so that a checkpoint rebuilds
the exact map back to original units (:func:`destandardize`).

Kinds are strings: ``"regression"`` or ``"classification"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "KINDS",
    "destandardize",
    "fit_standardization",
    "masked_loss",
    "standardize",
]

KINDS = ("regression", "classification")


def _is_classification(kinds: Sequence[str]) -> np.ndarray:
    return np.array([k == "classification" for k in kinds], bool)


def fit_standardization(
    targets: np.ndarray,
    mask: np.ndarray | None = None,
    kinds: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-target mean and standard deviation over the present values (host side).

    Args:
        targets: [n, T] target values of the *training* split (NaN where missing).
        mask: [n, T] bool, True where a value is present; default: the finite entries.
        kinds: T strings; classification columns get mean 0 and std 1 (their outputs are
          logits, not standardised values). Default: all regression.

    Returns:
        ``(mean, std)``: [T] float64 each. A column with fewer than two values or no spread gets
        std 1 (and mean 0 when it has no value at all), so that dividing by std is always safe.
    """
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim != 2:
        raise ValueError(f"targets must be [n, T], got shape {targets.shape}")
    mask = np.isfinite(targets) if mask is None else np.asarray(mask, bool) & np.isfinite(targets)
    if mask.shape != targets.shape:
        raise ValueError(f"mask shape {mask.shape} != targets shape {targets.shape}")
    n_targets = targets.shape[1]
    kinds = ("regression",) * n_targets if kinds is None else tuple(kinds)
    if len(kinds) != n_targets:
        raise ValueError(f"{len(kinds)} kinds for {n_targets} targets")
    count = mask.sum(axis=0)
    values = np.where(mask, targets, 0.0)
    mean = values.sum(axis=0) / np.maximum(count, 1)
    var = (np.where(mask, targets - mean, 0.0) ** 2).sum(axis=0) / np.maximum(count, 1)
    std = np.sqrt(var)
    std = np.where((count < 2) | ~(std > 0), 1.0, std)
    classification = _is_classification(kinds)
    mean = np.where(classification, 0.0, mean)
    std = np.where(classification, 1.0, std)
    return mean, std


def standardize(values, mean, std, kinds: Sequence[str]) -> jax.Array:
    """[..., T] original units -> model units (classification labels pass through)."""
    values = jnp.asarray(values)
    mean = jnp.asarray(mean, values.dtype)
    std = jnp.asarray(std, values.dtype)
    return jnp.where(_is_classification(kinds), values, (values - mean) / std)


def destandardize(outputs, mean, std, kinds: Sequence[str]) -> jax.Array:
    """[..., T] model units -> original units; classification logits become probabilities."""
    outputs = jnp.asarray(outputs)
    mean = jnp.asarray(mean, outputs.dtype)
    std = jnp.asarray(std, outputs.dtype)
    return jnp.where(_is_classification(kinds), jax.nn.sigmoid(outputs), outputs * std + mean)


def masked_loss(
    outputs: jax.Array,
    targets: jax.Array,
    mask: jax.Array,
    *,
    mean,
    std,
    kinds: Sequence[str],
    names: Sequence[str],
    huber_delta: float | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The mean loss over the present (graph, target) entries, and metrics in original units.

    .. math::
        L = \\frac{1}{|M|} \\sum_{(g,t) \\in M} \\ell_t(\\hat y_{gt}, y_{gt}),\\qquad
        \\ell_t = \\begin{cases} (\\hat y - (y - \\mu_t)/\\sigma_t)^2 & \\text{regression}\\\\
        \\operatorname{softplus}(\\hat y) - y\\,\\hat y & \\text{classification (BCE)}
        \\end{cases}

    (Huber with threshold ``huber_delta`` in standardised units instead of the square when it is
    given.) Missing values and padding graphs are outside ``M`` and contribute to neither the
    value nor the gradient.

    Args:
        outputs: [G, T] model units (standardised values or logits).
        targets: [G, T] original units (0/1 for classification); any finite value where masked.
        mask: [G, T] bool, True on present values of real graphs.
        mean, std, kinds, names: [T] each, as stored in the model's config.
        huber_delta: None for the squared error.

    Returns:
        ``(loss, metrics)``: ``metrics`` holds ``mae_<name>`` (regression, original units) or
        ``accuracy_<name>`` (classification, threshold 0.5) averaged over the present entries of
        the batch, and ``weight``, the number of present entries (how :func:`jmof.train.fit`
        weights batches).
    """
    outputs = jnp.asarray(outputs)
    targets = jnp.asarray(targets, outputs.dtype)
    mask = jnp.asarray(mask, bool)
    classification = _is_classification(kinds)
    scaled = standardize(targets, mean, std, kinds)
    err = outputs - scaled
    if huber_delta is None:
        regression = err**2
    else:
        a = jnp.abs(err)
        linear = huber_delta * (a - 0.5 * huber_delta)
        regression = jnp.where(a <= huber_delta, 0.5 * err**2, linear)
    bce = jax.nn.softplus(outputs) - scaled * outputs
    per_entry = jnp.where(classification, bce, regression)
    count = jnp.sum(mask, axis=0)  # [T]
    total = jnp.sum(count)
    loss = jnp.sum(jnp.where(mask, per_entry, 0.0)) / jnp.maximum(total, 1)

    predicted = destandardize(outputs, mean, std, kinds)
    abs_err = jnp.where(mask, jnp.abs(predicted - targets), 0.0)
    correct = jnp.where(mask, (predicted > 0.5) == (targets > 0.5), False)
    metrics = {}
    for t, name in enumerate(names):
        if classification[t]:
            metrics[f"accuracy_{name}"] = jnp.sum(correct[:, t]) / jnp.maximum(count[t], 1)
        else:
            metrics[f"mae_{name}"] = jnp.sum(abs_err[:, t]) / jnp.maximum(count[t], 1)
    metrics["weight"] = total.astype(outputs.dtype)
    return loss, metrics
