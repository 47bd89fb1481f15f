"""Parity plots of a potential against its reference labels (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jmof.plotting import pyplot


def parity_plot(report: dict, path: str | Path, title: str = "") -> None:
    """Energy per atom, force components and stress components, predicted vs reference.

    ``report`` is :func:`potentials.distill.evaluate`'s output.
    """
    plt = pyplot()
    pred = report["predictions"]
    panels = [
        ("energy per atom (eV)", "energy_per_atom", report["energy_meV_atom"], "meV/atom"),
        ("force component (eV/Å)", "forces", report["forces_meV_A"], "meV/Å"),
        ("stress component (GPa)", "stress_GPa", report["stress_GPa"], "GPa"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax, (label, key, stats, unit) in zip(axes, panels, strict=True):
        x = np.asarray(pred[f"{key}_ref"], float)
        y = np.asarray(pred[key], float)
        ok = np.isfinite(x) & np.isfinite(y)
        ax.plot(x[ok], y[ok], ".", ms=2, alpha=0.5)
        if ok.any():
            lo, hi = min(x[ok].min(), y[ok].min()), max(x[ok].max(), y[ok].max())
            ax.plot([lo, hi], [lo, hi], "k-", lw=0.5)
        ax.set(xlabel=f"teacher {label}", ylabel=f"student {label}")
        ax.set_title(f"MAE {stats['mae']:.3g} {unit}, RMSE {stats['rmse']:.3g}", fontsize=9)
    fig.suptitle(f"{title} (test, n = {report['n']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
