"""Periodic radius graphs against ASE's neighbour list, batching, and exact edge gradients."""

from __future__ import annotations

import ase
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.neighborlist import neighbor_list as ase_neighbor_list

from jmof.graph import (
    Graph,
    batch,
    bucket_size,
    edge_lengths,
    edge_vectors,
    radius_graph,
    safe_norm,
    to_device,
    unbatch,
)
from jmof.structure import Crystal

# The first 2019-ASR structures (CSV order) that pass validation and have ≤ 200 atoms.
N_COREMOF = 22


def _synthetic() -> dict[str, Crystal]:
    rng = np.random.default_rng(7)
    out = {}
    cells = {
        "cubic": np.eye(3) * 6.0,
        "thin": np.array([[1.3, 0, 0], [0, 7.0, 0], [0, 0, 8.0]]),  # 1.3 Å ≪ 2·cutoff
        "very_thin_triclinic": np.array([[1.1, 0.0, 0.0], [0.4, 1.6, 0.0], [0.3, -0.5, 2.2]]),
        "skewed": np.array([[5.0, 0, 0], [4.3, 2.5, 0], [-2.0, 1.5, 3.1]]),  # ~30° angles
        "left_handed": np.array([[5.0, 0, 0], [0, 0, 6.0], [0, 5.5, 0]]),
    }
    for name, cell in cells.items():
        n = 5
        frac = rng.random((n, 3)) * 1.6 - 0.3  # some atoms outside the cell: no wrapping needed
        out[name] = Crystal(
            species=rng.integers(1, 30, n).astype(np.int32), positions=frac @ cell, cell=cell
        )
    out["single_atom"] = Crystal(np.array([6], np.int32), np.zeros((1, 3)), np.eye(3) * 2.1)
    out["slab"] = Crystal(
        species=np.array([8, 1, 1], np.int32),
        positions=np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.5]]),
        cell=np.array([[3.0, 0, 0], [1.0, 2.8, 0], [0, 0, 20.0]]),
        pbc=(True, True, False),
    )
    out["molecule"] = Crystal(
        species=np.array([8, 1, 1], np.int32),
        positions=np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]]),
        cell=np.zeros((3, 3)),
        pbc=(False, False, False),
    )
    return out


SYNTHETIC = _synthetic()


@pytest.fixture(scope="module")
def coremof_crystals():
    from jmof.data import coremof

    dataset = coremof.load("2019-ASR", limit=250, max_atoms=200, progress=False)
    return dict(zip(dataset.names[:N_COREMOF], dataset.crystals[:N_COREMOF]))


_edge_lengths = jax.jit(edge_lengths)  # eager dispatch recompiles every op for every shape


def _assert_same_as_ase(crystal: Crystal, cutoff: float) -> None:
    i, j, S, d = ase_neighbor_list("ijSd", crystal.to_ase(), cutoff)
    graph = radius_graph(crystal, cutoff)
    ours = set(
        zip(graph.senders.tolist(), graph.receivers.tolist(), map(tuple, graph.shifts.tolist()))
    )
    theirs = set(zip(i.tolist(), j.tolist(), map(tuple, S.tolist())))
    assert len(ours) == len(graph.senders), "duplicate edges"
    assert ours == theirs, (len(ours - theirs), len(theirs - ours))
    with jax.enable_x64(True):
        lengths = np.asarray(_edge_lengths(to_device(graph, jnp.float64)))
    ase_d = {e: dist for e, dist in zip(zip(i.tolist(), j.tolist(), map(tuple, S.tolist())), d)}
    ref = np.array(
        [
            ase_d[e]
            for e in zip(
                graph.senders.tolist(), graph.receivers.tolist(), map(tuple, graph.shifts.tolist())
            )
        ]
    )
    np.testing.assert_allclose(lengths, ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("cutoff", [5.0, pytest.param(8.0, marks=pytest.mark.slow)])
def test_coremof_edges_match_ase(coremof_crystals, cutoff):
    assert len(coremof_crystals) == N_COREMOF
    for crystal in coremof_crystals.values():
        _assert_same_as_ase(crystal, cutoff)


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
@pytest.mark.parametrize("cutoff", [3.0, 5.0])
def test_synthetic_edges_match_ase(name, cutoff):
    _assert_same_as_ase(SYNTHETIC[name], cutoff)


def test_thin_cell_has_several_images_of_one_neighbour():
    graph = radius_graph(SYNTHETIC["thin"], 5.0)
    pairs = list(zip(graph.senders.tolist(), graph.receivers.tolist()))
    assert max(pairs.count(p) for p in set(pairs)) >= 7  # 1.3 Å period: ≥ 7 images within 5 Å
    self_images = graph.senders == graph.receivers
    assert self_images.any() and (np.abs(graph.shifts[self_images]).sum(1) > 0).all()


def test_edge_list_is_symmetric():
    graph = radius_graph(SYNTHETIC["skewed"], 5.0)
    forward = set(
        zip(graph.senders.tolist(), graph.receivers.tolist(), map(tuple, graph.shifts.tolist()))
    )
    backward = set(
        zip(graph.receivers.tolist(), graph.senders.tolist(), map(tuple, (-graph.shifts).tolist()))
    )
    assert forward == backward


def test_gradients_wrt_positions_and_cell_match_finite_differences(x64):
    crystal = SYNTHETIC["skewed"]
    graph = to_device(radius_graph(crystal, 4.0), jnp.float64)

    def energy(positions, cell):
        g = Graph(**{**graph.__dict__, "positions": positions, "cell": cell})
        r = edge_lengths(g)
        return jnp.sum(jnp.exp(-r) * r**2)

    grad_r, grad_c = jax.grad(energy, argnums=(0, 1))(graph.positions, graph.cell)
    h = 1e-6
    for argnum, grad in ((0, grad_r), (1, grad_c)):
        base = [graph.positions, graph.cell]
        flat = np.asarray(base[argnum]).ravel()
        fd = np.zeros_like(flat)
        for k in range(flat.size):
            plus, minus = flat.copy(), flat.copy()
            plus[k] += h
            minus[k] -= h
            args_p, args_m = list(base), list(base)
            args_p[argnum] = jnp.asarray(plus.reshape(base[argnum].shape))
            args_m[argnum] = jnp.asarray(minus.reshape(base[argnum].shape))
            fd[k] = (energy(*args_p) - energy(*args_m)) / (2 * h)
        np.testing.assert_allclose(np.asarray(grad).ravel(), fd, rtol=1e-6, atol=1e-8)


def test_batch_roundtrip_and_padding(x64):
    graphs = [
        radius_graph(c, 4.0)
        for c in (SYNTHETIC["cubic"], SYNTHETIC["thin"], SYNTHETIC["single_atom"])
    ]
    padded = batch(graphs)
    N, E, G = padded.shape
    assert N >= sum(len(g.species) for g in graphs) + 1 and G == 4
    assert N == bucket_size(sum(len(g.species) for g in graphs) + 1)
    assert padded.node_mask.sum() == sum(len(g.species) for g in graphs)
    assert padded.graph_mask.tolist() == [True, True, True, False]
    assert padded.n_node.sum() == N and padded.n_edge.sum() == E
    # Edge vectors of the batch are those of each graph, in order; padding edges are zero.
    vectors = np.asarray(edge_vectors(to_device(padded, jnp.float64)))
    expected = np.concatenate([np.asarray(edge_vectors(to_device(g, jnp.float64))) for g in graphs])
    np.testing.assert_allclose(vectors[padded.edge_mask], expected, atol=1e-12)
    assert np.all(vectors[~padded.edge_mask] == 0)
    for original, recovered in zip(graphs, unbatch(padded)):
        for field in ("species", "positions", "cell", "senders", "receivers", "shifts"):
            np.testing.assert_array_equal(getattr(original, field), getattr(recovered, field))
    # Batching a padded batch again keeps the real content.
    again = unbatch(batch([padded, graphs[0]]))
    assert len(again) == 4
    np.testing.assert_array_equal(again[3].senders, graphs[0].senders)


def test_padding_gradients_are_finite(x64):
    padded = to_device(batch([radius_graph(SYNTHETIC["cubic"], 4.0)], n_edge=bucket_size(10_000)))
    assert (~padded.edge_mask).any()
    grad = jax.grad(
        lambda p: jnp.sum(safe_norm(edge_vectors(Graph(**{**padded.__dict__, "positions": p}))))
    )(padded.positions)
    assert np.isfinite(np.asarray(grad)).all()
    assert np.all(np.asarray(grad)[~padded.node_mask] == 0)


def test_capacity_too_small_is_a_clear_error():
    g = radius_graph(SYNTHETIC["cubic"], 4.0)
    with pytest.raises(ValueError, match="too small"):
        batch([g], n_node=len(g.species))


def test_bucket_ladder():
    sizes = [bucket_size(n) for n in range(1, 5000)]
    assert all(s >= n and s % 8 == 0 for n, s in zip(range(1, 5000), sizes))
    assert max(s / n for n, s in zip(range(64, 5000), sizes[63:])) <= 1.2 + 8 / 64
    assert len(set(sizes)) <= 40


def test_cutoff_must_be_positive():
    with pytest.raises(ValueError, match="cutoff"):
        radius_graph(SYNTHETIC["cubic"], 0.0)


def test_ase_molecule_without_cell():
    atoms = ase.Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    graph = radius_graph(Crystal.from_ase(atoms), 1.2)
    assert sorted(zip(graph.senders.tolist(), graph.receivers.tolist())) == [
        (0, 1),
        (0, 2),
        (1, 0),
        (2, 0),
    ]


def test_host_edge_lengths_match_device_lengths(x64):
    from jmof.graph import host_edge_lengths

    padded = batch([radius_graph(SYNTHETIC[n], 4.0) for n in ("skewed", "thin")])
    np.testing.assert_allclose(
        host_edge_lengths(padded),
        np.asarray(_edge_lengths(to_device(padded, jnp.float64))),
        atol=1e-12,
    )
