"""Widom insertion against analytic limits, a 1-D integral, the grid, and finite differences."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad

import jmof
from jmof.physics import forcefield as ffm
from jmof.physics import host as hostm
from jmof.physics import widom

GRIDAY_CIF = Path(__file__).parents[1] / "data" / "griday" / "acs+N270+E33.cif"


def test_empty_box_is_the_ideal_gas():
    empty = jmof.Crystal(np.zeros(0, int), np.zeros((0, 3)), np.eye(3) * 30.0)
    for name in ("CH4", "CO2"):
        r = widom.henry_coefficient(empty, name, 300.0, n_insertions=1000)
        assert r.boltzmann == 1.0 and r.boltzmann_err == 0.0
        assert r.energy == 0.0 and r.heat == pytest.approx(300.0 * ffm.K_IN_KJ_PER_MOL)
        assert r.henry == float("inf")


def test_single_site_matches_radial_integral():
    """One framework atom in a cubic box wider than 2 r_c: ⟨W⟩ - 1 = (4π/V)∫(e^{-βu} - 1) r² dr
    and ⟨UW⟩ = (4π/V)∫ u e^{-βu} r² dr, exactly."""
    L, T, rc = 12.5, 150.0, 6.0
    ff = ffm.uff(cutoff=rc, shifted=True)
    box = jmof.Crystal(np.array([18]), np.array([[3.0, 4.0, 5.0]]), np.eye(3) * L)
    assert hostm.supercell_repeats(box.cell, rc) == (1, 1, 1)
    g = ffm.guest("CH4")
    eps = float(np.sqrt(ff.epsilon[18] * g.epsilon[0]))
    sig = 0.5 * float(ff.sigma[18] + g.sigma[0])

    def u(r):
        return 4 * eps * ((sig / r) ** 12 - (sig / r) ** 6 - (sig / rc) ** 12 + (sig / rc) ** 6)

    V = L**3
    w_int = quad(lambda r: (np.exp(-u(r) / T) - 1) * r * r, 1e-3, rc, points=[sig], limit=200)[0]
    uw_int = quad(lambda r: u(r) * np.exp(-u(r) / T) * r * r, 0.5 * sig, rc, points=[sig])[0]
    w_ref = 1 + 4 * np.pi / V * w_int
    u_ref = 4 * np.pi / V * uw_int / w_ref
    r = widom.henry_coefficient(box, g, T, ff, n_insertions=200_000, n_blocks=10)
    assert abs(r.boltzmann - w_ref) < 4 * r.boltzmann_err
    assert abs(r.energy - u_ref * ffm.K_IN_KJ_PER_MOL) < 4 * r.energy_err
    assert r.boltzmann_err < 0.05 * abs(w_ref - 1)  # the test resolves the interaction


@pytest.fixture(scope="module")
def acs():
    return jmof.read(GRIDAY_CIF)


def test_grid_and_direct_agree_on_a_mof(acs):
    direct = widom.henry_coefficient(acs, "CH4", 298.0, n_insertions=20_000)
    grid = widom.henry_coefficient(acs, "CH4", 298.0, method="grid", n_insertions=20_000,
                                   key=jax.random.key(7))  # fmt: skip
    err = np.hypot(direct.henry_err, grid.henry_err)
    assert abs(direct.henry - grid.henry) < 3 * err
    assert abs(direct.heat - grid.heat) < 3 * np.hypot(direct.energy_err, grid.energy_err)
    assert direct.heat > 5.0  # CH4 adsorbs: a few kJ/mol at infinite dilution
    assert direct.density == pytest.approx(acs.density * 1000, rel=1e-5)


def test_multisite_orientations_matter(acs):
    """CO2 (three sites) differs from a point at its centre, and uniform random rotations are
    proper rotations."""
    rots = np.asarray(hostm.random_rotations(jax.random.key(0), 100))
    assert np.allclose(rots @ rots.transpose(0, 2, 1), np.eye(3), atol=1e-5)
    assert np.allclose(np.linalg.det(rots), 1.0, atol=1e-5)
    co2 = widom.henry_coefficient(acs, "CO2", 298.0, n_insertions=5000)
    ch4 = widom.henry_coefficient(acs, "CH4", 298.0, n_insertions=5000)
    assert co2.heat > ch4.heat  # CO2's three LJ sites bind more strongly than one CH4


@pytest.fixture(scope="module")
def small():
    cell = np.array([[9.0, 0.0, 0.0], [1.5, 8.5, 0.0], [-1.0, 0.5, 9.5]])
    frac = np.array([[0.1, 0.2, 0.3], [0.6, 0.5, 0.1], [0.35, 0.8, 0.7], [0.8, 0.1, 0.6]])
    return jmof.Crystal(np.array([6, 8, 30, 1]), frac @ cell, cell)


def test_gradients_match_finite_differences(small, x64):
    ff = ffm.uff(cutoff=7.0)
    T = 298.0
    reps = hostm.supercell_repeats(small.cell, ff.cutoff)
    centres = jax.random.uniform(jax.random.key(3), (3000, 3), dtype=jnp.float64)
    pos0, cell0 = jnp.asarray(small.positions), jnp.asarray(small.cell)

    def lnk(positions=pos0, cell=cell0, eps=ff.epsilon, sig=ff.sigma):
        c = jmof.Crystal(small.species, positions, cell)
        return widom.log_henry(c, ff.replace(epsilon=eps, sigma=sig), "CH4", T, centres,
                               repeats=reps)  # fmt: skip

    h = 1e-5
    # Force-field parameters of carbon.
    g_eps = jax.grad(lambda e: lnk(eps=e))(ff.epsilon)
    g_sig = jax.grad(lambda s: lnk(sig=s))(ff.sigma)
    for grad, arr, key in ((g_eps, ff.epsilon, "eps"), (g_sig, ff.sigma, "sig")):
        for z in (6, 30):
            step = h * float(arr[z])
            plus, minus = arr.at[z].add(step), arr.at[z].add(-step)
            fd = (lnk(**{key: plus}) - lnk(**{key: minus})) / (2 * step)
            assert float(grad[z]) == pytest.approx(float(fd), rel=1e-6, abs=1e-9)
        assert float(grad[8 + 1]) == 0.0  # fluorine is absent
    # Positions.
    g_pos = jax.grad(lambda p: lnk(positions=p))(pos0)
    for i, k in ((0, 0), (2, 1), (3, 2)):
        fd = (lnk(positions=pos0.at[i, k].add(h)) - lnk(positions=pos0.at[i, k].add(-h))) / (2 * h)
        assert float(g_pos[i, k]) == pytest.approx(float(fd), rel=1e-6, abs=1e-9)
    # Homogeneous strain of cell and positions together.

    def strained(eps):
        F = jnp.eye(3) + eps
        return lnk(positions=pos0 @ F, cell=cell0 @ F)

    g_strain = jax.grad(strained)(jnp.zeros((3, 3)))
    for a, b in ((0, 0), (1, 2), (2, 2)):
        e = jnp.zeros((3, 3)).at[a, b].set(h)
        fd = (strained(e) - strained(-e)) / (2 * h)
        assert float(g_strain[a, b]) == pytest.approx(float(fd), rel=1e-6, abs=1e-9)


def test_input_errors(small):
    with pytest.raises(ValueError, match="temperature must be positive"):
        widom.henry_coefficient(small, "CH4", 0.0)
    with pytest.raises(ValueError, match="method must be"):
        widom.henry_coefficient(small, "CH4", method="md")
    with pytest.raises(ValueError, match="single-site"):
        widom.henry_coefficient(small, "N2", method="grid", spacing=1.0)


def test_several_guests_in_one_pass_match_one_at_a_time(acs):
    key = jax.random.key(11)
    together = widom.henry_coefficients(acs, ("CH4", "Xe", "He"), 298.0, n_insertions=3000,
                                        key=key)  # fmt: skip
    for name in ("CH4", "Xe", "He"):
        alone = widom.henry_coefficient(acs, name, 298.0, n_insertions=3000, key=key)
        assert together[name].henry == pytest.approx(alone.henry, rel=1e-5)
        assert together[name].heat == pytest.approx(alone.heat, rel=1e-5, abs=1e-6)


def test_padding_atoms_change_nothing_and_buckets_bound_the_padding(small, x64):
    sizes = np.arange(1, 5000)
    buckets = np.array([hostm.bucket_size(int(n)) for n in sizes])
    assert np.all(buckets >= sizes) and np.all(np.diff(buckets) >= 0)
    assert np.all(buckets[sizes > 8] <= 1.25 * sizes[sizes > 8])
    assert len(np.unique(buckets[(sizes > 1024) & (sizes <= 2048)])) == 4
    charges = np.array([0.4, -0.6, 0.5, -0.3])
    h = hostm.host(small, ffm.uff(cutoff=7.0), charges=charges)
    padded = hostm.pad_atoms(h, h.n_atoms + 37)
    co2 = ffm.guest("CO2")
    centres = jax.random.uniform(jax.random.key(3), (64, 3))
    rotations = hostm.random_rotations(jax.random.key(4), 64)
    # energies() pads internally; compare the unpadded formulas with the padded host directly.
    for guest_ in (ffm.guest("Xe"), co2):
        sites = hostm.guest_sites(h, guest_, centres, rotations)
        args = (jnp.asarray(guest_.epsilon), jnp.asarray(guest_.sigma))
        plain = hostm.site_energies(h, sites, *args) + hostm.site_coulomb(
            h, sites, jnp.asarray(guest_.charges)
        )
        pad = hostm.site_energies(padded, sites, *args) + hostm.site_coulomb(
            padded, sites, jnp.asarray(guest_.charges)
        )
        # Each padding pair adds an exact 0; only the summation order changes.
        np.testing.assert_allclose(pad, plain, rtol=1e-14)
        np.testing.assert_allclose(hostm.energies(h, guest_, centres, rotations), plain,
                                   rtol=1e-12)  # fmt: skip

    # ... and the padding is really there: zero ε would be no test if nothing was padded.
    assert padded.n_atoms == h.n_atoms + 37 and float(jnp.abs(padded.epsilon[-37:]).max()) == 0.0

    # Gradients with respect to the guest's ε stay finite with padding atoms (ε = 0) present.
    def total(eps):
        sites = hostm.guest_sites(padded, co2, centres, rotations)
        return jnp.sum(hostm.site_energies(padded, sites, eps, jnp.asarray(co2.sigma)))

    grad = jax.grad(total)(jnp.asarray(co2.epsilon))
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)
