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

import collections
import dataclasses
import functools
import itertools

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jmof.graph import Graph
from potentials.convolution import edge_convolution, edge_convolution_irreps
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


@dataclasses.dataclass(frozen=True)
class _MonomialPlan:
    """The product bases rewritten on the distinct monomials of one channel of A that they use.

    ``Σ_{i1..iν} U[i1..iν, k, m] a_i1 ⋯ a_iν`` only depends on the symmetric part of U, so it
    equals ``Σ_t Ũ[t, k, m] Π_{i∈t} a_i`` over sorted index tuples t, with Ũ[t] the sum of U over
    the distinct permutations of t. In the real basis most Ũ[t] vanish: for l_max 3 and ν ≤ 3
    the bases of 0e+1o use 410 of the 968 monomials (500 non-zero coefficients) and those of 0e
    only 94. The plan builds just these, each monomial of degree ν as one of degree ν−1 (chosen
    so that few monomials are built only as factors) times one component of A; all ν and all
    kept irreps then become one matrix product ``Ũ.T @ monomials``.

    Attributes:
        steps: per ν ≥ 2, (prev, last) [M_ν] int arrays: monomial j of degree ν is monomial
          ``prev[j]`` of degree ν−1 times ``a[last[j]]``; degree 1 is A itself.
        matrix: [M, K], M = D + Σ_ν≥2 M_ν monomials in that order, K = Σ_(irrep, ν) k·(2l+1)
          columns.
        blocks: (irrep, ν, k, first column) per block of K.
    """

    steps: tuple
    matrix: np.ndarray
    blocks: tuple


def _sorted_tuples(dim: int, degree: int) -> list:
    """All non-decreasing index tuples of length ``degree`` over ``range(dim)``."""
    return list(itertools.combinations_with_replacement(range(dim), degree))


def _factor_choice(needed: set, lower: set) -> dict:
    """For each monomial t in ``needed`` (degree ν), the (prefix of degree ν−1, last index) it is
    built from. Prefixes already in ``lower`` are preferred; the rest are added greedily, the
    prefix that serves most of the remaining monomials first. Returns {t: (prefix, last)};
    ``lower`` grows by the prefixes added."""

    def options(t):
        return {t[:i] + t[i + 1 :]: t[i] for i in range(len(t))}

    choice = {}
    open_ = []
    for t in sorted(needed):
        hit = [(q, last) for q, last in options(t).items() if q in lower]
        if hit:
            choice[t] = min(hit)
        else:
            open_.append(t)
    while open_:
        counts = collections.Counter(q for t in open_ for q in options(t))
        best = min(counts, key=lambda q: (-counts[q], q))
        lower.add(best)
        rest = []
        for t in open_:
            if best in options(t):
                choice[t] = (best, options(t)[best])
            else:
                rest.append(t)
        open_ = rest
    return choice


@functools.cache
def _monomial_plan(l_max: int, correlation: int, keep: str) -> _MonomialPlan:
    dim = _natural(l_max).dim
    bases = _product_bases(l_max, correlation, keep)
    # Ũ per degree: {tuple: [K] coefficients}, columns in block order.
    blocks, n_col = [], 0
    coefficients = [collections.defaultdict(dict) for _ in range(correlation)]
    for ir in e3nn.Irreps(keep):
        for nu, per_irrep in enumerate(bases, start=1):
            basis = per_irrep.get(str(ir.ir))
            if basis is None:
                continue
            k, m = basis.shape[-2:]
            tolerance = 1e-12 * max(np.abs(basis).max(), 1.0)  # round-off of cancelling terms
            for t in _sorted_tuples(dim, nu):
                row = sum(basis[perm] for perm in set(itertools.permutations(t))).reshape(k * m)
                for j in np.flatnonzero(np.abs(row) > tolerance):
                    coefficients[nu - 1][t][n_col + int(j)] = float(row[j])
            blocks.append((str(ir.ir), nu, k, n_col))
            n_col += k * m
    # The monomials to build, top degree first: those with coefficients, then their factors.
    needed = [set(c) for c in coefficients]
    needed[0] = {(i,) for i in range(dim)}  # A itself
    choices = [None] * correlation
    for nu in range(correlation, 1, -1):
        choices[nu - 1] = _factor_choice(needed[nu - 1], needed[nu - 2])
    order = [[(i,) for i in range(dim)]] + [sorted(needed[nu]) for nu in range(1, correlation)]
    steps = []
    for nu in range(2, correlation + 1):
        position = {t: j for j, t in enumerate(order[nu - 2])}
        pairs = [choices[nu - 1][t] for t in order[nu - 1]]
        steps.append(
            (
                np.array([position[q] for q, _ in pairs], np.int32),
                np.array([last for _, last in pairs], np.int32),
            )
        )
    flat = [t for degree in order for t in degree]
    matrix = np.zeros((len(flat), n_col))
    for row, t in enumerate(flat):
        for col, value in coefficients[len(t) - 1].get(t, {}).items():
            matrix[row, col] = value
    return _MonomialPlan(tuple(steps), matrix, tuple(blocks))


class _SymmetricContraction(nn.Module):
    """B[n, c] = Σ_ν Σ_k W_ν[species_n, k, c] U_νk(A[n, c], …, A[n, c]), per kept irrep.

    Evaluated on the distinct monomials of A[n, c] (:class:`_MonomialPlan`): one [K, M] ×
    [M, N·C] matrix product for every ν and irrep, then the species-indexed weights.
    """

    l_max: int
    correlation: int
    keep: str  # e.g. "0e+1o"
    n_species: int

    @nn.compact
    def __call__(self, a: jax.Array, species: jax.Array) -> e3nn.IrrepsArray:
        # a: [N, C, D] one channel per row, irreps 0e+1o+… along the last axis
        n_node, channels, _ = a.shape
        plan = _monomial_plan(self.l_max, self.correlation, self.keep)
        # Monomials along the leading axis, so that building them moves whole rows of N·C.
        rows = jnp.moveaxis(a, -1, 0).reshape(a.shape[-1], n_node * channels)  # [D, N·C]
        monomials = [rows]
        for prev, last in plan.steps:
            monomials.append(monomials[-1][prev] * rows[last])
        matrix = jnp.asarray(plan.matrix.T, a.dtype)  # [K, M]
        q = (matrix @ jnp.concatenate(monomials, axis=0)).reshape(-1, n_node, channels)
        totals = {}
        for irrep, nu, k, first in plan.blocks:
            m = e3nn.Irrep(irrep).dim
            weight = self.param(
                f"w{nu}_{irrep}",
                nn.initializers.normal(1.0 / np.sqrt(k)),
                (self.n_species, k, channels),
                a.dtype,
            )[species]  # [N, k, C]
            part = q[first : first + k * m].reshape(k, m, n_node, channels)
            term = jnp.einsum("kmnc,nkc->ncm", part, weight)
            totals[irrep] = totals[irrep] + term if irrep in totals else term
        kept = e3nn.Irreps(self.keep)
        chunks = [
            totals.get(str(ir.ir), jnp.zeros((n_node, channels, ir.ir.dim), a.dtype)) for ir in kept
        ]
        irreps = e3nn.Irreps([(channels, ir.ir) for ir in kept])
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
        keep = [ir for _, ir in one]
        weights = e3nn.flax.MultiLayerPerceptron(
            cfg.radial_hidden + (edge_convolution_irreps(up.irreps, sh.irreps, keep).num_irreps,),
            act=jax.nn.silu,
            output_activation=False,
            name="radial",
        )(radial)
        a = edge_convolution(up, sh, weights, senders, receivers, keep)
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
