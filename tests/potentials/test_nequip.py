"""NequIP on e3nn-jax: symmetry, smoothness and derivative checks (jmof.testing), the radial
basis against its analytic properties, padding invariance and configuration errors."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jmof.data import coremof
from jmof.graph import batch, radius_graph
from jmof.potential import energy_forces_stress
from jmof.structure import Crystal
from jmof.testing import assert_potential, check_potential
from potentials.nequip import NequIPConfig, bessel_basis, polynomial_envelope, xplor_envelope

SMALL = NequIPConfig(
    elements=(1, 6, 7, 8, 28, 30, 48),
    cutoff=4.0,
    n_layers=2,
    channels=4,
    l_max=2,
    parity=True,
    avg_num_neighbors=10.0,
    atomic_energies=(-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0),
    scale=0.7,
    dtype="float64",
)
VARIANT = dataclasses.replace(
    SMALL, parity=False, l_max=3, self_connection="linear", radial_hidden=(16,)
)
# SevenNet's settings: rotations only, XPLOR switch, learned Bessel frequencies, SiLU gates.
# Three layers: the first makes vectors, the second their cross products (1e x 1e -> 1e), the
# third triple products, the first chiral invariant.
SO3 = dataclasses.replace(
    SMALL,
    n_layers=3,
    group="SO3",
    envelope="xplor",
    cutoff_on=3.5,
    trainable_bessel=True,
    gate_act="silu",
    self_connection="linear",
    scale=(0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1),
)


def _graph(crystals, cutoff, **capacity):
    graphs = [radius_graph(c, cutoff) for c in crystals]
    return jax.tree.map(jnp.asarray, batch(graphs, **capacity))


@pytest.fixture(scope="module")
def mof():
    """A small CoRE MOF (DEYDOA, 34 atoms, H C N Ni Cd)."""
    dataset = coremof.load("2019-ASR", limit=250, max_atoms=60, progress=False)
    return next(c for c in dataset.crystals if set(c.species.tolist()) <= set(SMALL.elements))


@pytest.fixture(scope="module")
def skewed():
    """Four atoms in a skewed triclinic cell thinner than the cutoff along every axis."""
    cell = np.array([[3.4, 0.0, 0.0], [1.1, 3.2, 0.0], [0.7, -0.9, 3.6]])
    frac = np.array([[0.1, 0.2, 0.3], [0.55, 0.45, 0.6], [0.8, 0.9, 0.05], [0.3, 0.7, 0.8]])
    return Crystal(species=np.array([6, 8, 1, 30]), positions=frac @ cell, cell=cell)


def _params(config, crystal):
    with jax.enable_x64(True):
        return jax.jit(config.build().init)(
            jax.random.key(1), _graph([crystal], config.cutoff, n_graph=2)
        )


@pytest.mark.parametrize(
    "which", ["mof-small", pytest.param("skewed-variant", marks=pytest.mark.slow)]
)
def test_equivariance_extensivity_and_derivatives(x64, mof, skewed, which):
    config, crystal = (SMALL, mof) if which == "mof-small" else (VARIANT, skewed)
    params = _params(config, crystal)
    results = assert_potential(config.build().apply, params, crystal, cutoff=config.cutoff)
    assert {r.name for r in results} >= {"rotation", "supercell", "stress_fd"}


@pytest.mark.slow
def test_so3_model_is_rotation_but_not_reflection_equivariant(x64, skewed):
    params = _params(SO3, skewed)
    # Learned frequencies start at k π / c and are parameters (a gradient reaches them).
    np.testing.assert_allclose(params["params"]["bessel_frequencies"], np.arange(1, 9) * np.pi / 4)
    # The XPLOR switch is only C¹ at r_on: central differences across it are good to ~1e-6.
    assert_potential(
        SO3.build().apply, params, skewed, cutoff=SO3.cutoff, reflections=False, fd_tolerance=1e-5
    )
    rotation = check_potential(
        SO3.build().apply, params, skewed, cutoff=SO3.cutoff, checks=("rotation",)
    )[0]
    assert rotation.error > 1e-4 and "det Q = -1" in rotation.detail  # chiral: 1e o 1e -> 1e


def test_energy_is_independent_of_padding_and_batch_partners(x64, mof, skewed):
    params = _params(SMALL, mof)
    apply = jax.jit(SMALL.build().apply)
    alone = apply(params, _graph([mof], SMALL.cutoff, n_graph=2))
    both = apply(params, _graph([skewed, mof], SMALL.cutoff, n_node=256, n_graph=5))
    np.testing.assert_allclose(both[1], alone[0], rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(both[2:]), 0.0)


def test_energy_is_smooth_across_the_cutoff(x64):
    """A dimer: energy and force are continuous as the partner leaves the cutoff sphere."""
    box = np.eye(3) * 20.0

    def dimer(r):
        return Crystal(
            species=np.array([6, 8]), positions=np.array([[1.0, 1, 1], [1 + r, 1, 1]]), cell=box
        )

    params = _params(SMALL, dimer(3.0))
    fn = jax.jit(lambda p, g: energy_forces_stress(SMALL.build().apply, p, g))
    capacity = dict(n_node=8, n_edge=8, n_graph=2)
    far = fn(params, _graph([dimer(4.5)], SMALL.cutoff, **capacity))  # no edges at all
    near = fn(params, _graph([dimer(SMALL.cutoff - 1e-3)], SMALL.cutoff, **capacity))
    inside = fn(params, _graph([dimer(3.0)], SMALL.cutoff, **capacity))
    assert abs(float(near.energy[0] - far.energy[0])) < 1e-9  # envelope ~ x^(p+3) near c
    assert float(np.abs(near.forces).max()) < 1e-6
    assert abs(float(inside.energy[0] - far.energy[0])) > 1e-6  # ...but the pair does interact


def test_isolated_atoms_carry_their_shift(x64):
    """Without neighbours the energy is Σ scale·e(species) + shift: a CO pair far apart equals
    the sum of C alone and O alone."""
    box = np.eye(3) * 20.0
    pair = Crystal(
        species=np.array([6, 8]), positions=np.array([[1.0, 1, 1], [11.0, 1, 1]]), cell=box
    )
    params = _params(SMALL, pair)
    apply = jax.jit(SMALL.build().apply)
    capacity = dict(n_node=8, n_edge=8, n_graph=3)
    singles = [
        Crystal(species=np.array([z]), positions=np.array([[1.0, 1, 1]]), cell=box) for z in (6, 8)
    ]
    e_pair = apply(params, _graph([pair], SMALL.cutoff, **capacity))[0]
    e_single = apply(params, _graph(singles, SMALL.cutoff, **capacity))
    np.testing.assert_allclose(e_pair, e_single[0] + e_single[1], rtol=1e-12)
    shifted = dataclasses.replace(SMALL, atomic_energies=(0.0,) * 7)
    diff = apply(params, _graph(singles, SMALL.cutoff, **capacity)) - jax.jit(
        shifted.build().apply
    )(params, _graph(singles, SMALL.cutoff, **capacity))
    np.testing.assert_allclose(diff[:2], [-2.0, -4.0], rtol=1e-12)


def test_bessel_basis_is_orthonormal_with_weight_r_squared(x64):
    c, n = 5.0, 6
    r = jnp.linspace(0.0, c, 20001)
    basis = np.asarray(bessel_basis(r, n, c))
    gram = np.trapezoid(
        basis[:, :, None] * basis[:, None, :] * np.asarray(r)[:, None, None] ** 2,
        np.asarray(r),
        axis=0,
    )
    np.testing.assert_allclose(gram, np.eye(n), atol=1e-6)
    # Finite at r = 0 with the analytic limit.
    np.testing.assert_allclose(basis[0], np.sqrt(2 / c) * np.arange(1, n + 1) * np.pi / c)


def test_envelope_and_two_derivatives_vanish_at_the_cutoff(x64):
    c, p = 4.0, 6
    env = lambda r: polynomial_envelope(r, c, p)  # noqa: E731
    scalar = lambda r: env(jnp.reshape(r, (1,)))[0]  # noqa: E731
    assert float(scalar(0.0)) == 1.0
    at_c = jnp.asarray(c - 1e-12)
    for order, fn in enumerate([scalar, jax.grad(scalar), jax.grad(jax.grad(scalar))]):
        assert abs(float(fn(at_c))) < 1e-8, order
    assert float(scalar(jnp.asarray(c + 0.5))) == 0.0
    # Monotone decreasing on (0, c).
    values = np.asarray(env(jnp.linspace(0.01, c, 400)))
    assert np.all(np.diff(values) <= 1e-15)


def test_xplor_switch_is_smooth_at_both_ends(x64):
    on, c = 3.5, 5.0
    scalar = lambda r: xplor_envelope(jnp.reshape(r, (1,)), on, c)[0]  # noqa: E731
    slope = jax.grad(scalar)
    assert float(scalar(jnp.asarray(on - 1e-9))) == 1.0
    assert abs(float(scalar(jnp.asarray(on + 1e-9))) - 1.0) < 1e-12
    assert abs(float(slope(jnp.asarray(on + 1e-9)))) < 1e-7  # slope 0 on both sides of r_on
    assert abs(float(scalar(jnp.asarray(c - 1e-9)))) < 1e-12
    assert abs(float(slope(jnp.asarray(c - 1e-9)))) < 1e-7
    assert float(scalar(jnp.asarray(c + 0.1))) == 0.0
    # Halfway the polynomial (c² - r²)² (c² + 2r² - 3 r_on²) / (c² - r_on²)³, by hand:
    r = 4.25
    expected = (c**2 - r**2) ** 2 * (c**2 + 2 * r**2 - 3 * on**2) / (c**2 - on**2) ** 3
    np.testing.assert_allclose(float(scalar(jnp.asarray(r))), expected, rtol=1e-14)


def test_irreps_follow_the_configuration():
    assert SMALL.irreps == "4x0e+4x0o+4x1o+4x1e+4x2e+4x2o"
    assert VARIANT.irreps == "4x0e+4x1o+4x2e+4x3o"
    assert dataclasses.replace(SMALL, hidden_irreps="8x0e+2x1o").irreps == "8x0e+2x1o"
    assert SO3.irreps == "4x0e+4x1e+4x2e"


def test_bad_configurations_and_unknown_elements_are_refused():
    with pytest.raises(ValueError, match="distinct"):
        NequIPConfig(elements=(6, 6))
    with pytest.raises(ValueError, match="atomic_energies has 1"):
        NequIPConfig(elements=(6, 8), atomic_energies=(1.0,))
    with pytest.raises(ValueError, match="self_connection"):
        NequIPConfig(self_connection="dense")
    with pytest.raises(ValueError):
        NequIPConfig(hidden_irreps="8xq")
    with pytest.raises(ValueError, match="cutoff_on"):
        NequIPConfig(envelope="xplor")
    with pytest.raises(ValueError, match="cutoff_on"):
        NequIPConfig(envelope="xplor", cutoff_on=6.0, cutoff=5.0)
    with pytest.raises(ValueError, match="group"):
        NequIPConfig(group="O2")
    with pytest.raises(ValueError, match="gate_act"):
        NequIPConfig(gate_act="relu")
    with pytest.raises(ValueError, match="even hidden irreps"):
        NequIPConfig(group="SO3", hidden_irreps="8x0e+4x1o")
    with pytest.raises(ValueError, match="scale has 2 entries"):
        NequIPConfig(elements=(6, 7, 8), scale=(1.0, 2.0))
    with pytest.raises(ValueError, match="positive"):
        NequIPConfig(scale=0.0)
    with pytest.raises(ValueError, match="Cu are not known"):
        SMALL.check_species([6, 29, 8], name="x.cif")
    with pytest.raises(ValueError, match="x.cif: elements Cu"):
        SMALL.check_species([29], name="x.cif")
    SMALL.check_species([6, 8, 30])
