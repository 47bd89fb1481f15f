"""jmof.train.fit and jmof.checkpoint on a tiny MLP regression (a few dozen steps each)."""

import dataclasses
import json
import os
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jmof import checkpoint, train

N_BATCHES, BATCH = 7, 8


@dataclasses.dataclass(frozen=True)
class Activation:
    name: str = "tanh"


@dataclasses.dataclass(frozen=True)
class TinyConfig:
    """A model config as the families write them: frozen, stored in checkpoints, builds a module."""

    hidden: tuple = (8,)
    activation: Activation = Activation()

    def build(self) -> nn.Module:
        return _Mlp(self.hidden, self.activation.name)


@dataclasses.dataclass(frozen=True)
class Gone:
    """Removed from the module in a test, as a refactor would."""

    size: int = 1


class _Mlp(nn.Module):
    hidden: tuple
    activation: str

    @nn.compact
    def __call__(self, x):
        for width in self.hidden:
            x = getattr(jnp, self.activation)(nn.Dense(width)(x))
        return nn.Dense(1)(x)[..., 0]


MODEL = TinyConfig().build()


def _loss_fn(params, batch, key):
    """Mean squared error over the real rows (mask), with input noise so the key matters."""
    x = batch["x"] + 0.01 * jax.random.normal(key, batch["x"].shape)
    err = (MODEL.apply(params, x) - batch["y"]) ** 2
    n = jnp.sum(batch["mask"])
    return jnp.sum(err * batch["mask"]) / n, {"weight": n}


def _data(seed, n=N_BATCHES * BATCH):
    x = np.random.default_rng(seed).uniform(-1, 1, (n, 1)).astype(np.float32)
    return x, np.sin(3 * x[:, 0]).astype(np.float32)


X, Y = _data(0)
X_VAL, Y_VAL = _data(1, 20)


def _batches_fn(epoch):
    order = np.asarray(jax.random.permutation(jax.random.fold_in(jax.random.key(7), epoch), len(X)))
    for i in range(N_BATCHES):
        idx = order[i * BATCH : (i + 1) * BATCH]
        yield {"x": X[idx], "y": Y[idx], "mask": np.ones(BATCH, np.float32)}


def _val_batches_fn():
    # The last batch is padded from 4 to 8 rows, which the mask and "weight" must cancel.
    for start in (0, 8, 16):
        x, y = X_VAL[start : start + 8], Y_VAL[start : start + 8]
        pad = 8 - len(x)
        yield {
            "x": np.pad(x, ((0, pad), (0, 0))),
            "y": np.pad(y, (0, pad)),
            "mask": np.pad(np.ones(len(x), np.float32), (0, pad)),
        }


def _optimizer():
    schedule = optax.warmup_cosine_decay_schedule(0.0, 3e-2, 5, 3 * N_BATCHES)
    return optax.adamw(schedule, weight_decay=1e-3)


def _fit(ckpt_dir, batches_fn=_batches_fn, loss_fn=_loss_fn, **kwargs):
    options = dict(
        optimizer=_optimizer(),
        n_epochs=3,
        key=jax.random.key(3),
        val_batches_fn=_val_batches_fn,
        ckpt_dir=ckpt_dir,
        config=TinyConfig(),
        ema_decay=0.9,
        ckpt_every_steps=4,
        log_every_steps=3,
        progress=False,
    )
    options.update(kwargs)
    params = MODEL.init(jax.random.key(0), X[:1])
    return train.fit(loss_fn, params, batches_fn, **options)


def _log(ckpt_dir):
    with open(os.path.join(ckpt_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run A uninterrupted, and runs that stop and resume: B after 10 steps (mid-epoch 1), C on
    Ctrl-C in the middle of epoch 2, D on Ctrl-C during the validation that ends epoch 1."""
    root = tmp_path_factory.mktemp("fit")
    a = _fit(root / "a")
    b_first = _fit(root / "b", stop_after_steps=10)
    b = _fit(root / "b")

    def interrupted_batches_fn(epoch):
        for i, batch in enumerate(_batches_fn(epoch)):
            if (epoch, i) == (2, 2):
                raise KeyboardInterrupt
            yield batch

    with pytest.raises(KeyboardInterrupt):
        _fit(root / "c", batches_fn=interrupted_batches_fn)
    c = _fit(root / "c")

    def interrupted_val_batches_fn():
        if interrupted_val_batches_fn.calls == 1:  # during the validation that ends epoch 1
            raise KeyboardInterrupt
        interrupted_val_batches_fn.calls += 1
        yield from _val_batches_fn()

    interrupted_val_batches_fn.calls = 0
    with pytest.raises(KeyboardInterrupt):
        _fit(root / "d", val_batches_fn=interrupted_val_batches_fn)
    d = _fit(root / "d")
    return {"root": root, "a": a, "b_first": b_first, "b": b, "c": c, "d": d}


@pytest.mark.parametrize("name", ["b", "c", "d"])
def test_resume_is_exact(runs, name):
    a, b = runs["a"], runs[name]
    assert int(a.state.step) == int(b.state.step) == 3 * N_BATCHES
    # Bitwise on CPU: same compiled step, same inputs, per-step keys from fold_in(key, step).
    _assert_trees_equal(a.state, b.state)
    _assert_trees_equal(a.best_params, b.best_params)
    assert a.history == b.history
    log_a, log_b = _log(runs["root"] / "a"), _log(runs["root"] / name)
    steps = [r["step"] for r in log_b]
    assert steps == sorted(set(steps))
    strip = [{k: v for k, v in r.items() if k != "time_s"} for r in log_a]
    assert strip == [{k: v for k, v in r.items() if k != "time_s"} for r in log_b]


def test_stop_after_steps_checkpoints_mid_epoch(runs):
    first = runs["b_first"]
    assert int(first.state.step) == 10 and not first.complete
    assert [e["epoch"] for e in first.history] == [0]
    assert runs["b"].complete and runs["a"].complete


def test_log_has_train_and_val_lines(runs):
    log = _log(runs["root"] / "a")
    assert [r["step"] for r in log if "val" in r] == [7, 14, 21]
    assert [r["step"] for r in log if "val" not in r] == [3, 6, 9, 12, 15, 18]
    assert all(set(r["train"]) == {"loss", "grad_norm"} for r in log)


def test_validation_weights_padded_batches(runs):
    """The mask and "weight" make the padded validation set count its 20 rows once each."""
    a = runs["a"]
    params = a.state.ema_params
    val_key = jax.random.split(jax.random.key(3))[1]
    # Same noise per batch as fit draws it (fold_in(val_key, i)); then one mean over 20 rows.
    errs = []
    for i, batch in enumerate(_val_batches_fn()):
        x = batch["x"] + 0.01 * jax.random.normal(jax.random.fold_in(val_key, i), batch["x"].shape)
        err = (MODEL.apply(params, x) - batch["y"]) ** 2
        errs.append(np.asarray(err)[batch["mask"] > 0])
    expected = np.mean(np.concatenate(errs).astype(np.float64))
    np.testing.assert_allclose(a.history[-1]["val"]["loss"], expected, rtol=1e-5)


def test_loss_decreases(runs):
    history = runs["a"].history
    params = MODEL.init(jax.random.key(0), X[:1])
    initial = float(np.mean((MODEL.apply(params, X_VAL) - Y_VAL) ** 2))
    assert history[-1]["val"]["loss"] < 0.5 * initial
    assert history[-1]["train"]["loss"] < history[0]["train"]["loss"]


def test_load_training_dir_gives_best_params(runs):
    config, params = checkpoint.load(runs["root"] / "a")
    assert config == TinyConfig()
    _assert_trees_equal(params, runs["a"].best_params)


def _rising_val_batches_fn():
    # Targets of 0.6 sin(3x): the model passes them on its way to sin(3x), so the validation loss
    # falls for an epoch, then rises.
    yield {"x": X_VAL, "y": 0.6 * Y_VAL, "mask": np.ones(len(X_VAL), np.float32)}


def test_early_stopping_returns_best_params(tmp_path):
    kwargs = dict(
        val_batches_fn=_rising_val_batches_fn,
        n_epochs=12,
        ema_decay=None,
        optimizer=optax.adam(3e-3),
    )
    result = _fit(tmp_path / "run", patience=2, **kwargs)
    losses = [e["val"]["loss"] for e in result.history]
    best_epoch = int(np.argmin(losses))
    assert result.stopped_early and 0 < best_epoch
    assert len(result.history) == best_epoch + 1 + 2 < 12
    # The params of the best epoch, from a run that stops there.
    again = _fit(tmp_path / "again", stop_after_steps=(best_epoch + 1) * N_BATCHES, **kwargs)
    _assert_trees_equal(result.best_params, again.state.params)
    # Resuming a run that stopped early does nothing more.
    resumed = _fit(tmp_path / "run", patience=2, **kwargs)
    assert resumed.stopped_early and int(resumed.state.step) == int(result.state.step)


def _loss_with_other_fn(params, batch, key):
    """``_loss_fn`` plus the metric ``"other"``: the squared error against ``batch["y_other"]``."""
    loss, metrics = _loss_fn(params, batch, key)
    err = (MODEL.apply(params, batch["x"]) - batch.get("y_other", batch["y"])) ** 2
    return loss, {**metrics, "other": jnp.sum(err * batch["mask"]) / jnp.sum(batch["mask"])}


def _rising_loss_falling_other_fn():
    # The loss rises after an epoch (targets 0.6 sin(3x), as above); "other" (targets sin(3x),
    # what the model is trained on) keeps falling.
    yield {"x": X_VAL, "y": 0.6 * Y_VAL, "y_other": Y_VAL, "mask": np.ones(len(X_VAL), np.float32)}


def test_monitor_selects_and_stops_on_the_named_metric(tmp_path):
    kwargs = dict(
        loss_fn=_loss_with_other_fn,
        val_batches_fn=_rising_loss_falling_other_fn,
        n_epochs=12,
        ema_decay=None,
        optimizer=optax.adam(3e-3),
        patience=2,
    )
    by_loss = _fit(tmp_path / "loss", **kwargs)
    assert by_loss.stopped_early  # the reference: the loss alone stops the run early
    result = _fit(tmp_path / "other", monitor="other", **kwargs)
    other = [e["val"]["other"] for e in result.history]
    losses = [e["val"]["loss"] for e in result.history]
    best_epoch = int(np.argmin(other))
    assert len(result.history) > len(by_loss.history)
    assert best_epoch != int(np.argmin(losses))
    steps = (best_epoch + 1) * N_BATCHES
    again = _fit(tmp_path / "again", stop_after_steps=steps, **{**kwargs, "patience": None})
    _assert_trees_equal(result.best_params, again.state.params)
    with pytest.raises(ValueError, match="monitor"):
        _fit(tmp_path / "other", **kwargs)  # resumed with another monitor
    with pytest.raises(KeyError, match="not a validation metric"):
        _fit(tmp_path / "typo", monitor="othr", **kwargs)


@pytest.mark.parametrize("debug_nans", [False, True])
def test_nan_loss_names_the_step(tmp_path, debug_nans):
    def batches_fn(epoch):
        for i, batch in enumerate(_batches_fn(epoch)):
            if i == 4:
                batch = {**batch, "y": np.full_like(batch["y"], np.nan)}
            yield batch

    params = MODEL.init(jax.random.key(0), X[:1])
    with jax.debug_nans(debug_nans), pytest.raises(FloatingPointError, match=r"step 5\b"):
        train.fit(
            _loss_fn,
            params,
            batches_fn,
            optimizer=_optimizer(),
            n_epochs=1,
            key=jax.random.key(3),
            ckpt_dir=tmp_path,
            ckpt_every_steps=2,
            progress=False,
        )
    assert sorted(int(p) for p in os.listdir(tmp_path) if p.isdigit()) == [2, 4]


def test_bad_config_fails_before_training(tmp_path):
    def loss_fn(params, batch, key):
        raise AssertionError("training started")

    with pytest.raises(TypeError, match=r"config\.f"):
        train.fit(
            loss_fn,
            {"w": jnp.zeros(2)},
            _batches_fn,
            optimizer=optax.sgd(0.1),
            n_epochs=1,
            key=jax.random.key(0),
            ckpt_dir=tmp_path / "run",
            config={"f": np.zeros(2)},
        )
    assert not (tmp_path / "run").exists()


def test_resume_with_other_config_is_refused(runs):
    with pytest.raises(ValueError, match="config"):
        _fit(runs["root"] / "a", config=TinyConfig(hidden=(4,)))


def test_save_model_load_round_trip(tmp_path):
    config = TinyConfig(hidden=(4, 3), activation=Activation("sin"))
    model = config.build()
    params = model.init(jax.random.key(1), X[:1])
    checkpoint.save_model(tmp_path / "model", params, config)
    loaded_config, loaded_params = checkpoint.load(tmp_path / "model")
    assert loaded_config == config and hash(loaded_config) == hash(config)
    _assert_trees_equal(loaded_params, params)
    np.testing.assert_array_equal(
        loaded_config.build().apply(loaded_params, X), model.apply(params, X)
    )
    with pytest.raises(FileExistsError):
        checkpoint.save_model(tmp_path / "model", params, config)


def test_load_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no such"):
        checkpoint.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a jmof checkpoint"):
        checkpoint.load(tmp_path / "empty")
    checkpoint.save_model(tmp_path / "gone", {"w": jnp.ones(2)}, Gone())
    monkeypatch.delattr(sys.modules[__name__], "Gone")
    with pytest.raises(ValueError, match="cannot be imported"):
        checkpoint.load(tmp_path / "gone")

    @dataclasses.dataclass(frozen=True)
    class Local:
        size: int = 1

    with pytest.raises(TypeError, match="module level"):
        checkpoint.save_model(tmp_path / "local", {"w": jnp.ones(2)}, Local())


def test_resume_after_sigkill(runs, tmp_path):
    """A process killed by SIGKILL (no handler runs, saves may be in flight) resumes exactly."""
    import signal
    import subprocess

    ckpt = tmp_path / "killed"
    script = f"""
import importlib.util, os, signal, sys
spec = importlib.util.spec_from_file_location("test_train", {str(__file__)!r})
t = importlib.util.module_from_spec(spec)
spec.loader.exec_module(t)

def killing_batches_fn(epoch):
    for i, batch in enumerate(t._batches_fn(epoch)):
        if (epoch, i) == (1, 5):  # step 12: after the save at step 12 was started
            os.kill(os.getpid(), signal.SIGKILL)
        yield batch

t._fit({str(ckpt)!r}, batches_fn=killing_batches_fn)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    resumed = _fit(ckpt)
    _assert_trees_equal(runs["a"].state, resumed.state)
    _assert_trees_equal(runs["a"].best_params, resumed.best_params)
    steps = [r["step"] for r in _log(ckpt)]
    assert steps == sorted(set(steps))


def test_caller_key_and_params_survive_training():
    """A step donates its state: the caller's key and params must stay usable, with fit and
    with init_state plus a donating jitted step."""
    key = jax.random.key(3)
    params = MODEL.init(jax.random.key(0), X[:1])
    train.fit(
        _loss_fn, params, _batches_fn, optimizer=_optimizer(), n_epochs=1, key=key, progress=False
    )
    with jax.debug_nans(False):  # NaN checking keeps the donated buffers alive
        state = train.init_state(params, _optimizer(), key)
        step = jax.jit(train.train_step_fn(_loss_fn, _optimizer()), donate_argnums=0)
        state, _ = step(state, next(_batches_fn(0)))
    assert jax.random.normal(key, ()).shape == ()  # "Array has been deleted" if it was donated
    assert np.isfinite(np.asarray(jax.tree.leaves(params)[0])).all()
