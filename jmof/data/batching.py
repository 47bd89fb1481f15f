"""Iteration of a dataset into padded graph batches of a few fixed shapes.

Structures are packed into batches by a node budget and an edge budget rather than by a fixed
number of structures, so that almost every batch of an epoch has the same capacities
``(n_node, n_edge, n_graph)`` and ``jit`` compiles once. A structure larger than the budget gets
a batch of its own whose capacities are the common ones times a power of two, so that even the
largest structures add only a few compiled shapes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence

import jax
import numpy as np

from jmof.data.dataset import Dataset
from jmof.graph import Graph, batch, bucket_size, radius_graph


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Batch:
    """A padded graph batch with its targets.

    Attributes:
        graph: the padded :class:`~jmof.graph.Graph` (G graphs, the last ones padding).
        targets: [G, T] float, target values (0 where missing or padding).
        target_mask: [G, T] bool, True where a target value exists on a real graph.
        index: [G] int, position of each graph's structure in the dataset (-1 on padding).
        node_targets: per-atom target name -> [N, ...] float, rows aligned with the graph's
          nodes (0 on padding nodes and where missing).
        node_target_mask: name -> [N] bool, True on real nodes whose row is present.
    """

    graph: Graph
    targets: np.ndarray
    target_mask: np.ndarray
    index: np.ndarray
    node_targets: dict = dataclasses.field(default_factory=dict)
    node_target_mask: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Capacity:
    """Static capacities of a batch: nodes, edges and graphs (padding included)."""

    n_node: int
    n_edge: int
    n_graph: int


def pack(
    n_node: np.ndarray,
    n_edge: np.ndarray,
    capacity: Capacity,
    *,
    n_open: int = 8,
) -> list[list[int]]:
    """Pack structures (in the given order) into batches that fit ``capacity``.

    First fit over a window of ``n_open`` open batches: each structure goes into the first open
    batch with room for its nodes and edges (one node and one graph are kept free for padding);
    when none has room, the fullest open batch is closed. A structure that alone exceeds the
    capacity gets a batch of its own.

    Args:
        n_node: [n] nodes per structure.
        n_edge: [n] edges per structure.
        capacity: the batch capacities.
        n_open: batches kept open at once (more: tighter packing, less locality of order).

    Returns:
        Batches as lists of structure positions, in the order they close.
    """
    node_room, edge_room, graph_room = capacity.n_node - 1, capacity.n_edge, capacity.n_graph - 1
    closed: list[list[int]] = []
    open_bins: list[tuple[list[int], int, int]] = []  # (members, nodes, edges)
    for k, (n, e) in enumerate(zip(np.asarray(n_node).tolist(), np.asarray(n_edge).tolist())):
        if n > node_room or e > edge_room:
            closed.append([k])
            continue
        for b, (members, nodes, edges) in enumerate(open_bins):
            if nodes + n <= node_room and edges + e <= edge_room and len(members) < graph_room:
                members.append(k)
                open_bins[b] = (members, nodes + n, edges + e)
                break
        else:
            if len(open_bins) == n_open:
                fullest = max(
                    range(n_open),
                    key=lambda b: max(open_bins[b][1] / node_room, open_bins[b][2] / edge_room),
                )
                closed.append(open_bins.pop(fullest)[0])
            open_bins.append(([k], n, e))
    closed.extend(members for members, _, _ in open_bins)
    return closed


def capacity_for(
    n_node: np.ndarray, n_edge: np.ndarray, batch_nodes: int, n_graph: int | None = None
) -> Capacity:
    """Default capacities for a node budget: the node budget on the bucket ladder, edges in
    proportion to the data's edges per node (rounded up to a multiple of 256), graphs enough for
    a batch of the smallest structures (5th percentile)."""
    n_node, n_edge = np.asarray(n_node), np.asarray(n_edge)
    ratio = n_edge.sum() / max(n_node.sum(), 1)
    N = bucket_size(batch_nodes)
    E = max(256, 256 * int(np.ceil(ratio * (N - 1) / 256)))
    if n_graph is None:
        smallest = max(int(np.percentile(n_node, 5)) if len(n_node) else 1, 1)
        n_graph = int(np.ceil((N - 1) / smallest)) + 1
    return Capacity(N, E, int(n_graph))


def _pad_shape(capacity: Capacity, nodes: int, edges: int, tight: bool = False) -> Capacity:
    """The capacity of a batch: the common one, or for a structure bigger than the budget the
    common one times the smallest power of two that holds it (few shapes for any size). With
    ``tight``, an under-filled batch also shrinks, by powers of two down to 1/16 of the common
    capacity (less padding, a few more compiled shapes: for inference)."""
    k = 1
    while nodes + 1 > k * capacity.n_node or edges > k * capacity.n_edge:
        k *= 2
    if k == 1 and tight:
        fits = lambda f: nodes + 1 <= f * capacity.n_node and edges <= f * capacity.n_edge  # noqa: E731
        while k > 1 / 16 and fits(k / 2):
            k /= 2
    n_node, n_edge = int(k * capacity.n_node), max(256, int(k * capacity.n_edge) // 256 * 256)
    if n_edge < edges:
        n_edge += 256
    return Capacity(n_node, n_edge, capacity.n_graph)


_AUTO_KEEP_EDGES = 50_000_000  # ~1 GB of int32 senders, receivers and shifts


@dataclasses.dataclass
class GraphLoader:
    """Epoch-wise iteration of a :class:`Dataset` into padded :class:`Batch` es.

    ``loader(epoch)`` is a deterministic function of the epoch (the shuffle key is
    ``seed`` folded with ``epoch``), which is what :func:`jmof.train.fit` needs to resume
    exactly. Neighbour lists are computed once, on first use, and kept in memory unless they
    would take more than ~1 GB (``keep_graphs=None``), in which case each batch rebuilds its own.

    Args:
        dataset: the structures and targets.
        cutoff: Å, radius of the graph.
        targets: names of the targets to carry (columns of ``Batch.targets``).
        batch_nodes: node budget per batch (the edge budget follows from the data).
        shuffle: shuffle the order every epoch.
        seed: integer seed of the shuffle.
        n_open: see :func:`pack`.
        keep_graphs: keep neighbour lists in memory (None: only if under ~1 GB).
        graph_fn: a host-side transform of each structure's radius graph (e.g. keep the k
            nearest neighbours); batch capacities follow from the transformed graphs.
        progress: show a progress bar while building neighbour lists.
        node_targets: names of per-atom targets to carry (``Dataset.node_targets``, e.g.
            ``("forces",)``) into ``Batch.node_targets``.
        tight: shrink under-filled batches (see :func:`_pad_shape`); for inference, where
            padding costs time and a few more compiled shapes do not.
    """

    dataset: Dataset
    cutoff: float
    targets: Sequence[str] = ()
    batch_nodes: int = 2048
    shuffle: bool = True
    seed: int = 0
    n_open: int = 8
    keep_graphs: bool | None = None
    graph_fn: Callable[[Graph], Graph] | None = None
    progress: bool = False
    node_targets: Sequence[str] = ()
    tight: bool = False
    _counts: tuple[np.ndarray, np.ndarray] | None = dataclasses.field(default=None, repr=False)
    _graphs: list[Graph] | None = dataclasses.field(default=None, repr=False)

    def _scan(self) -> None:
        """Build every neighbour list once: counts always kept, graphs kept if they fit."""
        from jmof.progress import progress_bar

        n_node, n_edge, graphs = [], [], []
        keep, kept_edges = self.keep_graphs is not False, 0
        with progress_bar(self.progress) as bar:
            task = bar.add_task(f"neighbour lists ({self.cutoff:g} Å)", total=len(self.dataset))
            for k in range(len(self.dataset)):
                graph = self._build(k)
                n_node.append(int(graph.n_node[0]))
                n_edge.append(int(graph.n_edge[0]))
                if keep:
                    graphs.append(graph)
                    kept_edges += n_edge[-1]
                    if self.keep_graphs is None and kept_edges > _AUTO_KEEP_EDGES:
                        keep, graphs = False, []
                bar.advance(task)
        self._counts = (np.array(n_node, np.int64), np.array(n_edge, np.int64))
        self._graphs = graphs if keep else None

    def graph(self, k: int) -> Graph:
        """The unpadded graph of structure ``k`` (kept in memory, or rebuilt)."""
        if self._counts is None:
            self._scan()
        if self._graphs is not None:
            return self._graphs[k]
        return self._build(k)

    def _build(self, k: int) -> Graph:
        graph = radius_graph(self.dataset.crystals[k], self.cutoff)
        return graph if self.graph_fn is None else self.graph_fn(graph)

    @property
    def n_node(self) -> np.ndarray:
        """[n] nodes per structure."""
        if self._counts is None:
            self._scan()
        return self._counts[0]

    @property
    def n_edge(self) -> np.ndarray:
        """[n] edges per structure at the loader's cutoff."""
        if self._counts is None:
            self._scan()
        return self._counts[1]

    @property
    def capacity(self) -> Capacity:
        return capacity_for(self.n_node, self.n_edge, self.batch_nodes)

    def order(self, epoch: int) -> np.ndarray:
        """[n] the structure order of an epoch."""
        if not self.shuffle:
            return np.arange(len(self.dataset))
        key = jax.random.fold_in(jax.random.key(self.seed), epoch)
        return np.asarray(jax.random.permutation(key, len(self.dataset)))

    def plan(self, epoch: int = 0) -> list[tuple[np.ndarray, Capacity]]:
        """The epoch's batches as (structure indices, capacity), without building them."""
        order = self.order(epoch)
        n_node, n_edge, capacity = self.n_node, self.n_edge, self.capacity
        bins = pack(n_node[order], n_edge[order], capacity, n_open=self.n_open)
        plan = []
        for members in bins:
            idx = order[members]
            nodes, edges = int(n_node[idx].sum()), int(n_edge[idx].sum())
            plan.append((idx, _pad_shape(capacity, nodes, edges, self.tight)))
        return plan

    def __call__(self, epoch: int = 0) -> Iterator[Batch]:
        values = self.dataset.target_array(list(self.targets))
        for idx, cap in self.plan(epoch):
            graph = batch(
                [self.graph(k) for k in idx],
                n_node=cap.n_node,
                n_edge=cap.n_edge,
                n_graph=cap.n_graph,
            )
            target = np.zeros((cap.n_graph, values.shape[1]))
            target[: len(idx)] = values[idx]
            mask = np.zeros_like(target, dtype=bool)
            mask[: len(idx)] = np.isfinite(values[idx])
            target[~mask] = 0.0
            index = np.full(cap.n_graph, -1, np.int64)
            index[: len(idx)] = idx
            nodes, node_masks = {}, {}
            for key in self.node_targets:
                rows = np.concatenate([self.dataset.node_targets[key][k] for k in idx])
                present = np.isfinite(rows.reshape(len(rows), -1)).all(axis=1)
                full = np.zeros((cap.n_node,) + rows.shape[1:])
                full[: len(rows)] = np.where(
                    present.reshape((-1,) + (1,) * (rows.ndim - 1)), rows, 0
                )
                nodes[key] = full
                node_masks[key] = np.concatenate([present, np.zeros(cap.n_node - len(rows), bool)])
            yield Batch(
                graph=graph,
                targets=target,
                target_mask=mask,
                index=index,
                node_targets=nodes,
                node_target_mask=node_masks,
            )

    def __len__(self) -> int:
        return len(self.plan(0))


def padding_report(loader: GraphLoader, epoch: int = 0) -> dict[str, float | int]:
    """Padding overhead of an epoch: padded / real nodes and edges, and the distinct shapes."""
    plan = loader.plan(epoch)
    real_nodes, real_edges = int(loader.n_node.sum()), int(loader.n_edge.sum())
    padded_nodes = sum(cap.n_node for _, cap in plan)
    padded_edges = sum(cap.n_edge for _, cap in plan)
    shapes = {dataclasses.astuple(cap) for _, cap in plan}
    return {
        "structures": len(loader.dataset),
        "batches": len(plan),
        "node_overhead": padded_nodes / max(real_nodes, 1),
        "edge_overhead": padded_edges / max(real_edges, 1),
        "distinct_shapes": len(shapes),
    }
