"""Packing into fixed-shape batches, epoch determinism, targets and padding on CoRE MOFs."""

from __future__ import annotations

import numpy as np
import pytest

from jmof.data import Capacity, GraphLoader, coremof, pack, padding_report
from jmof.data.dataset import split_of
from jmof.graph import unbatch


@pytest.fixture(scope="module")
def loader():
    dataset = coremof.load("2019-ASR", limit=120, progress=False)
    return GraphLoader(dataset, cutoff=5.0, targets=("LCD", "PLD"), batch_nodes=1024, seed=3)


def test_pack_places_every_structure_once_within_capacity():
    rng = np.random.default_rng(0)
    n_node = rng.integers(10, 400, 500)
    n_edge = n_node * rng.integers(20, 60, 500)
    n_node[7], n_edge[7] = 5000, 10  # oversize: its own batch
    cap = Capacity(1024, 40_000, 32)
    bins = pack(n_node, n_edge, cap)
    assert sorted(k for b in bins for k in b) == list(range(500))
    assert [7] in bins
    for b in bins:
        if b != [7]:
            assert n_node[b].sum() <= cap.n_node - 1 and n_edge[b].sum() <= cap.n_edge
            assert len(b) <= cap.n_graph - 1
    fill = sum(n_node[b].sum() for b in bins if b != [7]) / ((len(bins) - 1) * (cap.n_node - 1))
    assert fill > 0.85


def test_epochs_are_deterministic_and_shuffled(loader):
    first = [b.index.tolist() for b in loader(0)]
    again = [b.index.tolist() for b in loader(0)]
    other = [b.index.tolist() for b in loader(1)]
    assert first == again and first != other
    seen = sorted(i for idx in first for i in idx if i >= 0)
    assert seen == list(range(len(loader.dataset)))


def test_batches_carry_the_right_graphs_and_targets(loader):
    for b in loader(2):
        real = b.index[b.index >= 0]
        for k, g in zip(real, unbatch(b.graph)):
            np.testing.assert_array_equal(g.senders, loader.graph(k).senders)
            np.testing.assert_array_equal(g.positions, loader.dataset.crystals[k].positions)
        np.testing.assert_array_equal(
            b.targets[: len(real), 0], loader.dataset.targets["LCD"][real]
        )
        assert not b.target_mask[len(real) :].any()
        assert b.graph.graph_mask.sum() == len(real)


def test_padding_overhead_and_shapes(loader):
    report = padding_report(loader)
    assert report["structures"] == len(loader.dataset)
    assert report["node_overhead"] >= 1.0 and report["edge_overhead"] >= 1.0
    shapes = {b.graph.shape for b in loader(0)}
    assert len(shapes) == report["distinct_shapes"]


def test_graphs_rebuilt_on_demand_equal_kept_ones(loader):
    lean = GraphLoader(
        loader.dataset,
        cutoff=5.0,
        targets=("LCD", "PLD"),
        batch_nodes=1024,
        seed=3,
        keep_graphs=False,
    )
    np.testing.assert_array_equal(lean.n_edge, loader.n_edge)
    assert lean._graphs is None
    kept, rebuilt = next(iter(loader(1))), next(iter(lean(1)))
    np.testing.assert_array_equal(kept.graph.senders, rebuilt.graph.senders)
    np.testing.assert_array_equal(kept.graph.shifts, rebuilt.graph.shifts)


def test_oversize_structures_get_power_of_two_capacities(loader):
    small = GraphLoader(loader.dataset, cutoff=5.0, batch_nodes=128, keep_graphs=False)
    cap = small.capacity
    assert (small.n_node + 1 > cap.n_node).any()
    for idx, shape in small.plan(0):
        k = shape.n_node // cap.n_node
        assert (
            k & (k - 1) == 0 and shape.n_node == k * cap.n_node and shape.n_edge == k * cap.n_edge
        )
        assert (
            small.n_node[idx].sum() + 1 <= shape.n_node and small.n_edge[idx].sum() <= shape.n_edge
        )
        if k > 1:
            assert len(idx) == 1
            assert (
                small.n_node[idx[0]] + 1 > shape.n_node // 2
                or small.n_edge[idx[0]] > shape.n_edge // 2
            )


def test_tight_batches_shrink_but_still_hold_their_structures(loader):
    """An inference loader pads an under-filled batch to a smaller power-of-two fraction of the
    common capacity; the batches are the same, with fewer padded nodes."""
    import dataclasses

    from jmof.data.dataset import Dataset

    k = int(np.argmin([c.n_atoms for c in loader.dataset.crystals]))
    crystal = loader.dataset.crystals[k]
    few = Dataset("copies", ("a", "b", "c"), (crystal,) * 3)  # one batch, under 1/4 full
    budget = 16 * crystal.n_atoms
    tight = GraphLoader(few, cutoff=5.0, batch_nodes=budget, shuffle=False, tight=True)
    loose = dataclasses.replace(tight, tight=False)
    cap = loose.capacity
    padded = {"tight": 0, "loose": 0}
    for (idx_t, shape_t), (idx_l, shape_l) in zip(tight.plan(0), loose.plan(0), strict=True):
        np.testing.assert_array_equal(idx_t, idx_l)
        nodes, edges = loose.n_node[idx_t].sum(), loose.n_edge[idx_t].sum()
        assert nodes + 1 <= shape_t.n_node <= shape_l.n_node and edges <= shape_t.n_edge
        fraction = shape_t.n_node / cap.n_node
        assert fraction >= 1 / 16 and np.log2(fraction) == int(np.log2(fraction))
        if fraction < 1:  # it could not have been halved once more
            assert nodes + 1 > shape_t.n_node // 2 or edges > (cap.n_edge * fraction) // 2
        padded["tight"] += shape_t.n_node - nodes
        padded["loose"] += shape_l.n_node - nodes
    assert padded["tight"] < padded["loose"]
    for b in tight(0):  # and they build
        assert b.graph.n_node.sum() == b.graph.positions.shape[0]


def test_node_targets_follow_their_atoms_into_batches(loader):
    """Per-atom rows (e.g. forces) land on the nodes of their structure; NaN rows are masked."""
    import dataclasses

    dataset = loader.dataset
    rows = tuple(
        np.column_stack([np.full(c.n_atoms, k), np.arange(c.n_atoms), c.species]).astype(float)
        for k, c in enumerate(dataset.crystals)
    )
    rows[5][0] = np.nan
    labelled = dataclasses.replace(dataset, node_targets={"tag": rows})
    node_loader = GraphLoader(labelled, cutoff=5.0, batch_nodes=1024, node_targets=("tag",))
    for b in node_loader(1):
        tag, mask = b.node_targets["tag"], b.node_target_mask["tag"]
        real = np.asarray(b.graph.node_mask)
        assert not mask[~real].any() and not tag[~real].any()
        structure = np.asarray(b.index)[np.asarray(b.graph.node_graph)[real]]
        ok = mask[real]
        np.testing.assert_array_equal(tag[real][ok, 0], structure[ok])
        np.testing.assert_array_equal(tag[real][ok, 2], np.asarray(b.graph.species)[real][ok])
        if 5 in b.index:
            first = np.flatnonzero(structure == 5)[0]
            assert not ok[first] and ok[first + 1]


def test_group_split_keeps_related_names_together(loader):
    import dataclasses

    base = loader.dataset.take(list(range(40)) * 3)  # three configurations of each structure
    names = tuple(f"{n}/copy/{k // 40}" for k, n in enumerate(base.names))
    parts = dataclasses.replace(base, names=names).split(group=lambda n: n.split("/")[0])
    where = {}
    for label, part in parts.items():
        for name in part.names:
            where.setdefault(name.split("/")[0], set()).add(label)
    assert len(where) == 40 and all(len(labels) == 1 for labels in where.values())
    assert {next(iter(v)) for v in where.values()} == {"train", "val", "test"}
    for group, labels in where.items():
        assert labels == {split_of(group)}
    assert sum(len(p) for p in parts.values()) == 120
