"""The equivariant edge convolution shared by NequIP and MACE, fused for speed.

Both models form, on every node n,

    out_n = Σ_{edges e: s_e → n}  w_e ⊙ ( x_{s_e} ⊗ Y(r̂_e) )

with ``x`` the node features, ``Y`` the spherical harmonics of the edge direction, ``⊗`` the
Clebsch–Gordan tensor product reduced to irreps (every path, one copy per channel) and ``w_e``
one radial weight per path and channel. Written with e3nn-jax's building blocks this is

    e3nn.scatter_sum(e3nn.tensor_product(x[senders], sh, filter_ir_out=f) * weights,
                     dst=receivers, output_size=n_node)

which :func:`edge_convolution` reproduces exactly (same irreps, same layout, same weight
columns, so checkpoints are interchangeable). What it changes is the evaluation: e3nn-jax
runs one dense Clebsch–Gordan einsum per path on ``[E, mul, 2l+1]`` arrays and then scales the
regrouped output irrep by irrep, which on a CPU costs far more in memory traffic than in
arithmetic. Here the Clebsch–Gordan tensors of all paths leaving one input irrep are first
contracted with the harmonics (one ``[E, D_sh] × [D_sh, (2l₁+1)·Σ(2l₃+1)]`` product), then
applied to the channel-minor features ``[E, 2l₁+1, C]`` by one small batched product; the
radial weights scale each path's block, the edges are summed once per input irrep, and only the
``[N, …]`` result is put back into e3nn's ``[mul, 2l+1]`` layout. See BENCHMARKS.md for what
this gains on the CPU.
"""

from __future__ import annotations

import dataclasses
import functools

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["edge_convolution", "edge_convolution_irreps"]


@dataclasses.dataclass(frozen=True)
class _Group:
    """The paths that leave one input chunk (``mul`` channels of one irrep, degree l₁).

    Attributes:
        x_slice: its columns of ``x.array``.
        mul, dim: channels and 2l₁+1.
        cg: [D_sh, dim, Σ(2l₃+1)] Clebsch–Gordan tensors of the group's paths side by side
          (rows of harmonics a path does not use are zero), with e3nn's irrep normalisation.
        blocks: per path (first row in the group's output, 2l₃+1, first weight column).
    """

    x_slice: tuple[int, int]
    mul: int
    dim: int
    cg: np.ndarray
    blocks: tuple[tuple[int, int, int], ...]


@dataclasses.dataclass(frozen=True)
class _Plan:
    groups: tuple[_Group, ...]
    unpack: tuple[tuple[int, int, int], ...]  # per output path in e3nn's order: (first
    # column of the packed [N, F] sum, 2l₃+1, mul)
    irreps_out: e3nn.Irreps  # regrouped, as e3nn.tensor_product returns them


def edge_convolution_irreps(
    irreps_x: e3nn.Irreps | str, irreps_sh: e3nn.Irreps | str, filter_ir_out
) -> e3nn.Irreps:
    """Irreps of :func:`edge_convolution`'s output; one radial weight per irrep copy
    (``.num_irreps`` of them) is expected."""
    plan = _plan(
        str(e3nn.Irreps(irreps_x).regroup()),
        str(e3nn.Irreps(irreps_sh).regroup()),
        _key(filter_ir_out),
    )
    return plan.irreps_out


def _key(filter_ir_out) -> tuple[str, ...]:
    return tuple(str(e3nn.Irrep(ir)) for ir in filter_ir_out)


@functools.cache
def _plan(
    irreps_x: str, irreps_sh: str, filter_ir_out: tuple[str, ...], norm: str = "component"
) -> _Plan:
    x_irreps = e3nn.Irreps(irreps_x)
    sh_irreps = e3nn.Irreps(irreps_sh)
    if any(mul != 1 for mul, _ in sh_irreps):
        raise ValueError(f"harmonics must hold each degree once, got {sh_irreps}")
    keep = {e3nn.Irrep(ir) for ir in filter_ir_out}
    # Paths in e3nn.tensor_product's order: input chunk, harmonic degree, output irrep.
    paths = []  # (group, cg rows, cg [d1, d2, d3], ir_out, mul)
    for g, (mul, ir1) in enumerate(x_irreps):
        for (_, ir2), s2 in zip(sh_irreps, sh_irreps.slices(), strict=True):
            for ir3 in ir1 * ir2:
                if ir3 not in keep:
                    continue
                cg = np.asarray(e3nn.clebsch_gordan(ir1.l, ir2.l, ir3.l), np.float64)
                if norm == "component":
                    cg = cg * np.sqrt(ir3.dim)
                elif norm == "norm":
                    cg = cg * np.sqrt(ir1.dim * ir2.dim)
                elif norm != "none":
                    raise ValueError(f"irrep_normalization {norm!r} is not supported")
                paths.append((g, (s2.start, s2.stop), cg, ir3, mul))
    outs = e3nn.Irreps([(mul, ir3) for *_, ir3, mul in paths])
    order = outs.sort().inv  # sorted[i] = original[inv[i]], stable
    weight_column = {}
    column = 0
    for i in order:
        weight_column[i] = column
        column += paths[i][4]
    groups, packed = [], {}
    offset = 0
    for g, ((mul, ir1), s1) in enumerate(zip(x_irreps, x_irreps.slices(), strict=True)):
        members = [i for i, path in enumerate(paths) if path[0] == g]
        if not members:
            continue
        width = sum(paths[i][2].shape[2] for i in members)
        cg = np.zeros((sh_irreps.dim, ir1.dim, width))
        blocks = []
        row = 0
        for i in members:
            _, (a, b), c, ir3, _ = paths[i]
            cg[a:b, :, row : row + ir3.dim] = c.transpose(1, 0, 2)
            blocks.append((row, ir3.dim, weight_column[i]))
            packed[i] = offset + row * mul
            row += ir3.dim
        offset += width * mul
        groups.append(_Group((s1.start, s1.stop), mul, ir1.dim, cg, tuple(blocks)))
    unpack = tuple((packed[i], paths[i][3].dim, paths[i][4]) for i in order)
    return _Plan(tuple(groups), unpack, outs.regroup())


def edge_convolution(
    x: e3nn.IrrepsArray,
    sh: e3nn.IrrepsArray,
    weights: jax.Array,
    senders: jax.Array,
    receivers: jax.Array,
    filter_ir_out,
) -> e3nn.IrrepsArray:
    """``Σ_{e: s_e → n} weights_e ⊙ (x[s_e] ⊗ sh_e)`` on every node, fused (see the module).

    Args:
        x: [N] node features (e.g. ``32x0e+32x1o``).
        sh: [E] edge spherical harmonics, each degree once (``0e+1o+2e+…``).
        weights: [E, P] one weight per output irrep copy, P =
          ``edge_convolution_irreps(...).num_irreps``, in e3nn's output order.
        senders, receivers: [E] int node indices (the message goes from sender to receiver).
        filter_ir_out: the output irreps to keep.

    Returns:
        [N] IrrepsArray with ``edge_convolution_irreps(x.irreps, sh.irreps, filter_ir_out)``.
    """
    x, sh = x.regroup(), sh.regroup()  # as e3nn.tensor_product does
    plan = _plan(
        str(x.irreps), str(sh.irreps), _key(filter_ir_out), e3nn.config("irrep_normalization")
    )
    n_node, n_edge = x.shape[0], sh.shape[0]
    dtype = x.dtype
    if weights.shape[-1] != plan.irreps_out.num_irreps:
        raise ValueError(
            f"weights need {plan.irreps_out.num_irreps} columns for {plan.irreps_out}, "
            f"got {weights.shape[-1]}"
        )
    pieces = []
    for group in plan.groups:
        start, stop = group.x_slice
        chunk = x.array[:, start:stop].reshape(n_node, group.mul, group.dim)
        xg = jnp.swapaxes(chunk, 1, 2)[senders]  # [E, 2l1+1, mul]
        d_sh, d1, width = group.cg.shape
        kernel = (sh.array @ jnp.asarray(group.cg.reshape(d_sh, d1 * width), dtype)).reshape(
            -1, d1, width
        )  # [E, 2l1+1, Σ(2l3+1)]
        out = jnp.einsum("ead,eac->edc", kernel, xg)  # [E, Σ(2l3+1), mul]
        scale = jnp.concatenate(
            [
                jnp.broadcast_to(weights[:, None, c : c + group.mul], (n_edge, d3, group.mul))
                for _, d3, c in group.blocks
            ],
            axis=1,
        )  # each path's radial weights repeated over its 2l3+1 rows
        messages = (out * scale).reshape(n_edge, width * group.mul)
        pieces.append(jax.ops.segment_sum(messages, receivers, n_node))
    summed = jnp.concatenate(pieces, axis=1)  # [N, F]
    chunks = []
    for first, d3, mul in plan.unpack:
        block = summed[:, first : first + d3 * mul].reshape(n_node, d3, mul)
        chunks.append(jnp.swapaxes(block, 1, 2).reshape(n_node, mul * d3))
    return e3nn.IrrepsArray(plan.irreps_out, jnp.concatenate(chunks, axis=1))
