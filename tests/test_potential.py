"""Energy, forces and stress by autodiff (jmof.potential) against analytic Lennard-Jones, and the
consistency checks of jmof.testing, including that each check catches what it is for."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jmof.graph import batch, edge_vectors, radius_graph, safe_norm
from jmof.potential import LennardJones, energy_forces_stress, sum_potentials
from jmof.structure import Crystal
from jmof.testing import CHECKS, check_potential, random_orthogonal

EPS, SIG, CUT = 0.01, 3.0, 6.0
LJ = LennardJones(cutoff=CUT)


def _lj_pair(r):
    return 4 * EPS * ((SIG / r) ** 12 - (SIG / r) ** 6) - 4 * EPS * (
        (SIG / CUT) ** 12 - (SIG / CUT) ** 6
    )


def _lj_pair_derivative(r):
    return 4 * EPS * (-12 * SIG**12 / r**13 + 6 * SIG**6 / r**7)


@pytest.fixture(scope="module")
def skewed():
    """Three atoms in a small skewed triclinic cell: thinner than the cutoff along every axis."""
    cell = np.array([[3.4, 0.0, 0.0], [1.1, 3.2, 0.0], [0.7, -0.9, 3.6]])
    frac = np.array([[0.1, 0.2, 0.3], [0.55, 0.45, 0.6], [0.8, 0.9, 0.05]])
    return Crystal(species=np.array([6, 8, 1]), positions=frac @ cell, cell=cell)


def _graph(crystal, cutoff=CUT):
    return jax.tree.map(jnp.asarray, batch([radius_graph(crystal, cutoff)], n_graph=2))


def _brute_force_lj(crystal, params_table):
    """Energy, forces and virial stress by explicit sums over periodic images (independent of
    jmof.graph and of autodiff)."""
    pos, cell, z = np.asarray(crystal.positions), np.asarray(crystal.cell), crystal.species
    n = len(z)
    reach = int(np.ceil(CUT / np.min(1 / np.linalg.norm(np.linalg.inv(cell), axis=0)))) + 1
    images = np.stack(np.meshgrid(*[np.arange(-reach, reach + 1)] * 3, indexing="ij"), -1)
    images = images.reshape(-1, 3) @ cell
    energy, forces, virial = 0.0, np.zeros((n, 3)), np.zeros((3, 3))
    for i in range(n):
        for j in range(n):
            eps = np.sqrt(params_table[z[i]][0] * params_table[z[j]][0])
            sig = 0.5 * (params_table[z[i]][1] + params_table[z[j]][1])
            for shift in images:
                d = pos[j] + shift - pos[i]
                r = np.linalg.norm(d)
                if r == 0 or r >= CUT:
                    continue
                e = (
                    4
                    * eps
                    * ((sig / r) ** 12 - (sig / r) ** 6 - (sig / CUT) ** 12 + (sig / CUT) ** 6)
                )
                de = 4 * eps * (-12 * sig**12 / r**13 + 6 * sig**6 / r**7)
                energy += 0.5 * e
                forces[i] += de * d / r  # -dE/dr_i, dE/dr_i = -de d/r (counted from i's side)
                virial += 0.5 * de * np.outer(d, d) / r
    return energy, forces, virial / abs(np.linalg.det(cell))


TABLE = {6: (EPS, SIG), 8: (0.006, 2.9), 1: (0.002, 2.5)}


def test_lennard_jones_matches_brute_force_sums(x64, skewed):
    params = LJ.params(TABLE)
    out = energy_forces_stress(LJ.apply, params, _graph(skewed))
    energy, forces, stress = _brute_force_lj(skewed, TABLE)
    np.testing.assert_allclose(out.energy[0], energy, rtol=1e-12)
    np.testing.assert_allclose(out.forces[:3], forces, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(out.stress[0], stress, rtol=1e-10, atol=1e-14)
    assert np.all(np.asarray(out.forces[3:]) == 0) and np.all(np.asarray(out.stress[1]) == 0)


def test_dimer_energy_and_force_are_analytic(x64):
    box = np.eye(3) * 30.0
    for r in (2.9, 3.4, 5.5):
        dimer = Crystal(
            species=np.array([6, 6]), positions=np.array([[1.0, 1, 1], [1 + r, 1, 1]]), cell=box
        )
        out = energy_forces_stress(LJ.apply, LJ.params(TABLE), _graph(dimer))
        np.testing.assert_allclose(out.energy[0], _lj_pair(r), rtol=1e-12)
        np.testing.assert_allclose(out.forces[0, 0], _lj_pair_derivative(r), rtol=1e-12)
        np.testing.assert_allclose(out.forces[1, 0], -_lj_pair_derivative(r), rtol=1e-12)
        # σ_xx = (1/V) r φ'(r) for one pair along x.
        np.testing.assert_allclose(
            out.stress[0, 0, 0], r * _lj_pair_derivative(r) / 30.0**3, rtol=1e-12
        )


def test_sum_of_potentials_adds_energies_forces_and_stress(x64, skewed):
    other = LennardJones(cutoff=4.0)
    total = sum_potentials(LJ.apply, other.apply)
    p1, p2 = LJ.params(TABLE), other.params({6: (0.02, 2.0), 8: (0.01, 2.2)})
    graph = _graph(skewed)
    both = energy_forces_stress(total, (p1, p2), graph)
    parts = [energy_forces_stress(f, p, graph) for f, p in [(LJ.apply, p1), (other.apply, p2)]]
    for k in range(3):
        np.testing.assert_allclose(both[k], parts[0][k] + parts[1][k], rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="2 potentials but 1"):
        total((p1,), graph)


def test_lennard_jones_passes_every_check(x64, skewed):
    results = check_potential(LJ.apply, LJ.params(TABLE), skewed, cutoff=CUT)
    assert [r.name for r in results] == list(CHECKS)
    assert all(r.passed for r in results), "\n".join(map(str, results))


def test_random_orthogonal_has_the_asked_determinant():
    rng = np.random.default_rng(0)
    for reflect in (False, True):
        q = random_orthogonal(rng, reflect)
        np.testing.assert_allclose(q @ q.T, np.eye(3), atol=1e-12)
        assert np.sign(np.linalg.det(q)) == (-1 if reflect else 1)


def test_repeat_tiles_atoms_in_image_order(skewed):
    big = skewed.repeat((2, 1, 3))
    assert big.n_atoms == 18
    np.testing.assert_allclose(big.positions[3:6], skewed.positions + skewed.cell[2])
    np.testing.assert_allclose(big.cell, skewed.cell * [[2], [1], [3]])
    np.testing.assert_allclose(big.perpendicular_widths, skewed.perpendicular_widths * [2, 1, 3])
    # Orthorhombic: the widths are the edge lengths.
    box = Crystal(species=np.array([1]), positions=np.zeros((1, 3)), cell=np.diag([3.0, 4, 5]))
    np.testing.assert_allclose(box.perpendicular_widths, [3, 4, 5])
    with pytest.raises(ValueError, match="three positive"):
        skewed.repeat((2, 0, 1))


# --- the checks fail on potentials that break what they test ------------------------------------


def _pair_energy(params, graph):
    return LJ.apply(params, graph)


def _not_rotation_invariant(params, graph):
    v = edge_vectors(graph) * jnp.asarray(graph.edge_mask)[:, None]
    return _pair_energy(params, graph) + 1e-3 * jnp.sum(v[:, 0] ** 2)


def _not_translation_invariant(params, graph):
    return _pair_energy(params, graph) + 1e-3 * jnp.sum(
        jnp.asarray(graph.positions)[:, 0] * jnp.asarray(graph.node_mask)
    )


def _not_extensive(params, graph):
    return _pair_energy(params, graph) ** 2


def _not_permutation_invariant(params, graph):
    first = jnp.asarray(graph.positions)[1] - jnp.asarray(graph.positions)[0]
    return _pair_energy(params, graph) + 1e-3 * jnp.sum(first**2)


def _inconsistent_forces(params, graph):
    lengths = safe_norm(edge_vectors(graph))
    fake = jax.lax.stop_gradient(1e-3 * jnp.sum(jnp.where(graph.edge_mask, lengths, 0.0)))
    return _pair_energy(params, graph) + fake


def _inconsistent_stress(params, graph):
    # Depends on the cell through a stop_gradient: the autodiff stress misses that term.
    cell = jax.lax.stop_gradient(jnp.asarray(graph.cell))
    return _pair_energy(params, graph) + 1e-4 * jnp.sum(cell**2)


@pytest.mark.parametrize(
    "energy_fn, check",
    [
        (_not_rotation_invariant, "rotation"),
        (_not_translation_invariant, "translation"),
        (_not_extensive, "supercell"),
        (_not_permutation_invariant, "permutation"),
        (_inconsistent_forces, "forces_fd"),
        (_inconsistent_stress, "stress_fd"),
    ],
)
def test_each_check_catches_its_violation(x64, skewed, energy_fn, check):
    (result,) = check_potential(energy_fn, LJ.params(TABLE), skewed, cutoff=CUT, checks=[check])
    assert not result.passed, str(result)
    (reference,) = check_potential(
        _pair_energy, LJ.params(TABLE), skewed, cutoff=CUT, checks=[check]
    )
    assert reference.passed, str(reference)


def test_checks_refuse_float32_and_unknown_names(skewed):
    with pytest.raises(RuntimeError, match="float64"):
        check_potential(LJ.apply, LJ.params(TABLE, dtype=jnp.float32), skewed, cutoff=CUT)
    with jax.enable_x64(True), pytest.raises(ValueError, match="unknown checks"):
        check_potential(LJ.apply, LJ.params(TABLE), skewed, cutoff=CUT, checks=["gauge"])


def test_padding_and_batching_do_not_change_the_result(x64, skewed):
    dimer = Crystal(
        species=np.array([6, 8]),
        positions=np.array([[0.0, 0, 0], [3.1, 0.2, 0]]),
        cell=np.eye(3) * 9,
    )
    params = LJ.params(TABLE)
    alone = energy_forces_stress(LJ.apply, params, _graph(skewed))
    graphs = [radius_graph(dimer, CUT), radius_graph(skewed, CUT)]
    both = jax.tree.map(jnp.asarray, batch(graphs, n_node=64, n_edge=4096, n_graph=4))
    out = energy_forces_stress(LJ.apply, params, both)
    np.testing.assert_allclose(out.energy[1], alone.energy[0], rtol=1e-13)
    np.testing.assert_allclose(out.forces[2:5], alone.forces[:3], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out.stress[1], alone.stress[0], rtol=1e-12, atol=1e-16)
    assert dataclasses.is_dataclass(both)
