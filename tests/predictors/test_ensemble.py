"""Ensembles trained by vmap: equal to K separate trainings, per-member optimiser state,
predictions with a spread, and checkpoints."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jmof import checkpoint, train
from jmof.data import Batch, coremof
from jmof.graph import batch, to_device
from predictors import cgcnn, ensemble

K = 3
N_EPOCHS = 2
CAPACITY = dict(n_node=72, n_edge=1024, n_graph=3)
CONFIG = cgcnn.CGCNNConfig(
    n_gaussians=12,
    features=8,
    n_conv=1,
    hidden=(8,),
    targets=("LCD", "Has_OMS"),
    kinds=("regression", "classification"),
    mean=(5.0, 0.5),
    std=(2.0, 1.0),
    dtype="float64",
)


def _optimizer():
    # The clip is active at every step (gradient norms are ~0.1-1), so that a clip over the
    # stacked tree would couple the members.
    return optax.chain(optax.clip_by_global_norm(0.05), optax.adamw(1e-2, weight_decay=1e-3))


@pytest.fixture(scope="module", autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def batches():
    """Three batches of one shape from four small CoRE MOFs, one LCD missing."""
    dataset = coremof.load("2019-ASR", limit=250, max_atoms=60, progress=False)
    assert len(dataset) >= 4
    values = dataset.target_array(list(CONFIG.targets))
    values[2, 0] = np.nan
    out = []
    for members in ([1, 2], [0], [3]):
        graph = to_device(
            batch([cgcnn.crystal_graph(dataset.crystals[k], CONFIG) for k in members], **CAPACITY)
        )
        targets = np.zeros((CAPACITY["n_graph"], 2))
        targets[: len(members)] = values[members]
        mask = np.isfinite(targets)
        mask[len(members) :] = False
        index = np.full(CAPACITY["n_graph"], -1)
        index[: len(members)] = members
        out.append(Batch(graph, np.nan_to_num(targets), mask, index))
    return out


def _batches_fn(batches):
    def batches_fn(epoch):
        order = np.random.default_rng(epoch).permutation(len(batches))
        return [batches[i] for i in order]

    return batches_fn


def _trainer(loss_fn, optimizer):
    """``train(params) -> params``: the steps ``fit`` takes, without validation or checkpoints
    (one compiled step for every call)."""
    step = jax.jit(train.train_step_fn(loss_fn, optimizer))

    def train_fn(params, batches):
        state = train.init_state(params, optimizer, jax.random.key(3))
        for epoch in range(N_EPOCHS):
            for b in _batches_fn(batches)(epoch):
                state, _ = step(state, b)
        return state.params

    return train_fn


@pytest.fixture(scope="module")
def trained(batches, tmp_path_factory):
    """The ensemble trained by ``fit`` (with a checkpoint) and the members trained one by one."""
    keys = jax.random.split(jax.random.key(7), K)
    stacked = ensemble.init_ensemble(CONFIG, keys, batches[0].graph)
    ckpt_dir = tmp_path_factory.mktemp("ensemble") / "run"
    result = train.fit(
        ensemble.ensemble_loss_fn(cgcnn.loss_fn(CONFIG)),
        stacked,
        _batches_fn(batches),
        optimizer=ensemble.ensemble_optimizer(_optimizer()),
        n_epochs=N_EPOCHS,
        key=jax.random.key(3),
        val_batches_fn=lambda: batches[:1],
        ckpt_dir=ckpt_dir,
        config=ensemble.EnsembleConfig(CONFIG, K),
        progress=False,
    )
    init = jax.jit(CONFIG.build().init)
    members = [init(k, batches[0].graph) for k in keys]
    train_fn = _trainer(cgcnn.loss_fn(CONFIG), _optimizer())
    separate = [train_fn(p, batches) for p in members]
    return dict(
        stacked=stacked, members=members, result=result, separate=separate, ckpt_dir=ckpt_dir
    )


def _assert_close(a, b, **tolerance):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tolerance)


def _max_difference(a, b):
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in pairs)


def test_members_start_from_their_keys(trained):
    for k in range(K):
        # vmap-ed and single inits draw the same numbers (up to rounding of the scaling).
        _assert_close(
            ensemble.member(trained["stacked"], k), trained["members"][k], rtol=1e-14, atol=1e-15
        )
    assert _max_difference(trained["members"][0], trained["members"][1]) > 1e-2


def test_vmap_ensemble_equals_separate_trainings(trained):
    final = trained["result"].state.params
    for k in range(K):
        moved = _max_difference(trained["separate"][k], trained["members"][k])
        assert moved > 1e-3  # the steps did something
        _assert_close(ensemble.member(final, k), trained["separate"][k], rtol=1e-10, atol=1e-12)


def test_shared_global_norm_clip_couples_members(trained, batches):
    """Without vmap, one global-norm clip over the stacked tree scales every member by the joint
    norm: no longer K separate trainings. Adam alone is per parameter and stays equivalent."""
    loss_fn = ensemble.ensemble_loss_fn(cgcnn.loss_fn(CONFIG))
    coupled = _trainer(loss_fn, _optimizer())(trained["stacked"], batches)
    differences = [
        _max_difference(ensemble.member(coupled, k), trained["separate"][k]) for k in range(K)
    ]
    assert max(differences) > 1e-3, differences

    adam = optax.adam(1e-2)
    shared = _trainer(loss_fn, adam)(trained["stacked"], batches)
    alone = _trainer(cgcnn.loss_fn(CONFIG), adam)(trained["members"][1], batches)
    _assert_close(ensemble.member(shared, 1), alone, rtol=1e-10, atol=1e-12)


def test_ensemble_loss_is_the_sum_of_member_losses(trained, batches):
    member_loss = jax.jit(cgcnn.loss_fn(CONFIG))
    loss_fn = jax.jit(ensemble.ensemble_loss_fn(cgcnn.loss_fn(CONFIG)))
    loss, metrics = loss_fn(trained["stacked"], batches[0], None)
    losses = [float(member_loss(p, batches[0], None)[0]) for p in trained["members"]]
    np.testing.assert_allclose(loss, sum(losses), rtol=1e-12)
    np.testing.assert_allclose(metrics["member_loss"], np.mean(losses), rtol=1e-12)
    assert float(metrics["weight"]) == 3  # LCD of crystal 1 and Has_OMS of crystals 1 and 2


# Compiled once for the module (configs are static: hashable frozen dataclasses).
_predict_ensemble = jax.jit(ensemble.predict_ensemble, static_argnums=0)


def test_predict_ensemble(trained, batches):
    params = trained["result"].state.params
    graph = batches[0].graph
    mean, std = _predict_ensemble(CONFIG, params, graph)
    predict_fn = jax.jit(cgcnn.predict, static_argnums=0)
    each = np.stack([predict_fn(CONFIG, ensemble.member(params, k), graph) for k in range(K)])
    np.testing.assert_allclose(mean, each.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(std, each.std(axis=0), rtol=1e-10, atol=1e-12)
    assert np.all(std[:2] > 0) and np.all((mean[:2, 1] > 0) & (mean[:2, 1] < 1))
    outputs = jax.jit(ensemble.EnsembleConfig(CONFIG, K).build().apply)(params, graph)
    assert outputs.shape == (K, CAPACITY["n_graph"], 2)
    np.testing.assert_allclose(
        cgcnn.destandardize_outputs(CONFIG, outputs), each, rtol=1e-12, atol=1e-12
    )


def test_checkpoint_round_trip(trained, batches):
    config, params = checkpoint.load(trained["ckpt_dir"])
    assert config == ensemble.EnsembleConfig(CONFIG, K)
    _assert_close(params, trained["result"].best_params, rtol=0, atol=0)
    graph = batches[1].graph
    expected = _predict_ensemble(CONFIG, trained["result"].best_params, graph)
    for got, want in zip(_predict_ensemble(config.model, params, graph), expected):
        np.testing.assert_array_equal(got, want)
