"""CGCNN: a crystal graph convolutional network for per-crystal properties.

After Xie & Grossman, "Crystal Graph Convolutional Neural Networks for an Accurate and
Interpretable Prediction of Material Properties", Phys. Rev. Lett. 120, 145301 (2018), as used
by MOFTransformer's graph branch: atoms embedded by element, edges to the (up to) 12 nearest
neighbours within 8 Å expanded in Gaussians of the distance, gated convolutions, pooling over
atoms and an MLP head.

    config = CGCNNConfig(targets=("LCD", "Has_OMS"), kinds=("regression", "classification"))
    loader = graph_loader(train_set, config, batch_nodes=4096)   # k-nearest graphs, padded
    params = config.build().init(key, next(iter(loader(0))).graph)
    result = jmof.train.fit(loss_fn(config), params, loader, optimizer=optax.adam(1e-3), ...)
    values = predict(config, result.best_params, graph)          # [G, T], original units

Design choices:

- **Message direction.** jmof's edge ``e`` goes from ``senders[e] = i`` to ``receivers[e] = j``
  (vector ``r_j - r_i + S C``). Messages flow along the edge, sender to receiver, and are summed
  on the receiver (``segment_sum`` over ``receivers``), as in jraph. Because the radius graph is
  full (every edge comes with its reverse) this is CGCNN's "sum over the neighbours j of i";
  after :func:`nearest_neighbors` it is the sum over the k nearest neighbours *of the receiver*.
- **Neighbour truncation** is a host-side graph transform (:func:`nearest_neighbors`), applied
  once per structure by :func:`graph_loader`, not a mask inside the model: a mask would keep all
  ~100-200 edges per atom of an 8 Å MOF graph in every convolution, the transform keeps ~12, so
  batches hold ~10x fewer edges. Ties at the k-th distance are all kept (see
  :func:`nearest_neighbors`), which makes the graph, and the prediction, independent of atom order,
  orientation and choice of cell. The model consumes whatever graph it is given: build graphs
  with :func:`crystal_graph` or :func:`graph_loader` so that they match training.
- **Normalisation.** CGCNN uses batch norm; here it is layer norm (over features, per edge and per
  atom). Batch statistics over a padded batch would mix in padding rows unless masked, would make a
  crystal's prediction depend on the other crystals in its batch and on train/eval mode, and would
  add mutable state that neither ``jmof.train.fit``'s ``loss_fn(params, batch, key)`` contract nor a
  ``vmap`` over ensemble members carries. Layer norm normalises each row on its own, so padding
  cannot leak into real rows and a crystal predicts the same alone or in any padded batch.
- **Geometry in JAX.** Distances come from :func:`jmof.graph.edge_lengths` inside the model, so
  gradients with respect to positions and cell exist (e.g. for property-guided generation).
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jmof.data.batching import GraphLoader
from jmof.graph import Graph, batch, edge_lengths, host_edge_lengths, radius_graph, unbatch
from jmof.structure import Crystal
from predictors.standardize import KINDS, destandardize, fit_standardization, masked_loss

__all__ = [
    "CGCNN",
    "CGCNNConfig",
    "crystal_graph",
    "destandardize_outputs",
    "fit_standardization",
    "gaussian_basis",
    "graph_loader",
    "loss_fn",
    "nearest_neighbors",
    "predict",
    "standardized_config",
]

_POOLINGS = ("mean", "sum")
_DTYPES = ("float32", "float64", "bfloat16")


@dataclasses.dataclass(frozen=True)
class CGCNNConfig:
    """Everything that defines a CGCNN model, stored in its checkpoints.

    Attributes:
        cutoff: Å, radius of the neighbour search.
        max_neighbors: keep the k nearest neighbours of each atom (ties kept), None for all
          within ``cutoff``.
        n_gaussians: Gaussians in the distance expansion, centres evenly spaced on [0, cutoff].
        gaussian_width: Å, width σ of each Gaussian ``exp(-((d - μ)/σ)²)``; None: the spacing
          of the centres (CGCNN's choice).
        n_species: size of the element embedding table (atomic numbers 0 … n_species - 1).
        features: width of the atom features.
        n_conv: number of gated convolutions.
        hidden: widths of the hidden layers of the head (after pooling).
        pooling: "mean" (intensive targets) or "sum" (extensive).
        targets: names of the predicted targets (columns of the output).
        kinds: "regression" or "classification" per target; default: all regression.
        mean, std: per target, the standardisation of the regression targets (classification
          entries are 0 and 1); default 0 and 1. See :func:`fit_standardization`.
        cell_features: append ln(density / g cm⁻³) and ln(volume per atom / Å³), computed in
          JAX from the cell and the species, to the pooled atom features before the head. A
          12-nearest-neighbour graph sees bonds, not pores; these two numbers tell the head how
          much empty space the framework encloses (MEGNet calls such inputs state attributes).
          Both are intensive, so supercell invariance holds.
        dtype: "float32", "float64" or "bfloat16": params and computation.
    """

    cutoff: float = 8.0
    max_neighbors: int | None = 12
    n_gaussians: int = 40
    gaussian_width: float | None = None
    n_species: int = 119
    features: int = 64
    n_conv: int = 3
    hidden: tuple[int, ...] = (128,)
    pooling: str = "mean"
    targets: tuple[str, ...] = ("LCD",)
    kinds: tuple[str, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    cell_features: bool = True
    dtype: str = "float32"

    def __post_init__(self):
        n = len(self.targets)
        setattr_ = object.__setattr__  # normalise sequences so that configs compare and hash
        setattr_(self, "targets", tuple(str(t) for t in self.targets))
        setattr_(self, "hidden", tuple(int(h) for h in self.hidden))
        kinds = ("regression",) * n if self.kinds is None else tuple(self.kinds)
        mean = (0.0,) * n if self.mean is None else tuple(float(m) for m in self.mean)
        std = (1.0,) * n if self.std is None else tuple(float(s) for s in self.std)
        setattr_(self, "kinds", kinds)
        setattr_(self, "mean", mean)
        setattr_(self, "std", std)
        if n == 0:
            raise ValueError("CGCNNConfig needs at least one target")
        for name, value in [("kinds", kinds), ("mean", mean), ("std", std)]:
            if len(value) != n:
                raise ValueError(f"{name} has {len(value)} entries for {n} targets {self.targets}")
        bad = [k for k in kinds if k not in KINDS]
        if bad:
            raise ValueError(f"kinds must be in {KINDS}, got {bad}")
        if not all(np.isfinite(mean)) or not all(np.isfinite(s) and s > 0 for s in std):
            raise ValueError(f"mean must be finite and std positive, got {mean} and {std}")
        if self.pooling not in _POOLINGS:
            raise ValueError(f"pooling must be in {_POOLINGS}, got {self.pooling!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be in {_DTYPES}, got {self.dtype!r}")
        if not self.cutoff > 0:
            raise ValueError(f"cutoff must be positive, got {self.cutoff}")
        if self.max_neighbors is not None and self.max_neighbors < 1:
            raise ValueError(f"max_neighbors must be None or >= 1, got {self.max_neighbors}")
        if self.n_gaussians < 2:
            raise ValueError(f"n_gaussians must be >= 2, got {self.n_gaussians}")

    def build(self) -> CGCNN:
        """The linen module: ``build().init(key, graph)``, ``build().apply(params, graph)``."""
        return CGCNN(self)


# --- graphs (host) ---------------------------------------------------------------------------


def nearest_neighbors(graph: Graph, k: int, *, tolerance: float = 1e-4) -> Graph:
    """Keep the edges from the ``k`` nearest neighbours of every atom (host side, NumPy).

    For each receiver, let ``d_k`` be the k-th smallest length of its incoming edges; the edges
    with length ``<= d_k + tolerance`` are kept (all of them when there are at most k). Instead of
    breaking ties by an index, every neighbour tied with the k-th within ``tolerance`` is kept:
    symmetric MOFs are full of equal distances, and any index-based choice among them would
    depend on atom order, orientation or cell choice (through rounding noise) and change the
    prediction. An atom can therefore keep more than ``k`` edges; the result is a deterministic
    function of the geometry. Kept edges stay in their original order; the reverse of a kept edge
    may be dropped (k-nearest is not symmetric).

    Args:
        graph: a host graph (unpadded, e.g. from ``radius_graph``, or a padded batch, which
          keeps its capacities).
        k: neighbours per atom, >= 1.
        tolerance: Å, distances within this of the k-th count as ties.

    Returns:
        A :class:`Graph` with the same nodes and a subset of the edges.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    graph_mask = np.asarray(graph.graph_mask)
    if not graph_mask.all():  # padded: truncate the real graphs, re-pad to the same capacities
        n_node, n_edge, n_graph = graph.shape
        parts = [nearest_neighbors(g, k, tolerance=tolerance) for g in unbatch(graph)]
        return batch(parts, n_node=n_node, n_edge=n_edge, n_graph=n_graph)
    receivers = np.asarray(graph.receivers)
    lengths = host_edge_lengths(graph)
    n_nodes = len(np.asarray(graph.species))
    order = np.lexsort((lengths, receivers))  # by receiver, then length
    counts = np.bincount(receivers, minlength=n_nodes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    threshold = np.full(n_nodes, np.inf)
    full = counts > k
    threshold[full] = lengths[order[starts[full] + k - 1]] + tolerance
    keep = lengths <= threshold[receivers]
    node_graph = np.asarray(graph.node_graph)
    kept_receivers = receivers[keep]
    n_graph = len(graph_mask)
    return dataclasses.replace(
        graph,
        senders=np.asarray(graph.senders)[keep],
        receivers=kept_receivers,
        shifts=np.asarray(graph.shifts)[keep],
        n_edge=np.bincount(node_graph[kept_receivers], minlength=n_graph).astype(np.int32),
        edge_mask=np.asarray(graph.edge_mask)[keep],
    )


def crystal_graph(crystal: Crystal, config: CGCNNConfig) -> Graph:
    """The unpadded graph of one crystal as the model expects it: the radius graph at
    ``config.cutoff``, truncated to ``config.max_neighbors`` nearest neighbours."""
    graph = radius_graph(crystal, config.cutoff)
    if config.max_neighbors is not None:
        graph = nearest_neighbors(graph, config.max_neighbors)
    return graph


def graph_loader(dataset, config: CGCNNConfig, **kwargs) -> GraphLoader:
    """A loader of ``dataset`` with the config's cutoff, neighbour truncation and targets;
    ``kwargs`` go to :class:`jmof.data.GraphLoader` (``batch_nodes``, ``shuffle``, ``seed``…).
    Truncated graphs (k edges per atom) are small, so they are kept in memory."""
    kwargs.setdefault("targets", config.targets)
    graph_fn = None
    if config.max_neighbors is not None:
        graph_fn = functools.partial(nearest_neighbors, k=config.max_neighbors)
        kwargs.setdefault("keep_graphs", True)
    return GraphLoader(dataset, cutoff=config.cutoff, graph_fn=graph_fn, **kwargs)


# --- model (device) --------------------------------------------------------------------------


def gaussian_basis(lengths: jax.Array, config: CGCNNConfig) -> jax.Array:
    """[E, n_gaussians], ``exp(-((d - μ_k) / σ)²)`` with centres ``μ_k`` evenly on [0, cutoff].

    lengths: [E] Å.
    """
    centers = jnp.linspace(0.0, config.cutoff, config.n_gaussians, dtype=lengths.dtype)
    width = config.gaussian_width or config.cutoff / (config.n_gaussians - 1)
    return jnp.exp(-(((lengths[:, None] - centers) / width) ** 2))


class _GatedConv(nn.Module):
    """One CGCNN convolution.

    .. math::
        z_{ij} = v_j \\oplus v_i \\oplus e_{ij},\\qquad
        (f_{ij}, s_{ij}) = \\operatorname{LN}(z_{ij} W + b),\\\\
        v_j \\leftarrow \\operatorname{softplus}\\Big(v_j + \\operatorname{LN}\\Big(
        \\sum_{i \\to j} \\sigma(f_{ij}) \\odot \\operatorname{softplus}(s_{ij})\\Big)\\Big)

    for edges ``i -> j`` (sender i, receiver j). ``z W`` is computed as ``v_j W_r + v_i W_s +
    e W_e``: the atom terms once per atom rather than once per edge.
    """

    features: int
    dtype: jnp.dtype

    @nn.compact
    def __call__(self, nodes, edges, senders, receivers, edge_mask):
        dense = dict(dtype=self.dtype, param_dtype=self.dtype)
        width = 2 * self.features
        own = nn.Dense(width, use_bias=False, name="receiver", **dense)(nodes)
        other = nn.Dense(width, use_bias=False, name="sender", **dense)(nodes)
        z = own[receivers] + other[senders] + nn.Dense(width, name="edge", **dense)(edges)
        z = nn.LayerNorm(name="edge_norm", **dense)(z)
        gate, core = jnp.split(z, 2, axis=-1)
        messages = nn.sigmoid(gate) * nn.softplus(core)
        messages = jnp.where(edge_mask[:, None], messages, 0.0)
        summed = jax.ops.segment_sum(messages, receivers, num_segments=nodes.shape[0])
        summed = nn.LayerNorm(name="node_norm", **dense)(summed)
        return nn.softplus(nodes + summed)


_AMU_PER_A3_TO_G_PER_CM3 = 1.66053906660


def cell_descriptors(graph: Graph) -> jax.Array:
    """[G, 2]: ln(density / g cm⁻³) and ln(volume per atom / Å³) of each graph (0 on padding).

    Differentiable with respect to the cell; masses are standard atomic weights.
    """
    from ase.data import atomic_masses

    n_graph = graph.n_node.shape[0]
    real = jnp.asarray(graph.graph_mask)
    node_mask = jnp.asarray(graph.node_mask)
    dtype = jnp.asarray(graph.cell).dtype
    volume = jnp.abs(jnp.linalg.det(jnp.asarray(graph.cell)))
    masses = jnp.asarray(atomic_masses, dtype)[graph.species] * node_mask
    mass = jax.ops.segment_sum(masses, graph.node_graph, n_graph)
    count = jax.ops.segment_sum(node_mask.astype(dtype), graph.node_graph, n_graph)
    density = jnp.where(real, mass / volume * _AMU_PER_A3_TO_G_PER_CM3, 1.0)
    per_atom = jnp.where(real, volume / jnp.maximum(count, 1.0), 1.0)
    return jnp.where(real[:, None], jnp.log(jnp.stack([density, per_atom], axis=-1)), 0.0)


class CGCNN(nn.Module):
    """``apply(params, graph) -> [G, T]`` in model units (standardised values or logits).

    graph: a padded :class:`jmof.graph.Graph` (see :func:`crystal_graph`); rows of padding graphs
    are 0.
    """

    config: CGCNNConfig

    @nn.compact
    def __call__(self, graph: Graph) -> jax.Array:
        cfg = self.config
        dtype = jnp.dtype(cfg.dtype)
        dense = dict(dtype=dtype, param_dtype=dtype)
        node_mask = jnp.asarray(graph.node_mask)
        edge_mask = jnp.asarray(graph.edge_mask)
        n_graph = graph.n_node.shape[0]

        lengths = edge_lengths(graph).astype(dtype)
        edges = gaussian_basis(lengths, cfg)
        nodes = nn.Embed(cfg.n_species, cfg.features, name="embed", **dense)(graph.species)
        for layer in range(cfg.n_conv):
            nodes = _GatedConv(cfg.features, dtype, name=f"conv_{layer}")(
                nodes, edges, graph.senders, graph.receivers, edge_mask
            )

        nodes = jnp.where(node_mask[:, None], nodes, 0.0)
        pooled = jax.ops.segment_sum(nodes, graph.node_graph, num_segments=n_graph)
        if cfg.pooling == "mean":
            count = jax.ops.segment_sum(node_mask.astype(dtype), graph.node_graph, n_graph)
            pooled = pooled / jnp.maximum(count, 1)[:, None]
        x = pooled
        if cfg.cell_features:
            x = jnp.concatenate([x, cell_descriptors(graph).astype(dtype)], axis=-1)
        for k, width in enumerate(cfg.hidden):
            x = nn.softplus(nn.Dense(width, name=f"hidden_{k}", **dense)(nn.softplus(x)))
        out = nn.Dense(len(cfg.targets), name="out", **dense)(x)
        return jnp.where(jnp.asarray(graph.graph_mask)[:, None], out, 0.0)


# --- targets, loss, prediction ---------------------------------------------------------------


def destandardize_outputs(config: CGCNNConfig, outputs: jax.Array) -> jax.Array:
    """[..., T] model units -> original units (probabilities for classification targets)."""
    return destandardize(outputs, config.mean, config.std, config.kinds)


def predict(config: CGCNNConfig, params, graph: Graph) -> jax.Array:
    """[G, T] predictions in original units (probability of class 1 for classification)."""
    return destandardize_outputs(config, config.build().apply(params, graph))


def loss_fn(config: CGCNNConfig, *, huber_delta: float | None = None):
    """``loss_fn(params, batch, key) -> (loss, metrics)`` for :func:`jmof.train.fit`.

    The loss is :func:`predictors.standardize.masked_loss`: squared error (Huber with
    ``huber_delta``) on standardised regression targets and binary cross-entropy on
    classification logits, averaged over the present (graph, target) entries of the batch.
    ``batch`` is a :class:`jmof.data.Batch` whose target columns are ``config.targets``; ``key``
    is unused (the model is deterministic).
    """
    model = config.build()

    def loss(params, batch, key):
        del key
        outputs = model.apply(params, batch.graph)
        mask = jnp.asarray(batch.target_mask) & jnp.asarray(batch.graph.graph_mask)[:, None]
        return masked_loss(
            outputs,
            batch.targets,
            mask,
            mean=config.mean,
            std=config.std,
            kinds=config.kinds,
            names=config.targets,
            huber_delta=huber_delta,
        )

    return loss


def standardized_config(
    config: CGCNNConfig, targets: np.ndarray, mask: np.ndarray | None = None
) -> CGCNNConfig:
    """``config`` with ``mean`` and ``std`` fitted on ``targets`` [n, T] (the training split,
    columns in ``config.targets`` order) by :func:`fit_standardization`."""
    mean, std = fit_standardization(targets, mask, config.kinds)
    return dataclasses.replace(config, mean=tuple(mean), std=tuple(std))
