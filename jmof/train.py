"""One training loop for every model family: optax, orbax checkpoints with exact resume, a JSON
metrics log, a progress bar, early stopping and an exponential moving average (EMA) of params.

    result = jmof.train.fit(loss_fn, params, batches_fn, optimizer=optax.adamw(schedule),
                            n_epochs=100, key=jax.random.key(0), val_batches_fn=val_batches_fn,
                            ckpt_dir="runs/nequip", config=model_config, ema_decay=0.999)

Contracts for the functions passed in:

``loss_fn(params, batch, key) -> (loss, metrics)``
    ``loss`` is a ``[]`` scalar: the mean over the *real* items of the batch. A padded batch
    carries its own masks (a ``Graph`` has node and graph masks); the loss applies them so that
    padding contributes to neither the value nor the gradient. ``metrics`` is a dict of ``[]``
    scalars; an entry ``"weight"`` (e.g. the number of real graphs) weights the batch when metrics
    are averaged over batches, otherwise every batch counts the same. ``fit`` adds ``"loss"`` and,
    for training steps, ``"grad_norm"`` (global L2 norm of the gradient).
``batches_fn(epoch) -> iterable of batches``
    A deterministic function of the epoch: shuffle with your own key folded with the epoch,
    ``jax.random.fold_in(data_key, epoch)``. A resumed run calls it again and skips, without
    running the model, the batches it has already trained on.
``val_batches_fn() -> iterable of batches``
    The validation set, evaluated at the end of every epoch (with the EMA params when EMA is on).
    Its loss (or the metric named by ``monitor``) drives early stopping and the choice of the
    best params.

Exact resume: the checkpoint holds the whole ``TrainState`` (params, optimiser state, step, RNG
key data, EMA) and, as JSON, the data position ``(epoch, batch_index)``, the early-stopping
counters, the history and the partial sums of the metrics being averaged. Step ``n`` draws its key
as ``fold_in(key, n)``, so nothing random depends on where a run was interrupted. On CPU a run that
is stopped and resumed ends with params, EMA and optimiser state bitwise equal to the
uninterrupted run, and writes the same metrics log apart from the wall times.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from jmof.checkpoint import encode_config

__all__ = ["TrainState", "FitResult", "fit", "init_state", "train_step_fn"]

_FORMAT = "jmof.train/1"


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything a training step changes; orbax saves it whole.

    step: [] int32, optimiser steps taken so far.
    params: the model's params pytree.
    opt_state: the optimiser's state (schedules count inside it).
    ema_params: EMA of params (same tree as params), or None when EMA is off.
    key: PRNG key data ([2] uint32 for threefry). Training step n (counting from 1) gets
      ``fold_in(split(key)[0], n - 1)``; validation batch i gets ``fold_in(split(key)[1], i)``.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    ema_params: Any
    key: jax.Array


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What ``fit`` returns.

    state: the final TrainState.
    best_params: the params that were validated (EMA when EMA is on, else raw) at the epoch with
      the lowest validation loss; the final ones when there is no validation or no epoch has been
      validated yet.
    history: one dict per finished epoch: ``epoch``, ``step``, ``train`` and ``val`` metrics.
    stopped_early: whether early stopping ended the run.
    complete: False when ``stop_after_steps`` ended this call before training was over.
    """

    state: TrainState
    best_params: Any
    history: list[dict]
    stopped_early: bool
    complete: bool


def init_state(params: Any, optimizer: optax.GradientTransformation, key, *, ema: bool = False):
    """A step-0 TrainState holding its own copies of ``params`` and ``key`` (a step donates its
    input, so the caller's arrays must not be the state's buffers)."""
    params = jax.tree.map(_fresh, params)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=jax.tree.map(_fresh, optimizer.init(params)),
        ema_params=jax.tree.map(_fresh, params) if ema else None,
        key=_fresh(_key_parts(key)[0]),
    )


def train_step_fn(
    loss_fn: Callable,
    optimizer: optax.GradientTransformation,
    *,
    ema_decay: float | None = None,
    key_impl: str | None = None,
) -> Callable:
    """``train_step(state, batch) -> (state, metrics)``, one optimiser step (not yet jitted).

    key_impl: the PRNG implementation name of the key whose data ``state.key`` holds (e.g.
      "threefry2x32"); None when ``state.key`` is a legacy uint32 key, which is then used as is.

    EMA uses the warm-up of TensorFlow's ``ExponentialMovingAverage``: after update n,
    ``ema = d * ema + (1 - d) * params`` with ``d = min(ema_decay, (1 + n) / (10 + n))`` and ema
    starting as a copy of the initial params. Early averages therefore follow the params closely
    instead of being pulled towards the initial values, and ``ema_params`` can be used as they are
    at any step (no debiasing to apply when reading them).
    """
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def train_step(state: TrainState, batch) -> tuple[TrainState, dict]:
        train_key = jax.random.split(_wrap_key(state.key, key_impl))[0]
        (loss, aux), grads = grad_fn(state.params, batch, jax.random.fold_in(train_key, state.step))
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        step = state.step + 1
        ema = state.ema_params
        if ema_decay is not None:
            n = step.astype(jnp.float32)
            d = jnp.minimum(jnp.float32(ema_decay), (1 + n) / (10 + n))
            ema = jax.tree.map(lambda e, p: (d * e + (1 - d) * p).astype(e.dtype), ema, params)
        metrics = {**aux, "loss": loss, "grad_norm": optax.tree.norm(grads)}
        return TrainState(step, params, opt_state, ema, state.key), metrics

    return train_step


def fit(
    loss_fn: Callable,
    params: Any,
    batches_fn: Callable[[int], Iterable],
    *,
    optimizer: optax.GradientTransformation,
    n_epochs: int,
    key,
    val_batches_fn: Callable[[], Iterable] | None = None,
    ckpt_dir: str | os.PathLike | None = None,
    config: Any = None,
    ema_decay: float | None = None,
    patience: int | None = None,
    monitor: str = "loss",
    log_path: str | os.PathLike | None = None,
    ckpt_every_steps: int = 1000,
    log_every_steps: int = 50,
    keep: int = 2,
    progress: bool = True,
    stop_after_steps: int | None = None,
) -> FitResult:
    """Train ``params`` to minimise ``loss_fn`` over ``n_epochs`` epochs of ``batches_fn``.

    loss_fn, batches_fn, val_batches_fn: see the module docstring for their contracts.
    optimizer: any optax GradientTransformation; learning-rate schedules live inside it.
    key: ``jax.random.key(...)`` (stored as key data) or a legacy ``PRNGKey``.
    ckpt_dir: orbax CheckpointManager directory. If it holds a checkpoint, ``fit`` resumes from the
      latest one (its state and RNG win over ``params`` and ``key``). Saves happen every
      ``ckpt_every_steps`` steps, at the end of every epoch, when ``stop_after_steps`` is reached
      and on KeyboardInterrupt (which is then re-raised); the latest ``keep`` are kept. When there
      is validation each save also holds the best params as item ``best``.
    config: the model config (a frozen dataclass, see ``jmof.checkpoint``) or a JSON dict, stored
      in every checkpoint; TypeError before training if it cannot be stored as JSON. A resumed run
      given a different config raises ValueError.
    ema_decay: keep an EMA of params with this decay (e.g. 0.999); None for no EMA.
    patience: stop after this many epochs without a lower validation ``monitor``.
    monitor: the validation metric (lower is better) that picks the best params and drives
      ``patience``: ``"loss"`` or any key of ``loss_fn``'s metrics. A loss whose terms are
      weighted for training can select on a term it weights lightly (a potential's energy
      error on unseen compositions can dominate its validation loss while the forces still
      improve); then monitor the metric that matters, e.g. a force MAE. Stored in the
      checkpoint: a run resumes only with the same monitor.
    log_path: JSON-lines metrics log (default ``ckpt_dir/metrics.jsonl``): one object per
      ``log_every_steps`` steps and per epoch end with ``step``, ``epoch``, ``train`` (metrics
      averaged over the steps since the previous line), ``val`` (at epoch ends) and ``time_s``
      (training wall time). Lines past the resumed step (all lines when nothing is resumed)
      are dropped first.
    progress: show a rich progress bar (only when stdout is a terminal).
    stop_after_steps: run at most this many more steps, checkpoint, and return.

    A non-finite loss or gradient norm raises FloatingPointError naming the step; the checkpoints
    on disk are left as they were (none holds non-finite params).
    """
    _check_args(
        n_epochs, ema_decay, patience, val_batches_fn, ckpt_every_steps, log_every_steps, keep
    )
    if stop_after_steps is not None and stop_after_steps < 0:
        raise ValueError(f"stop_after_steps must be >= 0, got {stop_after_steps}")
    static_meta = {
        "format": _FORMAT,
        "config": encode_config(config),
        "ema": ema_decay is not None,
        "key_impl": _key_parts(key)[1],
        "monitor": monitor,
    }
    key_impl = static_meta["key_impl"]
    state = init_state(params, optimizer, key, ema=ema_decay is not None)
    train_step = jax.jit(
        train_step_fn(loss_fn, optimizer, ema_decay=ema_decay, key_impl=key_impl),
        donate_argnums=0,  # orbax copies arrays to the host before save() returns
    )
    eval_step = jax.jit(_eval_step_fn(loss_fn))

    def eval_params(s: TrainState):
        return s.ema_params if ema_decay is not None else s.params

    run, best, manager = _Run(), None, None
    if ckpt_dir is not None:
        ckpt_dir = os.path.abspath(os.fspath(ckpt_dir))
        manager = ocp.CheckpointManager(
            ckpt_dir,
            options=ocp.CheckpointManagerOptions(
                preservation_policy=ocp.checkpoint_managers.LatestN(n=keep), create=True
            ),
        )
        try:
            if manager.latest_step() is not None:
                state, run, best = _restore(manager, state, static_meta)
        except BaseException:
            manager.close()
            raise
        if log_path is None:
            log_path = os.path.join(ckpt_dir, "metrics.jsonl")
    log = _Log(log_path, run.step)
    val_key = jax.random.split(_wrap_key(state.key, key_impl))[1]
    stop_at = None if stop_after_steps is None else run.step + stop_after_steps
    pending: list[tuple[int, dict]] = []  # (step, metrics on the device) not yet drained
    clock = (time.perf_counter(), run.elapsed_s)

    def save(run: _Run) -> None:
        if manager is not None:
            run = dataclasses.replace(run, elapsed_s=_elapsed(clock))
            _save(manager, state, run, best, static_meta)

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
        disable=not (progress and sys.stdout.isatty()),
    )
    try:
        with bar:
            epoch_bar = bar.add_task("epoch", total=n_epochs, completed=run.epoch, loss="")
            step_bar = bar.add_task("step", total=None, loss="")
            while run.epoch < n_epochs and not run.stopped_early:
                if stop_at is not None and run.step >= stop_at:
                    break
                batches = batches_fn(run.epoch)
                total = len(batches) if hasattr(batches, "__len__") else None
                batches = iter(batches)
                _skip(batches, run.batch_index, run.epoch)
                bar.reset(step_bar, total=total, completed=run.batch_index)
                stopped, n_before = False, run.batch_index
                for batch, is_last in _lookahead(batches):
                    try:
                        new_state, metrics = train_step(state, batch)
                    except FloatingPointError as err:  # raised under jax_debug_nans
                        raise FloatingPointError(
                            f"non-finite value in training step {run.step + 1} (epoch "
                            f"{run.epoch}, batch {run.batch_index}): {err}"
                        ) from err
                    pending.append((run.step + 1, metrics))
                    # One assignment, so that KeyboardInterrupt sees state and position agree.
                    state, run = new_state, run.advanced()
                    bar.advance(step_bar)
                    if is_last:
                        break  # the epoch end below logs, validates and saves
                    if run.step % log_every_steps == 0:
                        run, pending = _drain(run, pending), []
                        bar.update(step_bar, loss=_loss_text(run.interval))
                        log.write(_record(run, None, clock))
                        run = dataclasses.replace(run, interval=_EMPTY)
                    if run.step % ckpt_every_steps == 0 or run.step == stop_at:
                        run, pending = _drain(run, pending), []
                        save(run)
                    if run.step == stop_at:
                        stopped = True
                        break
                if stopped:
                    break
                if run.batch_index == 0 and n_before == 0:
                    raise ValueError(f"batches_fn({run.epoch}) yielded no batches")

                run, pending = _drain(run, pending), []
                val = None
                if val_batches_fn is not None:
                    val = _validate(eval_step, eval_params(state), val_batches_fn(), val_key)
                log.write(_record(run, val, clock))
                if val is not None and monitor not in val:
                    raise KeyError(
                        f"monitor {monitor!r} is not a validation metric; have {sorted(val)}"
                    )
                improved = val is not None and (
                    run.best_loss is None or val[monitor] < run.best_loss
                )
                if improved:
                    best = jax.tree.map(jnp.copy, eval_params(state))  # the next step donates
                run = run.epoch_done(val, improved, patience, monitor)
                bar.update(epoch_bar, completed=run.epoch, loss=_loss_text(val, "val "))
                save(run)
    except KeyboardInterrupt:
        if manager is not None:
            try:
                run = _drain(run, [(s, m) for s, m in pending if s <= run.step])
                save(run)
            except Exception as err:  # the interrupt matters more than the save
                print(f"jmof.train: no checkpoint saved on interrupt: {err}", file=sys.stderr)
        raise
    finally:
        log.close()
        if manager is not None:
            manager.wait_until_finished()
            manager.close()
    return FitResult(
        state=state,
        best_params=best if best is not None else eval_params(state),
        history=list(run.history),
        stopped_early=run.stopped_early,
        complete=run.epoch >= n_epochs or run.stopped_early,
    )


# Host-side bookkeeping. Everything here is JSON, saved as the checkpoint's "meta" item.

_EMPTY = {"n": 0, "w": 0.0, "sums": {}}  # running weighted sums of metrics; never mutated


@dataclasses.dataclass(frozen=True)
class _Run:
    step: int = 0
    epoch: int = 0
    batch_index: int = 0  # batches of `epoch` already trained on
    best_loss: float | None = None  # the best validation value of the monitored metric
    best_epoch: int | None = None
    bad_epochs: int = 0  # epochs since the monitored validation metric last improved
    stopped_early: bool = False
    history: tuple = ()
    interval: dict = dataclasses.field(default_factory=lambda: _EMPTY)  # since the last log line
    epoch_acc: dict = dataclasses.field(default_factory=lambda: _EMPTY)  # since the epoch began
    elapsed_s: float = 0.0

    def advanced(self) -> _Run:
        return dataclasses.replace(self, step=self.step + 1, batch_index=self.batch_index + 1)

    def epoch_done(
        self, val: dict | None, improved: bool, patience: int | None, monitor: str = "loss"
    ) -> _Run:
        bad = 0 if improved or val is None else self.bad_epochs + 1
        entry = {"epoch": self.epoch, "step": self.step, "train": _mean(self.epoch_acc)}
        entry["val"] = val
        return dataclasses.replace(
            self,
            epoch=self.epoch + 1,
            batch_index=0,
            best_loss=val[monitor] if improved else self.best_loss,
            best_epoch=self.epoch if improved else self.best_epoch,
            bad_epochs=bad,
            stopped_early=patience is not None and bad >= patience,
            history=(*self.history, entry),
            interval=_EMPTY,
            epoch_acc=_EMPTY,
        )


def _acc_add(acc: dict, values: dict[str, float]) -> dict:
    w = values.get("weight", 1.0)
    sums = dict(acc["sums"])
    for name, v in values.items():
        if name != "weight":
            sums[name] = sums.get(name, 0.0) + w * v
    return {"n": acc["n"] + 1, "w": acc["w"] + w, "sums": sums}


def _mean(acc: dict) -> dict[str, float]:
    if acc["w"] == 0:
        return {}
    return {name: s / acc["w"] for name, s in acc["sums"].items()}


def _to_host(metrics: dict) -> dict[str, float]:
    out = {}
    for name, value in metrics.items():
        value = np.asarray(value)
        if value.ndim != 0:
            raise ValueError(
                f"metric {name!r} has shape {value.shape}; loss_fn metrics must be [] scalars"
            )
        out[name] = float(value)
    return out


def _drain(run: _Run, pending: list[tuple[int, dict]]) -> _Run:
    """Fetch pending metrics to the host, check them and add them to the running sums."""
    if not pending:
        return run
    interval, epoch_acc = run.interval, run.epoch_acc
    for step, metrics in zip(
        [s for s, _ in pending], jax.device_get([m for _, m in pending]), strict=True
    ):
        values = _to_host(metrics)
        for name in ("loss", "grad_norm"):
            if not math.isfinite(values[name]):
                batch = run.batch_index - (run.step - step) - 1
                raise FloatingPointError(
                    f"{name} is {values[name]} at step {step} (epoch {run.epoch}, batch "
                    f"{batch}); training stopped and no checkpoint was saved past the last good one"
                )
        interval, epoch_acc = _acc_add(interval, values), _acc_add(epoch_acc, values)
    return dataclasses.replace(run, interval=interval, epoch_acc=epoch_acc)


def _validate(eval_step: Callable, params: Any, batches: Iterable, key) -> dict[str, float]:
    outs = [eval_step(params, batch, jax.random.fold_in(key, i)) for i, batch in enumerate(batches)]
    if not outs:
        raise ValueError("val_batches_fn() yielded no batches")
    acc = _EMPTY
    for metrics in jax.device_get(outs):
        acc = _acc_add(acc, _to_host(metrics))
    return _mean(acc)


def _eval_step_fn(loss_fn: Callable) -> Callable:
    def eval_step(params, batch, key) -> dict:
        loss, aux = loss_fn(params, batch, key)
        return {**aux, "loss": loss}

    return eval_step


def _record(run: _Run, val: dict | None, clock) -> dict:
    record = {"step": run.step, "epoch": run.epoch, "train": _mean(run.interval)}
    if val is not None:
        record["val"] = val
    record["time_s"] = round(_elapsed(clock), 3)
    return record


class _Log:
    """Append-only JSON-lines log that never holds two lines for one step.

    Opening drops the lines past ``restored_step`` (written after the checkpoint being resumed);
    a line whose step was already written is skipped (the resumed run recomputes it identically).
    """

    def __init__(self, path: str | os.PathLike | None, restored_step: int):
        self.file, self.last_step = None, -1
        if path is None:
            return
        path = os.fspath(path)
        kept = []
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    try:
                        step = json.loads(line)["step"]
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by a crash
                    if step <= restored_step:
                        kept.append(line if line.endswith("\n") else line + "\n")
                        self.last_step = max(self.last_step, step)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            f.writelines(kept)
        os.replace(path + ".tmp", path)
        self.file = open(path, "a")  # closed by fit's finally

    def write(self, record: dict) -> None:
        if self.file is None or record["step"] <= self.last_step:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        self.last_step = record["step"]

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


# Checkpoints.


def _save(manager, state: TrainState, run: _Run, best, static_meta: dict) -> None:
    meta = {**static_meta, **dataclasses.asdict(run), "has_best": best is not None}
    items = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(meta)}
    if best is not None:
        items["best"] = ocp.args.StandardSave(best)
    if run.step in manager.all_steps():
        # Saved on interrupt before this epoch end was validated; replace it.
        manager.wait_until_finished()
        manager.delete(run.step)
    manager.save(run.step, args=ocp.args.Composite(**items), force=True)


def _restore(manager, state: TrainState, static_meta: dict):
    step = manager.latest_step()
    where = f"{manager.directory}/{step}"
    meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    if meta.get("format") != _FORMAT:
        raise ValueError(f"{where}: not a jmof.train checkpoint (format {meta.get('format')!r})")
    if meta["ema"] != static_meta["ema"]:
        raise ValueError(
            f"{where}: the run was trained {'with' if meta['ema'] else 'without'} EMA; resume it "
            f"{'with' if meta['ema'] else 'without'} ema_decay or start in a new ckpt_dir"
        )
    if meta["key_impl"] != static_meta["key_impl"]:
        raise ValueError(
            f"{where}: the run used PRNG {meta['key_impl']!r} keys, not "
            f"{static_meta['key_impl']!r}; pass the same kind of key to resume"
        )
    if meta.get("monitor", "loss") != static_meta["monitor"]:
        raise ValueError(
            f"{where}: the run selected its best params on {meta.get('monitor', 'loss')!r}, "
            f"not {static_meta['monitor']!r}; resume with the same monitor or start in a new "
            "ckpt_dir"
        )
    given = static_meta["config"]
    if given is not None and json.dumps(meta["config"], sort_keys=True) != json.dumps(
        given, sort_keys=True
    ):
        raise ValueError(
            f"{where}: the run was trained with config {meta['config']}, not {given}; "
            "resume with the same config or start in a new ckpt_dir"
        )
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    items = {"state": ocp.args.StandardRestore(abstract)}
    if meta["has_best"]:
        validated = state.ema_params if meta["ema"] else state.params
        items["best"] = ocp.args.StandardRestore(
            jax.tree.map(ocp.utils.to_shape_dtype_struct, validated)
        )
    try:
        restored = manager.restore(step, args=ocp.args.Composite(**items))
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{where}: the checkpoint does not match these params and optimiser: {err}"
        ) from err
    fields = {f.name: meta[f.name] for f in dataclasses.fields(_Run)}
    run = _Run(**{**fields, "history": tuple(meta["history"])})
    if int(restored.state.step) != run.step:
        raise ValueError(f"{where}: state.step {int(restored.state.step)} != meta step {run.step}")
    return restored.state, run, restored["best"] if meta["has_best"] else None


# Small helpers.


def _check_args(n_epochs, ema_decay, patience, val_batches_fn, ckpt_every, log_every, keep):
    if not isinstance(n_epochs, int) or n_epochs < 0:
        raise ValueError(f"n_epochs must be an int >= 0, got {n_epochs!r}")
    if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
    if patience is not None and (val_batches_fn is None or patience < 1):
        raise ValueError(f"patience={patience} needs val_batches_fn and must be >= 1")
    for name, value in [("ckpt_every_steps", ckpt_every), ("log_every_steps", log_every)]:
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")


def _fresh(x):
    """A strongly typed copy in its own buffer (weak types would change the compiled step)."""
    x = jnp.asarray(x)
    return jnp.array(x, dtype=x.dtype, copy=True)


def _key_parts(key) -> tuple[jax.Array, str | None]:
    """(key data, implementation name or None for a legacy uint32 key)."""
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key), str(jax.random.key_impl(key))
    key = jnp.asarray(key)
    if key.dtype != jnp.uint32:
        raise TypeError(f"key must be jax.random.key(...) or a uint32 PRNGKey, got {key.dtype}")
    return key, None


def _wrap_key(data, key_impl: str | None):
    return data if key_impl is None else jax.random.wrap_key_data(data, impl=key_impl)


def _skip(batches: Iterator, n: int, epoch: int) -> None:
    for i in range(n):
        if next(batches, _END) is _END:
            raise ValueError(
                f"batches_fn({epoch}) yielded {i} batches but the checkpoint had trained on {n}; "
                "batches_fn must be a deterministic function of the epoch"
            )


_END = object()


def _lookahead(batches: Iterator) -> Iterator[tuple[Any, bool]]:
    """Yield (batch, is_last), so that an epoch's last step is known before it is logged."""
    current = next(batches, _END)
    while current is not _END:
        following = next(batches, _END)
        yield current, following is _END
        current = following


def _elapsed(clock) -> float:
    start, before = clock
    return before + time.perf_counter() - start


def _loss_text(metrics: dict | None, prefix: str = "") -> str:
    if isinstance(metrics, dict) and "sums" in metrics:
        metrics = _mean(metrics)
    return f"{prefix}loss {metrics['loss']:.4g}" if metrics and "loss" in metrics else ""
