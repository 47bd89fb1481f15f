"""NequIP: an E(3)-equivariant interatomic potential on e3nn-jax.

After Batzner et al., "E(3)-equivariant graph neural networks for data-efficient and accurate
interatomic potentials", Nat. Commun. 13, 2453 (2022).

    config = NequIPConfig(elements=(1, 6, 8, 30), cutoff=5.0, channels=32, l_max=2, n_layers=3)
    params = config.build().init(key, graph)
    energy = config.build().apply(params, graph)                         # [G] eV
    energy, forces, stress = energy_forces_stress(config.build().apply, params, graph)

One interaction block, for node features ``h`` (irreps ``hidden``), edges ``i -> j`` of vector
``r_ij`` and length ``r``:

    sc   = SelfConnection(h, species)                              (to the block's output irreps)
    h'   = Linear(h)
    m_j  = Σ_i  R(r) ⊙ [h'_i ⊗ Y(r̂_ij)] / avg_num_neighbors      (uvu tensor product, one radial
                                                                  weight per path and channel)
    h    = Gate(Linear(m) + sc)

``R`` is an MLP (no biases, SiLU) of ``n_basis`` Bessel functions times a polynomial cutoff
envelope, so messages vanish smoothly at ``cutoff``; ``Y`` are the spherical harmonics up to
``l_max``. The readout maps the scalars of the last block through two linear layers to one
energy per atom, ``E = Σ_atoms scale · e_atom + shift[species]``. The last block produces
only the even scalars that the readout uses.

Conventions (pinned so that converted weights, e.g. SevenNet-0, can be matched exactly):
e3nn's "component" normalisation for spherical harmonics and tensor products, e3nn-jax
"element" gradient normalisation of linear layers and MLPs (a ``1/sqrt(fan_in)`` factor in the
forward pass), gate activations SiLU (even scalars) / tanh (odd scalars) with sigmoid / tanh
gates, all normalised to unit second moment as e3nn does.

Padding (``jmof.graph.batch``) is handled by masks: padding edges carry zero radial weight,
padding nodes zero energy, so a crystal has the same energy alone or in any padded batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jmof.graph import Graph, edge_vectors, safe_norm

__all__ = [
    "NequIP",
    "NequIPConfig",
    "bessel_basis",
    "check_species",
    "edge_geometry",
    "graph_energy",
    "polynomial_envelope",
    "species_onehot",
    "species_table",
]

_SELF_CONNECTIONS = ("species", "linear", "none")
_DTYPES = ("float32", "float64")
N_ELEMENTS = 119


@dataclasses.dataclass(frozen=True)
class NequIPConfig:
    """Everything that defines a NequIP model, stored in its checkpoints.

    Attributes:
        elements: atomic numbers the model knows, in embedding order. Atoms of other elements
          get a zero embedding and zero shift; :meth:`check_species` refuses them on the host
          before they reach the model.
        cutoff: Å, radius of the neighbour graph and of the envelope.
        n_layers: interaction blocks.
        channels: multiplicity of every irrep of the hidden features (ignored when
          ``hidden_irreps`` is given).
        l_max: highest degree of the spherical harmonics and of the hidden features.
        parity: hidden features of both parities per degree (``0e+0o+1o+1e+…``, NequIP's
          ``parity=True``); False keeps the natural parity ``(-1)^l`` only (``0e+1o+2e+…``).
        hidden_irreps: explicit hidden irreps (e.g. ``"64x0e+32x1o+16x2e"``), overriding
          ``channels``/``l_max``/``parity`` for the features (``l_max`` still sets the spherical
          harmonics).
        n_basis: Bessel functions of the radial basis.
        envelope_p: exponent ``p`` of the polynomial cutoff envelope (NequIP's default 6).
        radial_hidden: hidden widths of the radial MLP.
        avg_num_neighbors: divides the summed messages; set it from data
          (:func:`potentials.fit.average_neighbors`).
        self_connection: "species" (a linear map chosen by the receiving atom's element,
          NequIP's tensor product with the one-hot species), "linear" (one linear map) or
          "none".
        readout_hidden: width of the scalar layer between the last block and the energy;
          default half the scalar channels of the last block.
        atomic_energies: eV, per entry of ``elements``, the energy shift of an isolated atom of
          that element (fit by least squares, :func:`potentials.fit.fit_atomic_energies`);
          default zeros.
        scale: eV, multiplies the per-atom network output (e.g. the force RMS of the data).
        dtype: "float32" or "float64": of the computation and the parameters.
    """

    elements: tuple[int, ...] = (1, 6, 7, 8)
    cutoff: float = 5.0
    n_layers: int = 3
    channels: int = 32
    l_max: int = 2
    parity: bool = True
    hidden_irreps: str | None = None
    n_basis: int = 8
    envelope_p: int = 6
    radial_hidden: tuple[int, ...] = (64, 64)
    avg_num_neighbors: float = 1.0
    self_connection: str = "species"
    readout_hidden: int | None = None
    atomic_energies: tuple[float, ...] | None = None
    scale: float = 1.0
    dtype: str = "float32"

    def __post_init__(self):
        normalize_species_fields(self)
        if not self.cutoff > 0 or self.n_layers < 1 or self.l_max < 0 or self.n_basis < 1:
            raise ValueError("cutoff must be > 0, n_layers >= 1, l_max >= 0 and n_basis >= 1")
        if self.self_connection not in _SELF_CONNECTIONS:
            raise ValueError(f"self_connection must be in {_SELF_CONNECTIONS}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be in {_DTYPES}, got {self.dtype!r}")
        if not self.avg_num_neighbors > 0 or not self.scale > 0:
            raise ValueError("avg_num_neighbors and scale must be positive")
        e3nn.Irreps(self.irreps)  # raises on a malformed hidden_irreps

    @property
    def irreps(self) -> str:
        """The hidden irreps of the interaction blocks."""
        if self.hidden_irreps is not None:
            return str(e3nn.Irreps(self.hidden_irreps))
        parities = ("e", "o") if self.parity else None
        parts = []
        for l in range(self.l_max + 1):
            natural = "e" if l % 2 == 0 else "o"
            for p in parities or (natural,):
                parts.append(f"{self.channels}x{l}{p}")
        return str(e3nn.Irreps("+".join(parts)).sort().irreps.simplify())

    def build(self) -> NequIP:
        """The linen module: ``build().init(key, graph)``, ``build().apply(params, graph)``."""
        return NequIP(self)

    def check_species(self, species, name: str = "structure") -> None:
        """ValueError naming the elements of ``species`` (atomic numbers) the model lacks."""
        check_species(self.elements, species, name)

    def species_index(self) -> np.ndarray:
        """[119] int: embedding row of each atomic number, -1 for unknown elements."""
        return species_table(self.elements)


def normalize_species_fields(config) -> None:
    """Normalise and validate the fields every potential config shares (``elements``,
    ``radial_hidden``, ``atomic_energies``) in its ``__post_init__``."""
    setattr_ = object.__setattr__
    setattr_(config, "elements", tuple(int(z) for z in config.elements))
    setattr_(config, "radial_hidden", tuple(int(w) for w in config.radial_hidden))
    if config.atomic_energies is None:
        setattr_(config, "atomic_energies", (0.0,) * len(config.elements))
    setattr_(config, "atomic_energies", tuple(float(e) for e in config.atomic_energies))
    if not config.elements or len(set(config.elements)) != len(config.elements):
        raise ValueError(f"elements must be distinct atomic numbers, got {config.elements}")
    if not all(1 <= z < N_ELEMENTS for z in config.elements):
        raise ValueError(f"elements must be atomic numbers 1..118, got {config.elements}")
    if len(config.atomic_energies) != len(config.elements):
        raise ValueError(
            f"atomic_energies has {len(config.atomic_energies)} entries for "
            f"{len(config.elements)} elements"
        )


def check_species(elements: Sequence[int], species, name: str = "structure") -> None:
    """ValueError naming the elements of ``species`` that are not in ``elements``."""
    from ase.data import chemical_symbols

    missing = sorted(set(np.asarray(species).tolist()) - set(elements))
    if missing:
        known = " ".join(chemical_symbols[z] for z in elements)
        raise ValueError(
            f"{name}: elements {' '.join(chemical_symbols[z] for z in missing)} are not "
            f"known to this model (it knows {known})"
        )


def species_table(elements: Sequence[int]) -> np.ndarray:
    """[119] int: the row of each atomic number in ``elements``, -1 for the others."""
    table = np.full(N_ELEMENTS, -1, dtype=np.int32)
    table[list(elements)] = np.arange(len(elements), dtype=np.int32)
    return table


def species_onehot(elements: Sequence[int], graph: Graph, dtype):
    """(index [N] int, known [N] bool, one-hot [N, len(elements)]) of the graph's atoms;
    unknown elements and padding nodes get index 0, ``known`` False and a zero row."""
    index = jnp.asarray(species_table(elements))[graph.species]
    known = (index >= 0) & jnp.asarray(graph.node_mask)
    index = jnp.where(known, index, 0)
    onehot = jax.nn.one_hot(index, len(elements), dtype=dtype) * known[:, None]
    return index, known, onehot


def edge_geometry(graph: Graph, cutoff: float, l_max: int, n_basis: int, p: int, dtype):
    """(spherical harmonics [E] IrrepsArray up to ``l_max``, radial basis [E, n_basis]) of the
    graph's edges: Bessel functions times the polynomial envelope, zero on padding edges."""
    edge_mask = jnp.asarray(graph.edge_mask)
    vectors = edge_vectors(graph).astype(dtype)
    # Padding edges have zero vectors: give them a harmless direction, zero weight below.
    vectors = jnp.where(edge_mask[:, None], vectors, jnp.array([1.0, 0.0, 0.0], dtype))
    lengths = safe_norm(vectors)
    sh = e3nn.spherical_harmonics(
        e3nn.Irreps.spherical_harmonics(l_max), vectors, normalize=True, normalization="component"
    )
    envelope = polynomial_envelope(lengths, cutoff, p) * edge_mask
    return sh, bessel_basis(lengths, n_basis, cutoff) * envelope[:, None]


def bessel_basis(lengths: jax.Array, n: int, cutoff: float) -> jax.Array:
    """[E, n]: ``sqrt(2/c) sin(k π r / c) / r`` for k = 1..n (the limit ``sqrt(2/c) k π / c`` at
    r = 0). lengths: [E] Å."""
    k = jnp.arange(1, n + 1, dtype=lengths.dtype)
    r = lengths[:, None]
    safe = jnp.where(r == 0, 1.0, r)
    value = jnp.sin(k * jnp.pi * safe / cutoff) / safe
    return jnp.sqrt(2.0 / cutoff) * jnp.where(r == 0, k * jnp.pi / cutoff, value)


def polynomial_envelope(lengths: jax.Array, cutoff: float, p: int) -> jax.Array:
    """[E]: NequIP's cutoff ``1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2)`` with
    ``x = r / cutoff``; it and its first two derivatives vanish at ``x = 1``; 0 beyond."""
    x = lengths / cutoff
    value = (
        1.0
        - (p + 1) * (p + 2) / 2 * x**p
        + p * (p + 2) * x ** (p + 1)
        - p * (p + 1) / 2 * x ** (p + 2)
    )
    return jnp.where(x < 1.0, value, 0.0)


def _gate_irreps(target: e3nn.Irreps, available: e3nn.Irreps) -> e3nn.Irreps:
    """Irreps a block must produce before the gate: the scalars of ``target``, one gate scalar
    per non-scalar channel, and the non-scalars, keeping only irreps that ``available`` (what
    the tensor product can reach) contains."""
    scalars = e3nn.Irreps([(m, ir) for m, ir in target if ir.l == 0 and ir in available])
    vectors = e3nn.Irreps([(m, ir) for m, ir in target if ir.l > 0 and ir in available])
    gate = "0e" if e3nn.Irrep("0e") in available else "0o"
    gates = e3nn.Irreps([(vectors.num_irreps, gate)]) if vectors.num_irreps else e3nn.Irreps("")
    return (scalars + gates + vectors).simplify()


class _Interaction(nn.Module):
    target: str
    n_species: int
    avg_num_neighbors: float
    radial_hidden: tuple[int, ...]
    self_connection: str

    @nn.compact
    def __call__(self, h, species, sh, radial, senders, receivers):
        target = e3nn.Irreps(self.target)
        reachable = e3nn.tensor_product(h.irreps, sh.irreps)
        before_gate = _gate_irreps(target, e3nn.Irreps([ir for _, ir in reachable]))

        if self.self_connection == "species":
            sc = e3nn.flax.Linear(
                before_gate,
                num_indexed_weights=self.n_species,
                force_irreps_out=True,
                name="self_connection",
            )(species, h)
        elif self.self_connection == "linear":
            sc = e3nn.flax.Linear(before_gate, force_irreps_out=True, name="self_connection")(h)
        else:
            sc = None

        h = e3nn.flax.Linear(h.irreps, name="linear_up")(h)
        messages = e3nn.tensor_product(h[senders], sh, filter_ir_out=[ir for _, ir in before_gate])
        weights = e3nn.flax.MultiLayerPerceptron(
            self.radial_hidden + (messages.irreps.num_irreps,),
            act=jax.nn.silu,
            output_activation=False,
            name="radial",
        )(radial)
        messages = messages * weights
        summed = e3nn.scatter_sum(messages, dst=receivers, output_size=h.shape[0])
        summed = summed / self.avg_num_neighbors
        out = e3nn.flax.Linear(before_gate, name="linear_down", force_irreps_out=True)(summed)
        if sc is not None:
            out = out + sc
        return e3nn.gate(
            out,
            even_act=jax.nn.silu,
            odd_act=jnp.tanh,
            even_gate_act=jax.nn.sigmoid,
            odd_gate_act=jnp.tanh,
        )


class NequIP(nn.Module):
    """``apply(params, graph) -> [G]`` energy in eV (0 on padding graphs).

    graph: a padded :class:`jmof.graph.Graph` whose edges are the pairs within ``config.cutoff``
    (``jmof.graph.radius_graph``); edge vectors are recomputed in JAX from positions, cell and
    shifts, so forces and stress are gradients of this energy.
    """

    config: NequIPConfig

    @nn.compact
    def __call__(self, graph: Graph) -> jax.Array:
        cfg = self.config
        dtype = jnp.dtype(cfg.dtype)
        n_species = len(cfg.elements)
        index, known, onehot = species_onehot(cfg.elements, graph, dtype)
        sh, radial = edge_geometry(graph, cfg.cutoff, cfg.l_max, cfg.n_basis, cfg.envelope_p, dtype)

        h = e3nn.IrrepsArray(f"{n_species}x0e", onehot)
        h = e3nn.flax.Linear(e3nn.Irreps(cfg.irreps).filter(keep="0e"), name="embed")(h)
        for layer in range(cfg.n_layers):
            last = layer == cfg.n_layers - 1  # only its scalars reach the readout
            h = _Interaction(
                target=str(e3nn.Irreps(cfg.irreps).filter(keep="0e")) if last else cfg.irreps,
                n_species=n_species,
                avg_num_neighbors=cfg.avg_num_neighbors,
                radial_hidden=cfg.radial_hidden,
                self_connection=cfg.self_connection,
                name=f"layer_{layer}",
            )(h, index, sh, radial, graph.senders, graph.receivers)

        scalars = h.filter(keep="0e")
        hidden = cfg.readout_hidden or max(scalars.irreps.num_irreps // 2, 1)
        x = e3nn.flax.Linear(f"{hidden}x0e", name="readout_hidden")(scalars)
        atomic = e3nn.flax.Linear("0e", name="readout")(x).array[:, 0]

        return graph_energy(graph, atomic, index, known, cfg.atomic_energies, cfg.scale)


def graph_energy(graph: Graph, atomic, index, known, atomic_energies, scale) -> jax.Array:
    """[G] eV: ``Σ_atoms scale · atomic + atomic_energies[species]`` per graph, 0 on padding."""
    shifts = jnp.asarray(atomic_energies, atomic.dtype)[index]
    atomic = jnp.where(known, scale * atomic + shifts, 0.0)
    n_graph = graph.n_node.shape[0]
    energy = jax.ops.segment_sum(atomic, graph.node_graph, num_segments=n_graph)
    return jnp.where(jnp.asarray(graph.graph_mask), energy, 0.0)
