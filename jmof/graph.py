"""Periodic radius graphs: neighbour search on the host, edge geometry inside JAX.

The neighbour search (which atoms are within the cutoff, through which periodic image) is
discrete and runs in NumPy through `vesin <https://github.com/Luthaf/vesin>`_, a compiled
cell-list search that is exact for every cell shape, including triclinic cells and cells
thinner than twice the cutoff (several images of one neighbour, an atom's own images).
Only integer image shifts cross into JAX; edge vectors are recomputed from positions, cell and
shifts by :func:`edge_vectors`, so derivatives with respect to positions and cell are exact.

Edge convention (the same as ASE's ``neighbor_list("ijS")``): edge ``e`` joins
``senders[e] = i`` to ``receivers[e] = j`` through image ``shifts[e] = S`` and its vector is

.. math:: \\mathbf{d}_e = \\mathbf{r}_j - \\mathbf{r}_i + S\\,\\mathbf{C}

with ``C`` the cell of the crystal that holds the edge (rows are lattice vectors). The list is
full: every edge ``(i, j, S)`` comes with its reverse ``(j, i, -S)``.

Padding follows the jraph convention: a padded batch always ends with at least one padding
graph that owns every padding node; padding edges join the last padding node to itself with a
zero shift (so their vectors are exactly zero: use :func:`safe_norm`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jmof.structure import Crystal


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Graph:
    """A batch of periodic graphs as padded arrays (a single crystal is a batch of one).

    Attributes:
        species: [N] int32, atomic numbers (0 on padding nodes).
        positions: [N, 3] Å, Cartesian positions.
        cell: [G, 3, 3] Å, rows are lattice vectors (identity on padding graphs).
        senders: [E] int32, index ``i`` of each edge.
        receivers: [E] int32, index ``j`` of each edge.
        shifts: [E, 3] int32, image offsets ``S`` in units of the lattice vectors.
        node_graph: [N] int32, graph index of each node.
        n_node: [G] int32, nodes per graph.
        n_edge: [G] int32, edges per graph.
        node_mask: [N] bool, True on real nodes.
        edge_mask: [E] bool, True on real edges.
        graph_mask: [G] bool, True on real graphs.
    """

    species: jax.Array
    positions: jax.Array
    cell: jax.Array
    senders: jax.Array
    receivers: jax.Array
    shifts: jax.Array
    node_graph: jax.Array
    n_node: jax.Array
    n_edge: jax.Array
    node_mask: jax.Array
    edge_mask: jax.Array
    graph_mask: jax.Array

    @property
    def shape(self) -> tuple[int, int, int]:
        """Static capacities ``(N, E, G)``: what fixes the compiled shape."""
        return (
            int(self.species.shape[0]),
            int(self.senders.shape[0]),
            int(self.n_node.shape[0]),
        )


# --- neighbour search (host) -----------------------------------------------------------------


def neighbor_list(
    positions: np.ndarray, cell: np.ndarray, pbc: Sequence[bool], cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full neighbour list within ``cutoff`` (host side, NumPy).

    Args:
        positions: [n, 3] Å, Cartesian (need not be wrapped into the cell).
        cell: [3, 3] Å, rows are lattice vectors; ignored along non-periodic directions.
        pbc: (3,) bool, periodicity along each lattice vector.
        cutoff: Å, pairs with distance < cutoff are kept.

    Returns:
        ``(i, j, S)``: [E] int32, [E] int32 and [E, 3] int32 in vesin's (deterministic) order;
        ``positions[j] - positions[i] + S @ cell`` is the pair vector. An atom's own periodic
        images are included (``i == j``, ``S != 0``), the atom itself is not.
    """
    import vesin

    if not cutoff > 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    cell = np.ascontiguousarray(cell, dtype=np.float64)
    pbc = [bool(p) for p in pbc]
    if len(positions) == 0:
        empty = np.zeros(0, np.int32)
        return empty, empty, np.zeros((0, 3), np.int32)
    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, S = nl.compute(positions, cell, pbc, quantities="ijS")
    return i.astype(np.int32), j.astype(np.int32), S.astype(np.int32)


def radius_graph(crystal: Crystal, cutoff: float) -> Graph:
    """The periodic radius graph of one crystal, unpadded (``G = 1``).

    Args:
        crystal: the structure; its ``pbc`` decides which directions are periodic.
        cutoff: Å, neighbour cutoff (strict: distance < cutoff).
    """
    positions = np.asarray(crystal.positions, dtype=np.float64)
    i, j, S = neighbor_list(positions, crystal.cell, crystal.pbc, cutoff)
    n = len(positions)
    return Graph(
        species=np.asarray(crystal.species, dtype=np.int32),
        positions=positions,
        cell=np.asarray(crystal.cell, dtype=np.float64)[None],
        senders=i,
        receivers=j,
        shifts=S,
        node_graph=np.zeros(n, np.int32),
        n_node=np.array([n], np.int32),
        n_edge=np.array([len(i)], np.int32),
        node_mask=np.ones(n, bool),
        edge_mask=np.ones(len(i), bool),
        graph_mask=np.ones(1, bool),
    )


# --- padding and batching (host) -------------------------------------------------------------

_LADDER_STEPS_PER_OCTAVE = 4  # bucket ratio 2**(1/4) ≈ 1.19: at most 19 % padding per axis


def bucket_size(n: int, *, minimum: int = 8) -> int:
    """Smallest bucket ≥ ``n`` on a geometric ladder (ratio 2**(1/4)) of multiples of 8.

    A handful of bucket sizes covers many orders of magnitude, so ``jit`` compiles a few shapes
    while padding stays below 19 % per axis.
    """
    n = max(int(n), minimum)
    k = math.ceil(_LADDER_STEPS_PER_OCTAVE * math.log2(n / minimum) - 1e-9)
    while True:
        size = 8 * math.ceil(minimum * 2 ** (k / _LADDER_STEPS_PER_OCTAVE) / 8)
        if size >= n:
            return size
        k += 1


def batch(
    graphs: Sequence[Graph],
    *,
    n_node: int | None = None,
    n_edge: int | None = None,
    n_graph: int | None = None,
) -> Graph:
    """Concatenate unpadded graphs into one padded batch.

    Args:
        graphs: single-crystal graphs from :func:`radius_graph` (or unpadded batches).
        n_node: node capacity N; default: the bucket of (real nodes + 1).
        n_edge: edge capacity E; default: the bucket of the real edges.
        n_graph: graph capacity G; default: real graphs + 1.

    Returns:
        A :class:`Graph` with capacities ``(N, E, G)`` that ends with a padding graph.

    Raises:
        ValueError: if a capacity is too small (N must exceed the real nodes, G the real graphs).
    """
    graphs = [_unpad(g) for g in graphs]
    nodes = sum(int(g.n_node.sum()) for g in graphs)
    edges = sum(int(g.n_edge.sum()) for g in graphs)
    count = sum(len(g.n_node) for g in graphs)
    N = bucket_size(nodes + 1) if n_node is None else int(n_node)
    E = bucket_size(edges) if n_edge is None else int(n_edge)
    G = count + 1 if n_graph is None else int(n_graph)
    if N < nodes + 1 or E < edges or G < count + 1:
        raise ValueError(
            f"capacity (n_node={N}, n_edge={E}, n_graph={G}) too small for {nodes} nodes, "
            f"{edges} edges and {count} graphs: padding needs one spare node and one spare graph"
        )
    dtype = graphs[0].positions.dtype if graphs else np.float64

    species = np.zeros(N, np.int32)
    positions = np.zeros((N, 3), dtype)
    cell = np.tile(np.eye(3, dtype=dtype), (G, 1, 1))
    senders = np.full(E, N - 1, np.int32)
    receivers = np.full(E, N - 1, np.int32)
    shifts = np.zeros((E, 3), np.int32)
    node_graph = np.full(N, G - 1, np.int32)
    n_node_arr = np.zeros(G, np.int32)
    n_edge_arr = np.zeros(G, np.int32)

    node_offset = edge_offset = graph_offset = 0
    for g in graphs:
        n, e, k = len(g.species), len(g.senders), len(g.n_node)
        species[node_offset : node_offset + n] = g.species
        positions[node_offset : node_offset + n] = g.positions
        cell[graph_offset : graph_offset + k] = g.cell
        senders[edge_offset : edge_offset + e] = g.senders + node_offset
        receivers[edge_offset : edge_offset + e] = g.receivers + node_offset
        shifts[edge_offset : edge_offset + e] = g.shifts
        node_graph[node_offset : node_offset + n] = g.node_graph + graph_offset
        n_node_arr[graph_offset : graph_offset + k] = g.n_node
        n_edge_arr[graph_offset : graph_offset + k] = g.n_edge
        node_offset, edge_offset, graph_offset = node_offset + n, edge_offset + e, graph_offset + k
    n_node_arr[G - 1] = N - node_offset
    n_edge_arr[G - 1] = E - edge_offset

    return Graph(
        species=species,
        positions=positions,
        cell=cell,
        senders=senders,
        receivers=receivers,
        shifts=shifts,
        node_graph=node_graph,
        n_node=n_node_arr,
        n_edge=n_edge_arr,
        node_mask=np.arange(N) < node_offset,
        edge_mask=np.arange(E) < edge_offset,
        graph_mask=np.arange(G) < graph_offset,
    )


def _unpad(graph: Graph) -> Graph:
    """The real part of a (possibly padded) host-side graph."""
    graph_mask = np.asarray(graph.graph_mask)
    if graph_mask.all():
        return graph
    node_mask, edge_mask = np.asarray(graph.node_mask), np.asarray(graph.edge_mask)
    n_real = int(node_mask.sum())
    if not (node_mask[:n_real].all() and edge_mask[: int(edge_mask.sum())].all()):
        raise ValueError("padding must follow the real nodes and edges")
    return Graph(
        species=np.asarray(graph.species)[node_mask],
        positions=np.asarray(graph.positions)[node_mask],
        cell=np.asarray(graph.cell)[graph_mask],
        senders=np.asarray(graph.senders)[edge_mask],
        receivers=np.asarray(graph.receivers)[edge_mask],
        shifts=np.asarray(graph.shifts)[edge_mask],
        node_graph=np.asarray(graph.node_graph)[node_mask],
        n_node=np.asarray(graph.n_node)[graph_mask],
        n_edge=np.asarray(graph.n_edge)[graph_mask],
        node_mask=node_mask[node_mask],
        edge_mask=edge_mask[edge_mask],
        graph_mask=graph_mask[graph_mask],
    )


def unbatch(graph: Graph) -> list[Graph]:
    """Split a (padded) batch into single-crystal unpadded graphs (host side)."""
    graph = _unpad(graph)
    out = []
    node_start = edge_start = 0
    for g, (n, e) in enumerate(zip(np.asarray(graph.n_node), np.asarray(graph.n_edge))):
        nodes, edges = slice(node_start, node_start + n), slice(edge_start, edge_start + e)
        out.append(
            Graph(
                species=np.asarray(graph.species)[nodes],
                positions=np.asarray(graph.positions)[nodes],
                cell=np.asarray(graph.cell)[g : g + 1],
                senders=np.asarray(graph.senders)[edges] - node_start,
                receivers=np.asarray(graph.receivers)[edges] - node_start,
                shifts=np.asarray(graph.shifts)[edges],
                node_graph=np.zeros(n, np.int32),
                n_node=np.array([n], np.int32),
                n_edge=np.array([e], np.int32),
                node_mask=np.ones(n, bool),
                edge_mask=np.ones(e, bool),
                graph_mask=np.ones(1, bool),
            )
        )
        node_start, edge_start = node_start + n, edge_start + e
    return out


def host_edge_lengths(graph: Graph) -> np.ndarray:
    """[E] Å, edge lengths in float64 NumPy on the host (the formula of :func:`edge_vectors`);
    for host-side work such as statistics or neighbour truncation, not for gradients."""
    positions = np.asarray(graph.positions, np.float64)
    senders, receivers = np.asarray(graph.senders), np.asarray(graph.receivers)
    cell = np.asarray(graph.cell, np.float64)[np.asarray(graph.node_graph)[senders]]
    offsets = np.einsum("ei,eij->ej", np.asarray(graph.shifts, np.float64), cell)
    return np.linalg.norm(positions[receivers] - positions[senders] + offsets, axis=-1)


# --- geometry (device, differentiable) -------------------------------------------------------


def edge_vectors(graph: Graph) -> jax.Array:
    """[E, 3] Å, ``positions[receivers] - positions[senders] + shifts @ cell``.

    Differentiable with respect to ``graph.positions`` and ``graph.cell``; zero on padding
    edges.
    """
    positions = jnp.asarray(graph.positions)
    cell = jnp.asarray(graph.cell)[graph.node_graph[graph.senders]]  # [E, 3, 3]
    offsets = jnp.einsum("ei,eij->ej", jnp.asarray(graph.shifts, positions.dtype), cell)
    return positions[graph.receivers] - positions[graph.senders] + offsets


def safe_norm(x: jax.Array, axis: int = -1, keepdims: bool = False) -> jax.Array:
    """Euclidean norm whose gradient is zero (not NaN) at ``x = 0`` (padding edges)."""
    sq = jnp.sum(x * x, axis=axis, keepdims=keepdims)
    nonzero = sq > 0
    return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, sq, 1.0)), 0.0)


def edge_lengths(graph: Graph) -> jax.Array:
    """[E] Å, lengths of :func:`edge_vectors` (0 on padding edges, gradient-safe)."""
    return safe_norm(edge_vectors(graph))


def to_device(graph: Graph, dtype=None) -> Graph:
    """Move a host graph to the default device, casting positions and cell to ``dtype``
    (default: JAX's default float, float32 unless x64 is enabled)."""
    dtype = dtype or jnp.zeros(()).dtype
    arrays = {f.name: jnp.asarray(getattr(graph, f.name)) for f in dataclasses.fields(graph)}
    arrays["positions"] = arrays["positions"].astype(dtype)
    arrays["cell"] = arrays["cell"].astype(dtype)
    return Graph(**arrays)
