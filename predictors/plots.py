"""Plots of a trained predictor: parity per target and learning curves (PNG, matplotlib)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from jmof.plotting import pyplot as _pyplot


def parity_plot(report: dict, path: str | Path) -> None:
    """Predicted vs true on the test split, one panel per target (ROC curve for
    classification targets). ``report`` is :func:`predictors.api.evaluate_split`'s output."""
    plt = _pyplot()
    targets, kinds = report["targets"], report["kinds"]
    truth, mean, std = (np.asarray(report[k], dtype=np.float64) for k in ("truth", "mean", "std"))
    cols = min(3, len(targets))
    rows = math.ceil(len(targets) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4 * rows), squeeze=False)
    for t, (name, kind) in enumerate(zip(targets, kinds)):
        ax = axes.flat[t]
        y, p, s = truth[:, t], mean[:, t], std[:, t]
        ok = np.isfinite(y) & np.isfinite(p)
        metrics = report["metrics"][name]
        if kind == "regression":
            ax.errorbar(
                y[ok],
                p[ok],
                yerr=s[ok] if np.any(s[ok] > 0) else None,
                fmt=".",
                ms=2,
                alpha=0.4,
                elinewidth=0.5,
            )
            lo, hi = np.min(y[ok]), np.max(y[ok])
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
            ax.set(
                xlabel=f"{name} (true)",
                ylabel=f"{name} (predicted)",
                title=f"{name}: MAE {metrics['mae']:.3g}, R² {metrics['r2']:.3f}",
            )
        else:
            from sklearn.metrics import roc_curve

            fpr, tpr, _ = roc_curve(y[ok], p[ok])
            ax.plot(fpr, tpr)
            ax.plot([0, 1], [0, 1], "k--", lw=0.8)
            ax.set(
                xlabel="false positive rate",
                ylabel="true positive rate",
                title=f"{name}: ROC-AUC {metrics['roc_auc']:.3f}",
            )
    for ax in list(axes.flat)[len(targets) :]:
        ax.set_axis_off()
    fig.suptitle(f"test split: {report['n_test']} structures, ensemble of {report['n_members']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def learning_curve_plot(history: list[dict], path: str | Path) -> None:
    """Training and validation loss per epoch (``jmof.train.fit``'s history)."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(
        epochs, [h["train"].get("member_loss", h["train"]["loss"]) for h in history], label="train"
    )
    if all("val" in h for h in history):
        ax.plot(
            epochs,
            [h["val"].get("member_loss", h["val"]["loss"]) for h in history],
            label="validation",
        )
    ax.set(xlabel="epoch", ylabel="loss (standardised units)", yscale="log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
