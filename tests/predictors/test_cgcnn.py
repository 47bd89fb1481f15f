"""CGCNN: invariances, padding, neighbour truncation, gradients, the masked loss, checkpoints and a
short training on real CoRE MOFs."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jmof import checkpoint, train
from jmof.data import Batch, coremof
from jmof.graph import batch, host_edge_lengths, radius_graph, to_device
from jmof.structure import Crystal
from predictors import cgcnn
from predictors.standardize import masked_loss

# One padded shape for every float64 check, so the model compiles once.
CAPACITY = dict(n_node=128, n_edge=2048, n_graph=4)
CONFIG = cgcnn.CGCNNConfig(
    n_gaussians=20,
    features=16,
    n_conv=2,
    hidden=(16,),
    targets=("LCD", "Has_OMS"),
    kinds=("regression", "classification"),
    mean=(5.0, 0.0),
    std=(2.0, 1.0),
    dtype="float64",
)


@pytest.fixture(scope="module")
def crystals():
    """Three small CoRE MOFs (32-56 atoms)."""
    dataset = coremof.load("2019-ASR", limit=250, max_atoms=60, progress=False)
    assert len(dataset) >= 3
    return dataset.crystals[:3]


@pytest.fixture(scope="module")
def model(crystals):
    """float64 params and a jitted apply shared by the module."""
    with jax.enable_x64(True):
        graph = _graph(crystals[:1])
        params = jax.jit(CONFIG.build().init)(jax.random.key(0), graph)
    return params, jax.jit(CONFIG.build().apply)


def _graph(crystals, **capacity):
    graphs = [cgcnn.crystal_graph(c, CONFIG) for c in crystals]
    return to_device(batch(graphs, **(capacity or CAPACITY)))


def _predict(model, crystals, **capacity):
    params, apply_fn = model
    return np.asarray(apply_fn(params, _graph(crystals, **capacity)))[: len(crystals)]


# --- transformations that must not change an intensive prediction ---------------------------


def _rotation(seed, proper=True):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if (np.linalg.det(q) > 0) != proper:
        q[:, 0] = -q[:, 0]
    return q


def _transform(c: Crystal, name: str) -> Crystal:
    species, positions, cell = np.asarray(c.species), np.asarray(c.positions), np.asarray(c.cell)
    if name in ("rotation", "reflection"):
        R = _rotation(1, proper=name == "rotation")
        return Crystal(species, positions @ R.T, cell @ R.T)
    if name == "translation":
        return Crystal(species, positions + np.array([1.3, -7.1, 22.4]), cell)
    if name == "permutation":
        perm = np.random.default_rng(2).permutation(len(species))
        return Crystal(species[perm], positions[perm], cell)
    if name == "cell_choice":  # another primitive cell of the same lattice, atoms wrapped into it
        new_cell = np.array([[1, 1, 0], [0, 1, 0], [-1, 0, 1]]) @ cell
        frac = np.linalg.solve(new_cell.T, positions.T).T % 1.0
        return Crystal(species, frac @ new_cell, new_cell)
    if name == "supercell":  # 2x1x1: twice the atoms, the same intensive property
        return Crystal(
            np.concatenate([species, species]),
            np.concatenate([positions, positions + cell[0]]),
            np.diag([2.0, 1.0, 1.0]) @ cell,
        )
    raise ValueError(name)


@pytest.mark.parametrize(
    "name", ["rotation", "reflection", "translation", "permutation", "cell_choice", "supercell"]
)
def test_invariance(model, crystals, x64, name):
    for c in crystals:
        expected = _predict(model, [c])
        np.testing.assert_allclose(
            _predict(model, [_transform(c, name)]), expected, rtol=1e-10, atol=1e-10
        )


def _tied_crystal():
    """Cubic, a = 4 Å: Zn at the origin and O, C, N 2 Å from it along x, y, z. Zn has six
    neighbours tied at 2 Å (two of each element), O has eight tied C and N at 2.83 Å: a cut
    at k = 4 that broke ties by index would keep different elements for different atom orders."""
    positions = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]])
    return Crystal(np.array([30, 8, 6, 7]), positions, 4.0 * np.eye(3))


@pytest.mark.parametrize("name", ["rotation", "translation", "permutation", "cell_choice"])
def test_invariance_with_tied_neighbours(model, x64, name):
    params, apply_fn = model

    def predict(c):
        graph = cgcnn.nearest_neighbors(radius_graph(c, CONFIG.cutoff), 4)
        return np.asarray(apply_fn(params, to_device(batch([graph], **CAPACITY))))[0]

    c = _tied_crystal()
    for seed in range(3):
        perm = np.random.default_rng(seed).permutation(4)
        c = Crystal(c.species[perm], c.positions[perm], c.cell)
        np.testing.assert_allclose(predict(_transform(c, name)), predict(c), rtol=1e-10, atol=1e-10)


def test_prediction_depends_on_geometry_and_species(model, crystals, x64):
    """The invariance tests are not vacuous: a moved atom or another element changes the output."""
    c = crystals[1]
    base = _predict(model, [c])
    moved = np.asarray(c.positions).copy()
    moved[0] += [0.05, 0.0, 0.0]
    assert np.abs(_predict(model, [Crystal(c.species, moved, c.cell)]) - base).max() > 1e-6
    species = np.asarray(c.species).copy()
    species[0] = 30 if species[0] != 30 else 29
    assert np.abs(_predict(model, [Crystal(species, c.positions, c.cell)]) - base).max() > 1e-6
    assert np.abs(_predict(model, [crystals[0]]) - _predict(model, [crystals[2]])).max() > 1e-6


def test_padding_invariance(model, crystals, x64):
    """A crystal predicts the same alone, alone with other capacities, and among others."""
    together = _predict(model, list(crystals))
    for k, c in enumerate(crystals):
        alone = _predict(model, [c])
        np.testing.assert_allclose(together[k], alone[0], rtol=1e-12, atol=1e-12)
    tight = _predict(model, [crystals[2]], n_node=40, n_edge=600, n_graph=2)
    np.testing.assert_allclose(tight[0], together[2], rtol=1e-12, atol=1e-12)
    padded = np.asarray(model[1](model[0], _graph(list(crystals))))
    np.testing.assert_array_equal(padded[3], 0.0)  # the padding graph's row


def test_gradients_match_finite_differences(model, crystals, x64):
    params, apply_fn = model
    graph = _graph(crystals[1:2])

    def total(positions, cell):
        g = dataclasses.replace(graph, positions=positions, cell=cell)
        return jnp.sum(apply_fn(params, g)[0])

    d_pos, d_cell = jax.jit(jax.grad(total, argnums=(0, 1)))(graph.positions, graph.cell)
    assert np.all(np.isfinite(d_pos)) and np.all(np.isfinite(d_cell))
    np.testing.assert_array_equal(np.asarray(d_pos)[32:], 0.0)  # padding nodes
    h = 1e-5
    for atom, axis in [(0, 0), (5, 2), (17, 1)]:
        step = jnp.zeros_like(graph.positions).at[atom, axis].set(h)
        fd = total(graph.positions + step, graph.cell) - total(graph.positions - step, graph.cell)
        np.testing.assert_allclose(d_pos[atom, axis], fd / (2 * h), rtol=1e-6, atol=1e-9)
    step = jnp.zeros_like(graph.cell).at[0, 1, 1].set(h)
    fd = total(graph.positions, graph.cell + step) - total(graph.positions, graph.cell - step)
    np.testing.assert_allclose(d_cell[0, 1, 1], fd / (2 * h), rtol=1e-6, atol=1e-9)


# --- neighbour truncation --------------------------------------------------------------------


def test_nearest_neighbors_keeps_ties_on_simple_cubic():
    """One atom, a = 3 Å: 6 neighbours at 3 Å, 12 at 4.24 Å, 8 at 5.20 Å."""
    c = Crystal(np.array([6]), np.zeros((1, 3)), 3.0 * np.eye(3))
    full = radius_graph(c, 8.0)
    for k, expected in [(1, 6), (6, 6), (7, 18), (18, 18), (19, 26)]:
        g = cgcnn.nearest_neighbors(full, k)
        assert int(g.n_edge[0]) == len(g.senders) == expected, k


def test_nearest_neighbors_against_brute_force(crystals):
    c = crystals[0]
    full = radius_graph(c, 8.0)
    g = cgcnn.nearest_neighbors(full, 12)
    lengths = host_edge_lengths(full)
    kept = host_edge_lengths(g)
    for atom in range(c.n_atoms):
        mine = np.sort(lengths[full.receivers == atom])
        expected = mine[mine <= mine[11] + 1e-4]
        np.testing.assert_array_equal(np.sort(kept[g.receivers == atom]), expected)
    # A subset of the edges in their original order.
    edges = {(s, r, tuple(S)): e for e, (s, r, S) in enumerate(zip(*_edges(full)))}
    positions = [edges[(s, r, tuple(S))] for s, r, S in zip(*_edges(g))]
    assert positions == sorted(positions)
    # A padded batch is truncated graph by graph and keeps its capacities.
    padded = batch([full, radius_graph(crystals[1], 8.0)], n_node=100, n_edge=12000, n_graph=3)
    cut = cgcnn.nearest_neighbors(padded, 12)
    assert cut.shape == padded.shape
    assert int(cut.n_edge[0]) == len(g.senders)
    np.testing.assert_array_equal(cut.senders[: len(g.senders)], g.senders)


def _edges(g):
    return np.asarray(g.senders).tolist(), np.asarray(g.receivers).tolist(), np.asarray(g.shifts)


# --- targets, loss, config -------------------------------------------------------------------


def test_fit_standardization_by_hand():
    targets = np.array([[1.0, 0.0, 7.0], [3.0, 1.0, 7.0], [np.nan, 1.0, 7.0], [5.0, 0.0, 7.0]])
    mean, std = cgcnn.fit_standardization(
        targets, kinds=("regression", "classification", "regression")
    )
    np.testing.assert_allclose(mean, [3.0, 0.0, 7.0])
    np.testing.assert_allclose(std, [np.sqrt(8 / 3), 1.0, 1.0])  # no spread: std 1
    mask = np.ones_like(targets, bool)
    mask[3, 0] = False
    mean, _ = cgcnn.fit_standardization(targets, mask)
    assert mean[0] == 2.0


def _loss_batch(crystals, lcd_missing):
    graph = _graph(list(crystals))
    targets = np.array([[6.0, 1.0], [lcd_missing, 0.0], [3.5, 1.0], [1e6, 1e6]])
    mask = np.array([[True, True], [False, True], [True, True], [False, False]])
    return Batch(graph, targets, mask, np.array([0, 1, 2, -1]))


def _hand_loss(out, y, huber_delta=None):
    """The loss of ``_loss_batch`` in NumPy: rows 0 and 2 have LCD (mean 5, std 2), rows 0-2
    have Has_OMS; five entries in all."""
    err = out[[0, 2], 0] - (y[[0, 2], 0] - 5.0) / 2.0
    if huber_delta is None:
        regression = err**2
    else:
        a = np.abs(err)
        regression = np.where(a <= huber_delta, 0.5 * a**2, huber_delta * (a - huber_delta / 2))
    logits = out[:3, 1]
    bce = np.log1p(np.exp(logits)) - y[:3, 1] * logits
    return (regression.sum() + bce.sum()) / 5


def test_masked_loss_by_hand(model, crystals, x64):
    params, apply_fn = model
    value_and_grad = jax.jit(jax.value_and_grad(cgcnn.loss_fn(CONFIG), has_aux=True))
    data = _loss_batch(crystals, 0.0)
    (loss, metrics), grads = value_and_grad(params, data, None)

    out = np.asarray(apply_fn(params, data.graph))
    y = data.targets
    np.testing.assert_allclose(loss, _hand_loss(out, y), rtol=1e-12)
    mae = np.mean(np.abs(out[[0, 2], 0] * 2.0 + 5.0 - y[[0, 2], 0]))
    np.testing.assert_allclose(metrics["mae_LCD"], mae, rtol=1e-12)
    accuracy = np.mean((out[:3, 1] > 0) == (y[:3, 1] > 0.5))
    np.testing.assert_allclose(metrics["accuracy_Has_OMS"], accuracy, rtol=1e-12)
    assert float(metrics["weight"]) == 5

    # A missing value (and the padding row) touches neither the loss nor its gradient.
    (other_loss, _), other_grads = value_and_grad(params, _loss_batch(crystals, 1e4), None)
    assert float(other_loss) == float(loss)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(other_grads)):
        np.testing.assert_array_equal(a, b)


def test_huber_loss_by_hand(x64):
    out = np.random.default_rng(0).normal(size=(4, 2))
    y = np.array([[6.0, 1.0], [np.nan, 0.0], [3.5, 1.0], [np.nan, np.nan]])
    mask = np.isfinite(y)
    mask[3] = False
    loss, _ = masked_loss(
        out,
        np.nan_to_num(y),
        mask,
        mean=CONFIG.mean,
        std=CONFIG.std,
        kinds=CONFIG.kinds,
        names=CONFIG.targets,
        huber_delta=0.3,
    )
    np.testing.assert_allclose(loss, _hand_loss(out, np.nan_to_num(y), 0.3), rtol=1e-12)


def test_config_validates_and_round_trips():
    with pytest.raises(ValueError, match="kinds"):
        cgcnn.CGCNNConfig(targets=("a", "b"), kinds=("regression",))
    with pytest.raises(ValueError, match="kinds must be"):
        cgcnn.CGCNNConfig(kinds=("ordinal",))
    with pytest.raises(ValueError, match="std positive"):
        cgcnn.CGCNNConfig(std=(0.0,))
    with pytest.raises(ValueError, match="pooling"):
        cgcnn.CGCNNConfig(pooling="max")
    decoded = checkpoint.decode_config(checkpoint.encode_config(CONFIG))
    assert decoded == CONFIG and hash(decoded) == hash(CONFIG)
    fitted = cgcnn.standardized_config(CONFIG, np.array([[1.0, 0.0], [3.0, 1.0]]))
    assert fitted.mean == (2.0, 0.0) and fitted.std == (1.0, 1.0)


def test_checkpoint_round_trip(model, crystals, tmp_path, x64):
    params, _ = model
    checkpoint.save_model(tmp_path / "cgcnn", params, CONFIG)
    config, loaded = checkpoint.load(tmp_path / "cgcnn")
    assert config == CONFIG
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded), strict=True):
        np.testing.assert_array_equal(a, b)
    graph = _graph(list(crystals))
    predict_fn = jax.jit(cgcnn.predict, static_argnums=0)
    expected = predict_fn(CONFIG, params, graph)
    np.testing.assert_array_equal(predict_fn(config, loaded, graph), expected)


# --- training on real data -------------------------------------------------------------------


def test_short_training_reduces_validation_loss():
    """~100 CoRE MOFs (<= 60 atoms), density, LCD and open metal sites, 12 epochs (float32)."""
    dataset = coremof.load("2019-ASR", limit=3000, max_atoms=60, progress=False)
    dataset = dataset.take(range(min(len(dataset), 100)))
    splits = dataset.split((0.75, 0.25, 0.0))
    assert len(splits["train"]) >= 60 and len(splits["val"]) >= 15
    targets = ("cm3_g", "LCD", "Has_OMS")
    config = cgcnn.CGCNNConfig(
        n_gaussians=20,
        features=16,
        n_conv=2,
        hidden=(16,),
        targets=targets,
        kinds=("regression", "regression", "classification"),
    )
    config = cgcnn.standardized_config(config, splits["train"].target_array(list(targets)))
    loader = cgcnn.graph_loader(splits["train"], config, batch_nodes=1024)
    val = list(cgcnn.graph_loader(splits["val"], config, batch_nodes=2048, shuffle=False)(0))
    assert len(val) == 1
    params = jax.jit(config.build().init)(jax.random.key(0), val[0].graph)
    # The loss of predicting the training mean (0 in standardised units, logit 0).
    baseline = float(
        masked_loss(
            jnp.zeros(val[0].targets.shape),
            val[0].targets,
            val[0].target_mask,
            mean=config.mean,
            std=config.std,
            kinds=config.kinds,
            names=targets,
        )[0]
    )
    result = train.fit(
        cgcnn.loss_fn(config),
        params,
        loader,
        optimizer=optax.adam(3e-3),
        n_epochs=12,
        key=jax.random.key(1),
        val_batches_fn=lambda: val,
        progress=False,
    )
    losses = [h["val"]["loss"] for h in result.history]
    assert losses[-1] < 0.85 * baseline and losses[-1] < 0.9 * losses[0], (baseline, losses)
    density = val[0].targets[val[0].target_mask[:, 0], 0]  # g/cm³
    mae = result.history[-1]["val"]["mae_cm3_g"]
    assert mae < 0.9 * np.mean(np.abs(density - config.mean[0])), mae  # beats the train mean


def test_cell_descriptors_match_crystal_density(x64):
    from jmof.data import coremof
    from jmof.graph import batch, radius_graph, to_device
    from predictors.cgcnn import cell_descriptors

    dataset = coremof.load("2019-ASR", limit=250, max_atoms=60, progress=False)
    crystals = dataset.crystals[:3]
    graph = to_device(batch([radius_graph(c, 3.0) for c in crystals]), jnp.float64)
    values = np.asarray(cell_descriptors(graph))
    expected = [[np.log(c.density), np.log(c.volume / c.n_atoms)] for c in crystals]
    np.testing.assert_allclose(values[:3], expected, rtol=1e-12)
    np.testing.assert_array_equal(values[3:], 0.0)
    np.testing.assert_allclose(values[:3, 0], np.log(dataset.targets["cm3_g"][:3]), atol=2e-3)
