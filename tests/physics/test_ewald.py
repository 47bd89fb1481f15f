"""Ewald electrostatics of framework charges acting on charged guests (CO2, N2)."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmof
from jmof.physics import forcefield as ffm
from jmof.physics import host as hostm
from jmof.physics import widom


@pytest.fixture(scope="module")
def ionic():
    """A neutral triclinic cell with zero dipole: +q at the origin, -q/2 on either side."""
    cell = np.array([[9.0, 0.0, 0.0], [1.0, 8.0, 0.0], [0.5, -1.0, 10.0]])
    frac = np.array([[0.0, 0.0, 0.0], [0.25, 0.1, 0.0], [-0.25, -0.1, 0.0]]) + 0.3
    charges = np.array([1.0, -0.5, -0.5])
    return jmof.Crystal(np.array([11, 17, 17]), frac @ cell, cell), charges


def _phi(crystal, charges, points_frac, cutoff):
    h = hostm.host(crystal, ffm.uff(cutoff=cutoff), charges=charges)
    return np.asarray(hostm.coulomb_potential(h, hostm.unit_to_super(h, jnp.asarray(points_frac))))


def test_potential_does_not_depend_on_the_ewald_split(ionic, x64):
    crystal, q = ionic
    pts = np.random.default_rng(0).random((20, 3))
    a, b = _phi(crystal, q, pts, 9.0), _phi(crystal, q, pts, 14.0)  # different α and images
    assert np.allclose(a, b, rtol=1e-5, atol=1e-3 * np.abs(a).max())


def test_potential_differences_match_a_direct_lattice_sum(ionic, x64):
    """For a neutral cell without dipole, spherical summation over whole cells converges to the
    Ewald (tin-foil) potential up to a constant: compare differences between points."""
    crystal, q = ionic
    pts = np.random.default_rng(1).random((8, 3))
    cell = np.asarray(crystal.cell)
    n = 14
    shifts = np.array(list(itertools.product(range(-n, n + 1), repeat=3)))
    shifts = shifts[np.linalg.norm(shifts @ cell, axis=1) <= n * 8.0]  # a sphere of cells
    images = (crystal.positions[None] + (shifts @ cell)[:, None]).reshape(-1, 3)
    qq = np.tile(q, len(shifts))
    x = pts @ cell
    direct = hostm.COULOMB_K_A * (qq / np.linalg.norm(x[:, None] - images[None], axis=2)).sum(1)
    ewald = _phi(crystal, q, pts, 12.0)
    assert np.allclose(ewald - ewald[0], direct - direct[0], rtol=2e-3, atol=5.0)


def test_charged_guest_feels_the_field_and_neutral_frame_is_inert(ionic):
    crystal, q = ionic
    box = crystal.repeat((3, 3, 3))
    key = jax.random.key(2)
    no_q = widom.henry_coefficient(box, "CO2", 298.0, n_insertions=3000, key=key)
    zero_q = widom.henry_coefficient(box, "CO2", 298.0, n_insertions=3000, key=key,
                                     charges=np.zeros(box.n_atoms))  # fmt: skip
    with_q = widom.henry_coefficient(box, "CO2", 298.0, n_insertions=3000, key=key,
                                     charges=np.tile(q, 27))  # fmt: skip
    assert zero_q.henry == pytest.approx(no_q.henry, rel=1e-5)
    assert abs(with_q.energy - no_q.energy) > 0.05  # kJ/mol: the quadrupole sees the field
    ch4 = widom.henry_coefficient(box, "CH4", 298.0, n_insertions=3000, key=key,
                                  charges=np.tile(q, 27))  # fmt: skip
    ch4_plain = widom.henry_coefficient(box, "CH4", 298.0, n_insertions=3000, key=key)
    assert ch4.henry == pytest.approx(ch4_plain.henry, rel=1e-6)  # uncharged guest
    with pytest.raises(ValueError, match="charges must have shape"):
        widom.henry_coefficient(box, "CO2", 298.0, n_insertions=100, charges=q)
