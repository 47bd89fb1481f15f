"""Adsorption descriptors from an energy grid: energy histograms and the average Boltzmann factor.

- Energy histogram (B. J. Bucior, N. S. Bobbitt, T. Islamoglu, S. Goswami, A. Gopalan, T. Yildirim,
  O. K. Farha, N. Bagheri, R. Q. Snurr, Mol. Syst. Des. Eng. 4, 162 (2019)): the fraction of the
  cell volume (of grid points) whose probe energy falls in each energy bin; points above the top
  edge (repulsive) are not counted, points below the bottom edge go into the first bin.
- Average Boltzmann factor (G. S. Fanourgakis, K. Gkagkas, E. Tylianakis, G. E. Froudakis,
  J. Phys. Chem. C 124, 19639 (2020)): the volume average of exp(-E/k_B T) over the grid — the
  dimensionless ⟨W⟩ of Widom insertion computed by quadrature.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jmof.physics.forcefield import K_IN_KJ_PER_MOL
from jmof.physics.grid import EnergyGrid


def histogram_edges(lower: float = -20.0, upper: float = 0.0, width: float = 1.0) -> np.ndarray:
    """Bin edges in kJ/mol: ``lower, lower + width, …, upper``."""
    if not (upper > lower and width > 0):
        raise ValueError(f"need upper > lower and width > 0, got {lower}, {upper}, {width}")
    n = int(round((upper - lower) / width))
    return lower + width * np.arange(n + 1)


def energy_histogram(
    grid: EnergyGrid | np.ndarray,
    lower: float = -20.0,
    upper: float = 0.0,
    width: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of grid points per energy bin.

    Args:
        grid: probe energy grid (values in K), or the energies (K) of uniformly random
            insertions — an unbiased Monte Carlo estimate of the same volume fractions.
        lower, upper, width: bins in kJ/mol.

    Returns:
        ``(fractions [n_bins], edges [n_bins + 1] kJ/mol)``; the fractions sum to the fraction of
        points with energy below ``upper``.
    """
    edges = histogram_edges(lower, upper, width)
    values = grid.values if isinstance(grid, EnergyGrid) else grid
    e = np.asarray(values, np.float64).ravel() * K_IN_KJ_PER_MOL
    total = e.size
    e = e[e < upper]
    counts, _ = np.histogram(np.clip(e, lower, upper), bins=edges)
    return counts / total, edges


def average_boltzmann_factor(grid: EnergyGrid, temperature: float = 298.0) -> jnp.ndarray:
    """⟨exp(-E/k_B T)⟩ over the grid points (differentiable in the grid values).

    Args:
        grid: probe energy grid, K.  temperature: K.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature} K")
    e = jnp.minimum(jnp.asarray(grid.values), 700.0 * temperature)
    return jnp.mean(jnp.exp(-e / temperature))
