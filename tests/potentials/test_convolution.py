"""The fused edge convolution against e3nn-jax's own tensor product, scaling and scatter: same
irreps, same numbers, same derivatives."""

from __future__ import annotations

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from potentials.convolution import edge_convolution, edge_convolution_irreps

CASES = [
    # node irreps, harmonics, kept output irreps
    ("4x0e+3x1o", e3nn.Irreps.spherical_harmonics(3), "0e+1o+2e+3o"),  # MACE-like
    ("5x0e+2x1o+3x2e", e3nn.Irreps.spherical_harmonics(2), "0e+0o+1o+1e+2e+2o"),  # NequIP O(3)
    ("3x0e+2x1e", e3nn.Irreps.spherical_harmonics(2, p=1), "0e+1e+2e"),  # SevenNet's SO(3)
    ("2x1o+2x0o+1x1e", e3nn.Irreps.spherical_harmonics(1), "0e+0o+1o+1e"),  # unsorted input
    ("6x0e", e3nn.Irreps.spherical_harmonics(2), "0e+1o"),  # first layer, one path dropped
]


def _reference(x, sh, weights, senders, receivers, keep):
    messages = e3nn.tensor_product(x[senders], sh, filter_ir_out=keep) * weights
    return e3nn.scatter_sum(messages, dst=receivers, output_size=x.shape[0])


@pytest.mark.parametrize(("irreps_x", "irreps_sh", "keep"), CASES)
def test_matches_e3nn_values_and_derivatives(x64, irreps_x, irreps_sh, keep):
    rng = np.random.default_rng(0)
    n_node, n_edge = 9, 40
    keep = [e3nn.Irrep(ir) for ir in keep.split("+")]
    senders = jnp.asarray(rng.integers(0, n_node, n_edge))
    receivers = jnp.asarray(rng.integers(0, n_node, n_edge))
    x = jnp.asarray(rng.normal(size=(n_node, e3nn.Irreps(irreps_x).dim)))
    vectors = jnp.asarray(rng.normal(size=(n_edge, 3)))
    irreps_out = edge_convolution_irreps(irreps_x, irreps_sh, keep)
    assert irreps_out == e3nn.tensor_product(
        e3nn.Irreps(irreps_x), e3nn.Irreps(irreps_sh), filter_ir_out=keep
    )
    weights = jnp.asarray(rng.normal(size=(n_edge, irreps_out.num_irreps)))
    probe = jnp.asarray(rng.normal(size=(n_node, irreps_out.dim)))

    def run(fn, x, vectors, weights):
        sh = e3nn.spherical_harmonics(irreps_sh, vectors, normalize=True)
        out = fn(e3nn.IrrepsArray(irreps_x, x), sh, weights, senders, receivers, keep)
        assert out.irreps == irreps_out  # at trace time
        return jnp.sum(jnp.sin(out.array) * probe), out.array

    def value_and_grad(fn):
        return jax.jit(jax.value_and_grad(lambda *a: run(fn, *a), argnums=(0, 1, 2), has_aux=True))

    (_, ours_out), grads = value_and_grad(edge_convolution)(x, vectors, weights)
    (_, ref_out), ref_grads = value_and_grad(_reference)(x, vectors, weights)
    np.testing.assert_allclose(ours_out, ref_out, rtol=1e-12, atol=1e-12)
    for g, r in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-11, atol=1e-11)


def test_wrong_number_of_weights_is_refused():
    x = e3nn.IrrepsArray("2x0e", jnp.ones((3, 2)))
    sh = e3nn.spherical_harmonics("0e+1o", jnp.ones((4, 3)), normalize=True)
    index = jnp.zeros(4, jnp.int32)
    with pytest.raises(ValueError, match="weights need 4 columns"):
        edge_convolution(x, sh, jnp.ones((4, 3)), index, index, ["0e", "1o"])
