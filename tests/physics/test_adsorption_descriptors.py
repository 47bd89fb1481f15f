"""Energy histograms and the average Boltzmann factor on hand-computed grids."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jmof.physics import descriptors
from jmof.physics.forcefield import K_IN_KJ_PER_MOL
from jmof.physics.grid import EnergyGrid


def _grid(kj_per_mol):
    values = np.asarray(kj_per_mol, np.float64).reshape(2, 2, 2) / K_IN_KJ_PER_MOL
    return EnergyGrid(jnp.asarray(values), jnp.eye(3) * 10.0)


def test_histogram_counts_volume_fractions():
    grid = _grid([-25.0, -19.5, -19.2, -3.4, -0.5, 0.5, 7.0, 1e6])
    fractions, edges = descriptors.energy_histogram(grid, -20.0, 0.0, 1.0)
    assert len(edges) == 21 and edges[0] == -20.0 and edges[-1] == 0.0
    expected = np.zeros(20)
    expected[0] = 3 / 8  # -25 (clipped into the first bin), -19.5, -19.2
    expected[16] = 1 / 8  # -3.4 in [-4, -3)
    expected[19] = 1 / 8  # -0.5 in [-1, 0)
    assert np.allclose(fractions, expected)
    # Samples instead of a grid give the same fractions.
    samples = np.asarray(grid.values).ravel()
    assert np.allclose(descriptors.energy_histogram(samples)[0], expected)


def test_average_boltzmann_factor_exact_and_differentiable():
    kj = np.array([-10.0, -5.0, 0.0, 2.0, 50.0, 1e6, -1.0, 3.0])
    grid = _grid(kj)
    T = 298.0
    expected = np.mean(np.exp(-kj / (K_IN_KJ_PER_MOL * T)))
    assert float(descriptors.average_boltzmann_factor(grid, T)) == pytest.approx(expected, 1e-6)
    g = jax.grad(lambda v: descriptors.average_boltzmann_factor(EnergyGrid(v, grid.cell), T))(
        grid.values
    )
    assert float(g.ravel()[0]) == pytest.approx(-np.exp(10.0 / (K_IN_KJ_PER_MOL * T)) / 8 / T,
                                                rel=1e-5)  # fmt: skip
    with pytest.raises(ValueError, match="temperature"):
        descriptors.average_boltzmann_factor(grid, 0.0)
