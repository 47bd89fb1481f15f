"""MACE on e3nn-jax: symmetry, extensivity and derivative checks, the product basis, padding
invariance, use through the shared prediction path, configuration errors."""

from __future__ import annotations

import dataclasses

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jmof.graph import batch, radius_graph
from jmof.structure import Crystal
from jmof.testing import assert_potential
from potentials import Potential
from potentials.mace import MACEConfig, _product_bases, _SymmetricContraction

SMALL = MACEConfig(
    elements=(1, 6, 8, 30),
    cutoff=4.0,
    channels=4,
    l_max=2,
    hidden_l=1,
    correlation=3,
    radial_hidden=(16,),
    avg_num_neighbors=10.0,
    atomic_energies=(-1.0, -2.0, -3.0, -4.0),
    dtype="float64",
)


@pytest.fixture(scope="module")
def skewed():
    cell = np.array([[3.4, 0.0, 0.0], [1.1, 3.2, 0.0], [0.7, -0.9, 3.6]])
    frac = np.array([[0.1, 0.2, 0.3], [0.55, 0.45, 0.6], [0.8, 0.9, 0.05], [0.3, 0.7, 0.8]])
    return Crystal(species=np.array([6, 8, 1, 30]), positions=frac @ cell, cell=cell)


def _graph(crystals, cutoff, **capacity):
    return jax.tree.map(jnp.asarray, batch([radius_graph(c, cutoff) for c in crystals], **capacity))


@pytest.fixture(scope="module")
def params(skewed):
    with jax.enable_x64(True):
        return jax.jit(SMALL.build().init)(
            jax.random.key(0), _graph([skewed], SMALL.cutoff, n_graph=2)
        )


def test_equivariance_extensivity_and_derivatives(x64, skewed, params):
    assert_potential(SMALL.build().apply, params, skewed, cutoff=SMALL.cutoff)


def test_product_basis_counts_the_known_invariants():
    """One channel of A = 0e+1o+2e: the symmetric square has 3 scalars (a0², |a1|², |a2|²) and
    the vectors a0·a1 and a1⊗a2 (2 ways to a 1o); these counts are fixed by representation
    theory, independently of any code."""
    bases = _product_bases(2, 3, "0e+1o")
    assert bases[0]["0e"].shape == (9, 1, 1) and bases[0]["1o"].shape == (9, 1, 3)
    assert bases[1]["0e"].shape[-2] == 3 and bases[1]["1o"].shape[-2] == 2
    # Degree 2 scalars are rotation invariant quadratic forms: check on a random A.
    rng = np.random.default_rng(0)
    a = rng.normal(size=9)
    q = e3nn.rand_matrix(jax.random.key(1), ())
    rotated = e3nn.IrrepsArray("0e+1o+2e", jnp.asarray(a)).transform_by_matrix(q).array
    u = bases[1]["0e"][..., 0]  # [9, 9, k]
    np.testing.assert_allclose(
        np.einsum("ijk,i,j->k", u, a, a), np.einsum("ijk,i,j->k", u, rotated, rotated), atol=1e-5
    )


@pytest.mark.parametrize(
    ("l_max", "correlation", "keep"), [(3, 3, "0e+1o"), (3, 3, "0e"), (2, 4, "0e+1o+1e")]
)
def test_symmetric_contraction_matches_the_dense_generalised_clebsch_gordan_sum(
    x64, l_max, correlation, keep
):
    """B[n, c] = Σ_ν Σ_k W_ν[s_n, k, c] Σ_{i1..iν} U[i1..iν, k, m] A[n,c,i1]⋯A[n,c,iν] summed
    directly over all index tuples (the definition) against the model's monomial form."""
    rng = np.random.default_rng(1)
    n_node, channels, dim = 6, 3, (l_max + 1) ** 2
    a = jnp.asarray(rng.normal(size=(n_node, channels, dim)))
    species = jnp.asarray(rng.integers(0, 2, n_node))
    module = _SymmetricContraction(l_max, correlation, keep, 2)
    params = module.init(jax.random.key(0), a, species)
    ours = module.apply(params, a, species)
    letters = "abdefg"[:correlation]
    for ir, chunk in zip(e3nn.Irreps(keep), ours.chunks, strict=True):
        expected = np.zeros((n_node, channels, ir.ir.dim))
        for nu, per_irrep in enumerate(_product_bases(l_max, correlation, keep), start=1):
            if str(ir.ir) not in per_irrep:
                continue
            w = np.asarray(params["params"][f"w{nu}_{ir.ir}"])[np.asarray(species)]
            idx = letters[:nu]
            spec = f"{idx}km," + ",".join(f"nc{x}" for x in idx) + ",nkc->ncm"
            expected += np.einsum(spec, per_irrep[str(ir.ir)], *[np.asarray(a)] * nu, w)
        np.testing.assert_allclose(chunk, expected, rtol=1e-11, atol=1e-11)


@pytest.mark.slow
def test_correlation_order_changes_the_model(x64, skewed, params):
    """Zeroing the degree-2 and -3 weights leaves a different (body-order-2 per layer) energy:
    the higher products contribute."""
    graph = _graph([skewed], SMALL.cutoff, n_graph=2)
    apply = SMALL.build().apply
    full = apply(params, graph)[0]
    linear = jax.tree_util.tree_map_with_path(
        lambda path, x: (
            x * 0 if any(str(getattr(k, "key", "")).startswith(("w2", "w3")) for k in path) else x
        ),
        params,
    )
    assert abs(float(apply(linear, graph)[0] - full)) > 1e-8


def test_energy_is_independent_of_padding_and_batch_partners(x64, skewed, params):
    other = Crystal(np.array([6, 8]), np.array([[0.0, 0, 0], [1.2, 0, 0]]), np.eye(3) * 9)
    apply = jax.jit(SMALL.build().apply)
    alone = apply(params, _graph([skewed], SMALL.cutoff, n_graph=2))
    both = apply(params, _graph([other, skewed], SMALL.cutoff, n_node=64, n_edge=1024, n_graph=4))
    np.testing.assert_allclose(both[1], alone[0], rtol=1e-12)


def test_mace_goes_through_the_shared_prediction_path(skewed):
    config = dataclasses.replace(SMALL, dtype="float32")
    params = jax.jit(config.build().init)(
        jax.random.key(0), _graph([skewed], config.cutoff, n_graph=2)
    )
    potential = Potential(config, params)
    energy, forces, stress = potential.energy_forces_stress([skewed])
    atoms = skewed.to_ase()
    atoms.calc = potential.calculator()
    np.testing.assert_allclose(atoms.get_potential_energy(), energy[0], rtol=1e-5)
    np.testing.assert_allclose(atoms.get_forces(), forces[0], atol=1e-5)


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError, match="hidden_l"):
        MACEConfig(l_max=1, hidden_l=2)
    with pytest.raises(ValueError, match="correlation"):
        MACEConfig(correlation=0)
    with pytest.raises(ValueError, match="Cu are not known"):
        SMALL.check_species([29])
