"""MACE: higher-body-order equivariant message passing on e3nn-jax.

After Batatia et al., "MACE: Higher Order Equivariant Message Passing Neural Networks for Fast
and Accurate Force Fields", NeurIPS 2022, in the form of mace-torch's
``RealAgnosticResidualInteractionBlock`` model.

    config = MACEConfig(elements=(1, 6, 8, 30), channels=32, l_max=2, hidden_l=1, correlation=3)
    energy = config.build().apply(params, graph)                     # [G] eV

One layer, for node features ``h`` (``C×0e + C×1o`` for ``hidden_l = 1``):

    sc   = SpeciesLinear(h)                                  (residual; not in the first layer)
    A_i  = Linear( Σ_j R(r_ij) ⊙ [Linear(h)_j ⊗ Y(r̂_ij)] / avg_num_neighbors )
                                                             the atomic basis, C×(0e+1o+…+l_max)
    B_i  = Σ_{ν=1..correlation} Σ_k W_νk[species_i] · U_νk(A_i, …, A_i)
                                                             the product basis, per channel
    h_i  = Linear(B_i) + sc
    e_i += readout(h_i)                                      linear; an MLP after the last layer

``U_νk`` are the generalised Clebsch–Gordan bases of the symmetric ν-th power of one channel of
``A`` reduced to the irreps of ``h`` (``e3nn.reduced_symmetric_tensor_product_basis``); the
product basis is what makes a 2-layer MACE see up to (correlation × layers + 1)-body terms.
The energy is ``Σ_atoms scale · Σ_layers e_i + shift[species]``.
"""

from __future__ import annotations

import dataclasses
import functools

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jmof.graph import Graph
from potentials.nequip import (
    check_species,
    edge_geometry,
    graph_energy,
    normalize_species_fields,
    species_onehot,
    species_table,
)

__all__ = ["MACE", "MACEConfig"]


@dataclasses.dataclass(frozen=True)
class MACEConfig:
    """Everything that defines a MACE model, stored in its checkpoints.

    Attributes:
        elements: atomic numbers the model knows (see :class:`potentials.NequIPConfig`).
        cutoff: Å.
        n_layers: interaction layers (MACE's default 2).
        channels: C, channels of every irrep.
        l_max: highest degree of the spherical harmonics and of the atomic basis A.
        hidden_l: highest degree of the node features (1: ``C×0e + C×1o``); the last layer
          keeps only scalars.
        correlation: ν, the body order of the product basis (3 in MACE).
        n_basis: Bessel functions of the radial basis.
        envelope_p: polynomial envelope exponent (MACE's default 5).
        radial_hidden: hidden widths of the radial MLP.
        readout_hidden: width of the last layer's readout MLP.
        avg_num_neighbors, atomic_energies, scale, dtype: as in :class:`NequIPConfig`.
    """

    elements: tuple[int, ...] = (1, 6, 7, 8)
    cutoff: float = 5.0
    n_layers: int = 2
    channels: int = 32
    l_max: int = 2
    hidden_l: int = 1
    correlation: int = 3
    n_basis: int = 8
    envelope_p: int = 5
    radial_hidden: tuple[int, ...] = (64, 64, 64)
    readout_hidden: int = 16
    avg_num_neighbors: float = 1.0
    atomic_energies: tuple[float, ...] | None = None
    scale: float | tuple[float, ...] = 1.0
    dtype: str = "float32"

    def __post_init__(self):
        normalize_species_fields(self)
        if not 0 <= self.hidden_l <= self.l_max:
            raise ValueError(f"hidden_l must be in 0..l_max={self.l_max}, got {self.hidden_l}")
        if self.correlation < 1 or self.n_layers < 1 or self.channels < 1:
            raise ValueError("correlation, n_layers and channels must be >= 1")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if not self.cutoff > 0 or not self.avg_num_neighbors > 0:
            raise ValueError("cutoff and avg_num_neighbors must be positive")

    def build(self) -> MACE:
        return MACE(self)

    def check_species(self, species, name: str = "structure") -> None:
        check_species(self.elements, species, name)

    def species_index(self) -> np.ndarray:
        return species_table(self.elements)


def _natural(l_max: int) -> e3nn.Irreps:
    """``0e + 1o + 2e + …`` up to ``l_max``: the irreps of one channel."""
    return e3nn.Irreps.spherical_harmonics(l_max)


@functools.cache
def _product_bases(l_max: int, correlation: int, keep: str) -> list:
    """For ν = 1..correlation and each kept irrep, the basis [D]*ν + [k, 2l+1] (NumPy), where
    D = (l_max+1)² and k the number of independent couplings."""
    one = _natural(l_max)
    out = []
    for nu in range(1, correlation + 1):
        basis = e3nn.reduced_symmetric_tensor_product_basis(one, nu, keep_ir=keep)
        per_irrep = {}
        for (mul, ir), chunk in zip(basis.irreps, basis.chunks, strict=True):
            if mul and chunk is not None:
                per_irrep[str(ir)] = np.asarray(chunk)  # [D]*nu + [mul, 2l+1]
        out.append(per_irrep)
    return out


class _SymmetricContraction(nn.Module):
    """B[n, c] = Σ_ν Σ_k W_ν[species_n, k, c] U_νk(A[n, c], …, A[n, c]), per kept irrep."""

    l_max: int
    correlation: int
    keep: str  # e.g. "0e+1o"
    n_species: int

    @nn.compact
    def __call__(self, a: jax.Array, species: jax.Array) -> e3nn.IrrepsArray:
        # a: [N, C, D] one channel per row, irreps 0e+1o+… along the last axis
        n_node, channels, _ = a.shape
        bases = _product_bases(self.l_max, self.correlation, self.keep)
        letters = "abdefg"[: self.correlation]  # D indices (k: couplings, m: irrep)
        chunks = []
        for ir in e3nn.Irreps(self.keep):
            total = jnp.zeros((n_node, channels, ir.ir.dim), a.dtype)
            for nu, per_irrep in enumerate(bases, start=1):
                basis = per_irrep.get(str(ir.ir))
                if basis is None:
                    continue
                k = basis.shape[-2]
                weight = self.param(
                    f"w{nu}_{ir.ir}",
                    nn.initializers.normal(1.0 / np.sqrt(k)),
                    (self.n_species, k, channels),
                    a.dtype,
                )[species]  # [N, k, C]
                idx = letters[:nu]
                operands = [jnp.asarray(basis, a.dtype)] + [a] * nu + [weight]
                spec = f"{idx}km," + ",".join(f"nc{x}" for x in idx) + ",nkc->ncm"
                total = total + jnp.einsum(spec, *operands, optimize="greedy")
            chunks.append(total)  # [N, C, 2l+1]
        irreps = e3nn.Irreps([(channels, ir.ir) for ir in e3nn.Irreps(self.keep)])
        return e3nn.from_chunks(irreps, chunks, (n_node,), a.dtype)


class _Layer(nn.Module):
    config: MACEConfig
    keep: str
    residual: bool

    @nn.compact
    def __call__(self, h, species, sh, radial, senders, receivers):
        cfg = self.config
        n_species = len(cfg.elements)
        channels = cfg.channels
        target = e3nn.Irreps([(channels, ir) for _, ir in e3nn.Irreps(self.keep)])
        sc = None
        if self.residual:
            sc = e3nn.flax.Linear(
                target, num_indexed_weights=n_species, force_irreps_out=True, name="skip"
            )(species, h)
        up = e3nn.flax.Linear(h.irreps, name="linear_up")(h)
        one = _natural(cfg.l_max)
        messages = e3nn.tensor_product(up[senders], sh, filter_ir_out=[ir for _, ir in one])
        weights = e3nn.flax.MultiLayerPerceptron(
            cfg.radial_hidden + (messages.irreps.num_irreps,),
            act=jax.nn.silu,
            output_activation=False,
            name="radial",
        )(radial)
        messages = messages * weights
        a = e3nn.scatter_sum(messages, dst=receivers, output_size=h.shape[0])
        a = a / cfg.avg_num_neighbors
        per_channel = e3nn.Irreps([(channels, ir) for _, ir in one])
        a = e3nn.flax.Linear(per_channel, force_irreps_out=True, name="linear_a")(a)
        b = _SymmetricContraction(
            l_max=cfg.l_max,
            correlation=cfg.correlation,
            keep=self.keep,
            n_species=n_species,
            name="product",
        )(a.mul_to_axis(channels).array, species)
        out = e3nn.flax.Linear(target, force_irreps_out=True, name="linear_out")(b)
        return out if sc is None else out + sc


class MACE(nn.Module):
    """``apply(params, graph) -> [G]`` energy in eV (0 on padding graphs)."""

    config: MACEConfig

    @nn.compact
    def __call__(self, graph: Graph) -> jax.Array:
        cfg = self.config
        dtype = jnp.dtype(cfg.dtype)
        index, known, onehot = species_onehot(cfg.elements, graph, dtype)
        sh, radial = edge_geometry(graph, cfg.cutoff, cfg.l_max, cfg.n_basis, cfg.envelope_p, dtype)

        h = e3nn.IrrepsArray(f"{len(cfg.elements)}x0e", onehot)
        h = e3nn.flax.Linear(f"{cfg.channels}x0e", name="embed")(h)
        hidden = str(_natural(cfg.hidden_l))
        atomic = jnp.zeros(h.shape[0], dtype)
        for layer in range(cfg.n_layers):
            last = layer == cfg.n_layers - 1
            h = _Layer(
                cfg, keep="0e" if last else hidden, residual=layer > 0, name=f"layer_{layer}"
            )(h, index, sh, radial, graph.senders, graph.receivers)
            scalars = h.filter(keep="0e")
            if last:
                x = e3nn.flax.Linear(f"{cfg.readout_hidden}x0e", name=f"readout_{layer}_0")(scalars)
                x = e3nn.IrrepsArray(x.irreps, jax.nn.silu(x.array))
                x = e3nn.flax.Linear("0e", name=f"readout_{layer}_1")(x)
            else:
                x = e3nn.flax.Linear("0e", name=f"readout_{layer}")(scalars)
            atomic = atomic + x.array[:, 0]
        return graph_energy(graph, atomic, index, known, cfg.atomic_energies, cfg.scale)
