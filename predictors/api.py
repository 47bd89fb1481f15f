"""The prediction workflow: train a CGCNN (ensemble) on a dataset, save it, load it, predict.

    model = predictors.fit(dataset, ["LCD", "PLD", "Has_OMS"], out_dir="runs/lcd", n_models=5)
    model = predictors.load("runs/lcd")             # from the checkpoint alone
    mean, std = predictors.predict(model, [jmof.read("my_mof.cif")])

A model is always an ensemble of ``n_models`` CGCNNs trained at once by ``vmap`` (one compiled
program); ``n_models=1`` is a single network, whose spread is zero. Unless ``kinds`` says
otherwise, a target whose training values are all 0 or 1 (e.g. ``Has_OMS``) is a classification
target and every other one a regression target.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jmof import checkpoint, train
from jmof.data import Dataset
from jmof.structure import Crystal
from predictors.cgcnn import CGCNNConfig, graph_loader, loss_fn, standardized_config
from predictors.ensemble import (
    EnsembleConfig,
    ensemble_loss_fn,
    ensemble_optimizer,
    init_ensemble,
    predict_ensemble,
)
from predictors.metrics import evaluate

MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoints"


@dataclasses.dataclass(frozen=True)
class Predictor:
    """A trained ensemble: its config (member config and size) and stacked params."""

    config: EnsembleConfig
    params: Any

    @property
    def targets(self) -> tuple[str, ...]:
        return self.config.model.targets

    @property
    def kinds(self) -> tuple[str, ...]:
        return self.config.model.kinds


def infer_kinds(values: np.ndarray) -> tuple[str, ...]:
    """``"classification"`` for columns whose present values are all 0 or 1, else regression.

    values: [n, T].
    """
    kinds = []
    for column in np.asarray(values, dtype=np.float64).T:
        present = column[np.isfinite(column)]
        binary = present.size > 0 and np.isin(present, (0.0, 1.0)).all()
        kinds.append("classification" if binary else "regression")
    return tuple(kinds)


def fit(
    dataset: Dataset,
    targets: Sequence[str],
    *,
    out_dir: str | Path,
    kinds: Sequence[str] | None = None,
    config: CGCNNConfig | None = None,
    n_models: int = 1,
    n_epochs: int = 100,
    batch_nodes: int = 4096,
    learning_rate: float = 1e-3,
    patience: int | None = 15,
    seed: int = 0,
    progress: bool = True,
    plots: bool = True,
    stop_after_steps: int | None = None,
    checkpoint_every: int = 1000,
) -> Predictor | None:
    """Train an ensemble of CGCNNs on the train split of ``dataset`` and evaluate it on the test
    split (splits by name hash, :func:`jmof.data.split_of`).

    Writes to ``out_dir``: ``checkpoints/`` (resumable training: rerunning the same call
    continues where it stopped), ``model/`` (the best params, loadable by :func:`load`),
    ``metrics.json`` (test metrics per target) and, with ``plots``, ``parity.png`` and
    ``learning_curve.png``.

    Args:
        dataset: crystals with targets.
        targets: names of the targets to learn (keys of ``dataset.targets``).
        out_dir: output directory.
        kinds: "regression"/"classification" per target; default from the values
          (:func:`infer_kinds`).
        config: architecture (its targets, kinds and standardisation are set here);
          default ``CGCNNConfig()`` (8 Å, 12 neighbours, 64 features, 3 convolutions).
        n_models: ensemble size K (trained at once by vmap).
        n_epochs, batch_nodes, learning_rate, patience, seed: training settings (Adam with a
          cosine decay, early stopping on the validation loss).
        progress: progress bars.
        plots: write PNG plots.
        stop_after_steps: train at most this many more steps in this call, checkpoint and
            return None if training is not finished (long runs in resumable chunks: call again
            with the same arguments to continue).
        checkpoint_every: save a checkpoint every this many steps (and at every epoch end), the
            most work an interruption can lose.
    """
    out_dir = Path(out_dir)
    targets = tuple(targets)
    parts = dataset.split()
    train_set, val_set = parts["train"], parts["val"]
    if len(train_set) == 0 or len(val_set) == 0:
        raise ValueError(f"{dataset.source}: the train or validation split is empty")
    values = train_set.target_array(targets)
    kinds = infer_kinds(values) if kinds is None else tuple(kinds)
    base = config or CGCNNConfig()
    member = dataclasses.replace(base, targets=targets, kinds=kinds, mean=None, std=None)
    member = standardized_config(member, values)
    ensemble = EnsembleConfig(model=member, n_members=n_models)

    train_loader = graph_loader(
        train_set, member, batch_nodes=batch_nodes, seed=seed, progress=progress
    )
    val_loader = graph_loader(
        val_set, member, batch_nodes=batch_nodes, shuffle=False, progress=progress
    )
    first = next(iter(train_loader(0)))
    key = jax.random.key(seed)
    params = init_ensemble(member, jax.random.split(key, n_models), first.graph)
    steps = n_epochs * len(train_loader)
    schedule = optax.cosine_decay_schedule(learning_rate, max(steps, 1), alpha=0.01)
    optimizer = ensemble_optimizer(optax.adam(schedule))
    result = train.fit(
        ensemble_loss_fn(loss_fn(member)),
        params,
        train_loader,
        optimizer=optimizer,
        n_epochs=n_epochs,
        key=jax.random.fold_in(key, 1),
        val_batches_fn=lambda: val_loader(0),
        ckpt_dir=out_dir / CHECKPOINT_DIR,
        config=ensemble,
        patience=patience,
        progress=progress,
        stop_after_steps=stop_after_steps,
        ckpt_every_steps=checkpoint_every,
    )
    if not result.complete:
        return None
    model_dir = out_dir / MODEL_DIR
    if not model_dir.exists():
        checkpoint.save_model(model_dir, result.best_params, ensemble)
    model = Predictor(ensemble, result.best_params)
    report = evaluate_split(model, parts["test"])
    report["history"] = result.history
    report["n_train"], report["n_val"] = len(train_set), len(val_set)
    (out_dir / "metrics.json").write_text(json.dumps(_jsonable(report), indent=1))
    if plots:
        from predictors.plots import learning_curve_plot, parity_plot

        parity_plot(report, out_dir / "parity.png")
        learning_curve_plot(result.history, out_dir / "learning_curve.png")
    return model


def load(path: str | Path) -> Predictor:
    """The model written by :func:`fit` (``out_dir`` or ``out_dir/model``), from the checkpoint
    alone (config and params)."""
    path = Path(path)
    if (path / MODEL_DIR).is_dir():
        path = path / MODEL_DIR
    config, params = checkpoint.load(path)
    if not isinstance(config, EnsembleConfig):
        raise ValueError(f"{path}: not a predictors model (config is {type(config).__name__})")
    return Predictor(config, jax.tree.map(jnp.asarray, params))


def combine(models: Sequence[Predictor]) -> Predictor:
    """One ensemble from separately trained models of the same member config (same targets,
    kinds, standardisation and architecture): members in the given order, spread over all.

    Training members one after another (or on different machines) and combining them gives the
    same kind of ensemble as ``fit(n_models=K)``; on a CPU whose cores are already busy with one
    model it is also faster (see BENCHMARKS.md).
    """
    if not models:
        raise ValueError("combine needs at least one model")
    member = models[0].config.model
    for k, m in enumerate(models):
        if m.config.model != member:
            raise ValueError(
                f"model {k} has a different member config than model 0: "
                f"{m.config.model} vs {member}"
            )
    params = jax.tree.map(lambda *xs: jnp.concatenate(xs), *(m.params for m in models))
    n_members = sum(m.config.n_members for m in models)
    return Predictor(EnsembleConfig(model=member, n_members=n_members), params)


def predict(
    model: Predictor, crystals: Sequence[Crystal], *, batch_nodes: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions for crystals: ``(mean, std)``, [n, T] each, in the targets' units
    (probability of class 1 for classification targets); ``std`` is the ensemble spread."""
    names = tuple(str(k) for k in range(len(crystals)))
    dataset = Dataset(source="predict", names=names, crystals=tuple(crystals))
    return _predict_dataset(model, dataset, batch_nodes=batch_nodes)


def _predict_dataset(model: Predictor, dataset: Dataset, *, batch_nodes: int = 4096):
    member = model.config.model
    loader = graph_loader(dataset, member, targets=(), batch_nodes=batch_nodes, shuffle=False)
    apply_fn = jax.jit(lambda params, graph: predict_ensemble(member, params, graph))
    n_targets = len(member.targets)
    mean = np.full((len(dataset), n_targets), np.nan)
    std = np.full((len(dataset), n_targets), np.nan)
    for batch in loader(0):
        m, s = apply_fn(model.params, batch.graph)
        real = batch.index >= 0
        mean[batch.index[real]] = np.asarray(m)[real]
        std[batch.index[real]] = np.asarray(s)[real]
    return mean, std


def evaluate_split(model: Predictor, dataset: Dataset) -> dict:
    """Test metrics of ``model`` on ``dataset``: per target MAE/R²/Spearman (regression) or
    ROC-AUC (classification), and Spearman ρ between the ensemble spread and the absolute error
    (does the spread rank errors?). Also the predictions, for plots."""
    start = time.perf_counter()
    mean, std = _predict_dataset(model, dataset)
    seconds = time.perf_counter() - start
    truth = dataset.target_array(model.targets)
    metrics = evaluate(truth, mean, model.kinds, model.targets)
    if model.config.n_members > 1:
        from predictors.metrics import spearman

        for t, name in enumerate(model.targets):
            if model.kinds[t] == "regression":
                metrics[name]["spread_error_spearman"] = spearman(
                    np.abs(mean[:, t] - truth[:, t]), std[:, t]
                )
    return {
        "targets": model.targets,
        "kinds": model.kinds,
        "n_members": model.config.n_members,
        "n_test": len(dataset),
        "predict_s": seconds,
        "metrics": metrics,
        "truth": truth,
        "mean": mean,
        "std": std,
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return np.where(np.isfinite(value), value, None).tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
