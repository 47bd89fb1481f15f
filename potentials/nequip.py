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

Conventions (pinned so that converted weights, e.g. SevenNet-0, can be matched exactly, see
``potentials.convert``): e3nn's "component" normalisation for spherical harmonics and tensor
products, e3nn-jax's default "path" gradient normalisation of linear layers and MLPs (a
``1/sqrt(fan_in)`` factor in the forward pass), gate activations SiLU (even scalars) / tanh
(odd scalars) with sigmoid (or SiLU, ``gate_act``) / tanh gates, all normalised to unit second
moment by ``e3nn_jax.normalize_function``.

Options that exist to load other NequIP-family models through configuration (one model, not
copies): ``group="SO3"`` (all features even, as SevenNet's ``is_parity=False``),
``envelope="xplor"`` (a smooth switch from ``cutoff_on`` to ``cutoff``), ``trainable_bessel``
(learned Bessel frequencies), ``gate_act="silu"`` and a per-element ``scale``.

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
from potentials.convolution import edge_convolution, edge_convolution_irreps

__all__ = [
    "NequIP",
    "NequIPConfig",
    "bessel_basis",
    "bessel_frequencies",
    "check_envelope",
    "check_species",
    "edge_geometry",
    "graph_energy",
    "polynomial_envelope",
    "species_onehot",
    "species_table",
    "xplor_envelope",
]

_SELF_CONNECTIONS = ("species", "linear", "none")
_DTYPES = ("float32", "float64")
_GROUPS = ("O3", "SO3")
_ENVELOPES = ("polynomial", "xplor")
_GATE_ACTS = {"sigmoid": jax.nn.sigmoid, "silu": jax.nn.silu}
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
        group: "O3" (rotations and reflections) or "SO3" (rotations only: every feature and
          spherical harmonic is labelled even, so all products of degrees are allowed, as in
          SevenNet's ``is_parity=False``; the energy is then not reflection invariant).
        hidden_irreps: explicit hidden irreps (e.g. ``"64x0e+32x1o+16x2e"``), overriding
          ``channels``/``l_max``/``parity`` for the features (``l_max`` still sets the spherical
          harmonics).
        n_basis: Bessel functions of the radial basis.
        trainable_bessel: learn the Bessel frequencies (initialised to ``k π / cutoff``).
        envelope: "polynomial" (NequIP's, exponent ``envelope_p``) or "xplor" (1 below
          ``cutoff_on``, then the XPLOR switching polynomial down to 0 at ``cutoff``).
        envelope_p: exponent ``p`` of the polynomial cutoff envelope (NequIP's default 6).
        cutoff_on: Å, where the XPLOR switch starts (``envelope="xplor"`` only).
        radial_hidden: hidden widths of the radial MLP.
        avg_num_neighbors: divides the summed messages; set it from data
          (:func:`potentials.fit.average_neighbors`).
        self_connection: "species" (a linear map chosen by the receiving atom's element,
          NequIP's tensor product with the one-hot species), "linear" (one linear map) or
          "none".
        readout_hidden: width of the scalar layer between the last block and the energy;
          default half the scalar channels of the last block.
        gate_act: activation of the even gate scalars, "sigmoid" (NequIP) or "silu"
          (SevenNet).
        atomic_energies: eV, per entry of ``elements``, the energy shift of an isolated atom of
          that element (fit by least squares, :func:`potentials.fit.fit_atomic_energies`);
          default zeros.
        scale: eV, multiplies the per-atom network output (e.g. the force RMS of the data); one
          number, or one per entry of ``elements``.
        dtype: "float32" or "float64": of the computation and the parameters.
    """

    elements: tuple[int, ...] = (1, 6, 7, 8)
    cutoff: float = 5.0
    n_layers: int = 3
    channels: int = 32
    l_max: int = 2
    parity: bool = True
    group: str = "O3"
    hidden_irreps: str | None = None
    n_basis: int = 8
    trainable_bessel: bool = False
    envelope: str = "polynomial"
    envelope_p: int = 6
    cutoff_on: float | None = None
    radial_hidden: tuple[int, ...] = (64, 64)
    avg_num_neighbors: float = 1.0
    self_connection: str = "species"
    readout_hidden: int | None = None
    gate_act: str = "sigmoid"
    atomic_energies: tuple[float, ...] | None = None
    scale: float | tuple[float, ...] = 1.0
    dtype: str = "float32"

    def __post_init__(self):
        normalize_species_fields(self)
        if not self.cutoff > 0 or self.n_layers < 1 or self.l_max < 0 or self.n_basis < 1:
            raise ValueError("cutoff must be > 0, n_layers >= 1, l_max >= 0 and n_basis >= 1")
        if self.self_connection not in _SELF_CONNECTIONS:
            raise ValueError(f"self_connection must be in {_SELF_CONNECTIONS}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be in {_DTYPES}, got {self.dtype!r}")
        if not self.avg_num_neighbors > 0:
            raise ValueError("avg_num_neighbors must be positive")
        if self.group not in _GROUPS:
            raise ValueError(f"group must be in {_GROUPS}, got {self.group!r}")
        if self.gate_act not in _GATE_ACTS:
            raise ValueError(f"gate_act must be in {tuple(_GATE_ACTS)}, got {self.gate_act!r}")
        check_envelope(self.envelope, self.cutoff, self.cutoff_on)
        irreps = e3nn.Irreps(self.irreps)  # raises on a malformed hidden_irreps
        if self.group == "SO3" and any(ir.p == -1 for _, ir in irreps):
            raise ValueError(f"group='SO3' needs even hidden irreps, got {self.irreps}")

    @property
    def irreps(self) -> str:
        """The hidden irreps of the interaction blocks."""
        if self.hidden_irreps is not None:
            return str(e3nn.Irreps(self.hidden_irreps))
        parities = ("e", "o") if self.parity and self.group == "O3" else None
        parts = []
        for l in range(self.l_max + 1):
            natural = "e" if l % 2 == 0 or self.group == "SO3" else "o"
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
    if isinstance(config.scale, (int, float)):
        setattr_(config, "scale", float(config.scale))
        scales = (config.scale,)
    else:
        setattr_(config, "scale", tuple(float(x) for x in config.scale))
        scales = config.scale
        if len(scales) != len(config.elements):
            raise ValueError(f"scale has {len(scales)} entries for {len(config.elements)} elements")
    if not all(x > 0 for x in scales):
        raise ValueError(f"scale must be positive, got {config.scale}")


def check_envelope(envelope: str, cutoff: float, cutoff_on: float | None) -> None:
    """ValueError unless ``envelope`` is known and, for "xplor", ``0 <= cutoff_on < cutoff``."""
    if envelope not in _ENVELOPES:
        raise ValueError(f"envelope must be in {_ENVELOPES}, got {envelope!r}")
    if envelope == "xplor" and (cutoff_on is None or not 0 <= cutoff_on < cutoff):
        raise ValueError(f"envelope='xplor' needs 0 <= cutoff_on < cutoff, got {cutoff_on}")


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


def edge_geometry(
    graph: Graph,
    cutoff: float,
    l_max: int,
    n_basis: int,
    p: int,
    dtype,
    *,
    envelope: str = "polynomial",
    cutoff_on: float | None = None,
    frequencies: jax.Array | None = None,
    group: str = "O3",
):
    """(spherical harmonics [E] IrrepsArray up to ``l_max``, radial basis [E, n_basis]) of the
    graph's edges: Bessel functions (of ``frequencies`` [n_basis] 1/Å if given) times the
    cutoff envelope, zero on padding edges. With ``group="SO3"`` the harmonics are labelled
    even (``0e+1e+2e+…``)."""
    edge_mask = jnp.asarray(graph.edge_mask)
    vectors = edge_vectors(graph).astype(dtype)
    # Padding edges have zero vectors: give them a harmless direction, zero weight below.
    vectors = jnp.where(edge_mask[:, None], vectors, jnp.array([1.0, 0.0, 0.0], dtype))
    lengths = safe_norm(vectors)
    sh = e3nn.spherical_harmonics(
        e3nn.Irreps.spherical_harmonics(l_max), vectors, normalize=True, normalization="component"
    )
    if group == "SO3":
        sh = e3nn.IrrepsArray(e3nn.Irreps.spherical_harmonics(l_max, p=1), sh.array)
    if envelope == "xplor":
        env = xplor_envelope(lengths, cutoff_on, cutoff)
    else:
        env = polynomial_envelope(lengths, cutoff, p)
    basis = bessel_basis(lengths, n_basis, cutoff, frequencies)
    return sh, basis * (env * edge_mask)[:, None]


def bessel_basis(
    lengths: jax.Array, n: int, cutoff: float, frequencies: jax.Array | None = None
) -> jax.Array:
    """[E, n]: ``sqrt(2/c) sin(w_k r) / r`` with ``w_k = k π / c`` for k = 1..n unless
    ``frequencies`` [n] (1/Å) are given (the limit ``sqrt(2/c) w_k`` at r = 0).
    lengths: [E] Å."""
    if frequencies is None:
        frequencies = bessel_frequencies(n, cutoff, lengths.dtype)
    w = jnp.asarray(frequencies, lengths.dtype)
    r = lengths[:, None]
    safe = jnp.where(r == 0, 1.0, r)
    value = jnp.sin(w * safe) / safe
    return jnp.sqrt(2.0 / cutoff) * jnp.where(r == 0, w, value)


def bessel_frequencies(n: int, cutoff: float, dtype=jnp.float32) -> jax.Array:
    """[n] 1/Å: the Bessel frequencies ``k π / cutoff``, k = 1..n."""
    return jnp.arange(1, n + 1, dtype=dtype) * (jnp.pi / cutoff)


def xplor_envelope(lengths: jax.Array, cutoff_on: float, cutoff: float) -> jax.Array:
    """[E]: the XPLOR switch, 1 for ``r < r_on``, then
    ``(c² - r²)² (c² + 2r² - 3r_on²) / (c² - r_on²)³`` (value and slope continuous at
    ``r_on``, zero with zero slope at ``c``), 0 beyond ``c``."""
    r2 = lengths**2
    on2, c2 = cutoff_on**2, cutoff**2
    switch = (c2 - r2) ** 2 * (c2 + 2 * r2 - 3 * on2) / (c2 - on2) ** 3
    return jnp.where(lengths < cutoff_on, 1.0, jnp.where(lengths < cutoff, switch, 0.0))


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
    gate_act: str = "sigmoid"

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
        keep = [ir for _, ir in before_gate]
        weights = e3nn.flax.MultiLayerPerceptron(
            self.radial_hidden + (edge_convolution_irreps(h.irreps, sh.irreps, keep).num_irreps,),
            act=jax.nn.silu,
            output_activation=False,
            name="radial",
        )(radial)
        summed = edge_convolution(h, sh, weights, senders, receivers, keep)
        summed = summed / self.avg_num_neighbors
        out = e3nn.flax.Linear(before_gate, name="linear_down", force_irreps_out=True)(summed)
        if sc is not None:
            out = out + sc
        return e3nn.gate(
            out,
            even_act=jax.nn.silu,
            odd_act=jnp.tanh,
            even_gate_act=_GATE_ACTS[self.gate_act],
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
        frequencies = None
        if cfg.trainable_bessel:
            frequencies = self.param(
                "bessel_frequencies",
                lambda _: bessel_frequencies(cfg.n_basis, cfg.cutoff, dtype),
            )
        sh, radial = edge_geometry(
            graph,
            cfg.cutoff,
            cfg.l_max,
            cfg.n_basis,
            cfg.envelope_p,
            dtype,
            envelope=cfg.envelope,
            cutoff_on=cfg.cutoff_on,
            frequencies=frequencies,
            group=cfg.group,
        )

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
                gate_act=cfg.gate_act,
                name=f"layer_{layer}",
            )(h, index, sh, radial, graph.senders, graph.receivers)

        scalars = h.filter(keep="0e")
        hidden = cfg.readout_hidden or max(scalars.irreps.num_irreps // 2, 1)
        x = e3nn.flax.Linear(f"{hidden}x0e", name="readout_hidden")(scalars)
        atomic = e3nn.flax.Linear("0e", name="readout")(x).array[:, 0]

        return graph_energy(graph, atomic, index, known, cfg.atomic_energies, cfg.scale)


def graph_energy(graph: Graph, atomic, index, known, atomic_energies, scale) -> jax.Array:
    """[G] eV: ``Σ_atoms scale · atomic + atomic_energies[species]`` per graph, 0 on padding;
    ``scale`` is one number or one per element (indexed like ``atomic_energies``)."""
    shifts = jnp.asarray(atomic_energies, atomic.dtype)[index]
    scales = jnp.asarray(scale, atomic.dtype)
    if scales.ndim:
        scales = scales[index]
    atomic = jnp.where(known, scales * atomic + shifts, 0.0)
    n_graph = graph.n_node.shape[0]
    energy = jax.ops.segment_sum(atomic, graph.node_graph, num_segments=n_graph)
    return jnp.where(jnp.asarray(graph.graph_mask), energy, 0.0)
