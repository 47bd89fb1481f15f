"""Training potentials on labelled configurations: distillation of a teacher into a student.

    dataset = jmof.data.labelled.read_extxyz("experiments/data/mil53-sevennet-0.extxyz")
    student = distill(dataset, out_dir="runs/mil53", config=NequIPConfig(channels=16, ...))
    student.metrics["test"]          # energy meV/atom, forces meV/Å, stress GPa MAE
    calc = student.calculator()      # an ASE calculator (potentials.ase.JmofCalculator)

What :func:`distill` does:

1. Splits by name hash (``group`` keeps related configurations in one split), 80/10/10.
2. Fits the per-element energy shifts by least squares of the training energies on the
   composition, the energy scale to the training force RMS, and ``avg_num_neighbors`` to the
   mean number of neighbours within the cutoff (:func:`fit_statistics`).
3. Trains with :func:`jmof.train.fit` (Adam, cosine decay, EMA of the parameters, early
   stopping on the validation loss or another validation metric (``monitor``), orbax
   checkpoints that resume exactly) on
   ``w_E (ΔE/N)² + w_F |ΔF|² + w_S |Δσ|²`` (eV/atom, eV/Å, GPa).
4. Saves the best parameters with the config (``out_dir/model``, loadable by :func:`load`,
   ``potentials.ase.JmofCalculator`` and ``jmof.md``) and the test metrics
   (``out_dir/metrics.json``, parity plot ``out_dir/parity.png``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jmof import checkpoint, train
from jmof.data.batching import GraphLoader
from jmof.data.dataset import Dataset
from jmof.data.labelled import STRESS_KEYS, stress_array
from jmof.graph import radius_graph
from jmof.potential import EV_PER_A3_TO_GPA, energy_forces_stress
from jmof.structure import Crystal
from potentials.nequip import NequIPConfig

__all__ = [
    "LossWeights",
    "Potential",
    "distill",
    "evaluate",
    "fit_statistics",
    "load",
    "loss_fn",
    "predict",
]

TARGETS = ("energy",) + STRESS_KEYS
# What ``distill(monitor=)`` can select on: the loss and the validation metrics of loss_fn.
MONITORS = ("loss", "mae_forces_meV_A", "rmse_forces_meV_A", "mae_energy_meV_atom",
            "mae_stress_GPa")  # fmt: skip
MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoints"


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """Weights of the squared errors: energy per atom (eV/atom)², forces (eV/Å)² per
    component, stress (GPa)² per component. The defaults make the three terms comparable at
    typical distillation errors (2 meV/atom, 30 meV/Å, 0.1 GPa)."""

    energy: float = 100.0
    forces: float = 1.0
    stress: float = 0.01


@dataclasses.dataclass
class Potential:
    """A trained potential: its config (which builds the model) and parameters."""

    config: NequIPConfig
    params: dict
    metrics: dict | None = None

    def energy_forces_stress(self, crystals: Sequence[Crystal]):
        """(energy [n] eV, forces list of [n_atoms, 3] eV/Å, stress [n, 3, 3] eV/Å³)."""
        return predict(self.config, self.params, crystals)

    def calculator(self):
        from potentials.ase import JmofCalculator

        return JmofCalculator(self)

    def astype(self, dtype: str) -> Potential:
        """The same potential computing in ``dtype`` ("float32" or "float64"; float64 needs
        ``jax_enable_x64``): config dtype replaced, parameters cast."""
        config = dataclasses.replace(self.config, dtype=str(dtype))
        params = jax.tree.map(lambda x: jnp.asarray(x, jnp.dtype(dtype)), self.params)
        return Potential(config, params, self.metrics)


# --- statistics --------------------------------------------------------------------------------


def fit_statistics(dataset: Dataset, elements: Sequence[int], cutoff: float) -> dict:
    """Per-element energy shifts, force RMS and mean neighbour count of a training set.

    Returns ``{"atomic_energies": tuple (eV, per element), "scale": float (eV/Å, force RMS),
    "avg_num_neighbors": float}``. The shifts solve ``min Σ_k (E_k - Σ_Z n_kZ e_Z)²`` (with a
    tiny ridge so that elements the data cannot tell apart get the same share).
    """
    elements = list(elements)
    counts = np.zeros((len(dataset), len(elements)))
    index = {z: i for i, z in enumerate(elements)}
    for k, crystal in enumerate(dataset.crystals):
        for z, c in zip(*np.unique(crystal.species, return_counts=True), strict=True):
            if int(z) not in index:
                raise ValueError(f"{dataset.names[k]}: element {z} not in the model's elements")
            counts[k, index[int(z)]] = c
    energy = dataset.targets["energy"]
    present = np.isfinite(energy)
    a, b = counts[present], energy[present]
    ridge = 1e-8 * np.trace(a.T @ a) / max(len(elements), 1)
    shifts = np.linalg.solve(a.T @ a + ridge * np.eye(len(elements)), a.T @ b)
    forces = np.concatenate([f.reshape(-1) for f in dataset.node_targets["forces"]])
    forces = forces[np.isfinite(forces)]
    scale = float(np.sqrt(np.mean(forces**2))) if forces.size else 1.0
    neighbors = [len(radius_graph(c, cutoff).senders) / c.n_atoms for c in dataset.crystals]
    return {
        "atomic_energies": tuple(float(e) for e in shifts),
        "scale": max(scale, 1e-3),
        "avg_num_neighbors": float(np.mean(neighbors)),
    }


def _resumed_statistics(ckpt_dir: Path, config_type: type, stats: dict) -> dict:
    """The fitted statistics stored with the run in ``ckpt_dir``, or {} for a new run.

    A resumed run keeps the statistics it started with: the least-squares energy shifts of
    elements that always come in the same ratio (H and Al in MIL-53) are fixed only by the
    ridge, and another machine's linear algebra gives them in other last digits, which made
    the stored config differ from the refitted one and refused the resume."""
    if not ckpt_dir.is_dir():
        return {}
    try:
        stored, _ = checkpoint.load(ckpt_dir)
    except ValueError:  # not a checkpoint yet: jmof.train.fit says what is wrong with it
        return {}
    if not isinstance(stored, config_type):
        return {}
    return {name: getattr(stored, name) for name in stats}


# --- loss --------------------------------------------------------------------------------------


def _errors(pred, batch):
    """Masked errors of a batch: (ΔE/N [G], mask), (ΔF [N,3], mask), (Δσ GPa [G,9], mask)."""
    graph = batch.graph
    real = jnp.asarray(graph.graph_mask)
    targets, mask = jnp.asarray(batch.targets), jnp.asarray(batch.target_mask)
    n_atoms = jnp.maximum(jnp.asarray(graph.n_node), 1)
    de = (pred.energy - targets[:, 0]) / n_atoms
    de_mask = mask[:, 0] & real
    df = pred.forces - jnp.asarray(batch.node_targets["forces"])
    df_mask = jnp.asarray(batch.node_target_mask["forces"]) & jnp.asarray(graph.node_mask)
    n_graph = pred.stress.shape[0]
    ds = (pred.stress.reshape(n_graph, 9) - targets[:, 1:10]) * EV_PER_A3_TO_GPA
    ds_mask = jnp.all(mask[:, 1:10], axis=1) & real
    return (de, de_mask), (df, df_mask), (ds, ds_mask)


def _masked_mean(values, mask):
    mask = mask.reshape(mask.shape + (1,) * (values.ndim - mask.ndim))
    count = jnp.sum(jnp.broadcast_to(mask, values.shape))
    return jnp.sum(jnp.where(mask, values, 0.0)) / jnp.maximum(count, 1)


def loss_fn(config, weights: LossWeights = LossWeights()) -> Callable:
    """``loss(params, batch, key) -> (loss, metrics)`` for :func:`jmof.train.fit`; batches from a
    :class:`jmof.data.GraphLoader` with ``targets=TARGETS`` and ``node_targets=("forces",)``."""
    model = config.build()

    def loss(params, batch, key):
        del key
        pred = energy_forces_stress(model.apply, params, batch.graph, stress=weights.stress > 0)
        (de, me), (df, mf), (ds, ms) = _errors(pred, batch)
        mse_e, mse_f, mse_s = (
            _masked_mean(de**2, me),
            _masked_mean(df**2, mf),
            _masked_mean(ds**2, ms),
        )
        total = weights.energy * mse_e + weights.forces * mse_f + weights.stress * mse_s
        metrics = {
            "mae_energy_meV_atom": 1e3 * _masked_mean(jnp.abs(de), me),
            "mae_forces_meV_A": 1e3 * _masked_mean(jnp.abs(df), mf),
            "mae_stress_GPa": _masked_mean(jnp.abs(ds), ms),
            "rmse_forces_meV_A": 1e3 * jnp.sqrt(mse_f),
        }
        return total, metrics

    return loss


# --- prediction and evaluation ------------------------------------------------------------------


def predict(config, params, crystals: Sequence[Crystal], *, batch_nodes: int = 2048):
    """Energy [n] eV, forces (list of [n_atoms, 3] eV/Å) and stress [n, 3, 3] eV/Å³."""
    for k, crystal in enumerate(crystals):
        config.check_species(crystal.species, name=f"structure {k}")
    dataset = Dataset("predict", tuple(str(k) for k in range(len(crystals))), tuple(crystals))
    loader = GraphLoader(
        dataset, cutoff=config.cutoff, batch_nodes=batch_nodes, shuffle=False, tight=True
    )
    efs = _compiled(config)
    energy = np.zeros(len(crystals))
    stress = np.zeros((len(crystals), 3, 3))
    forces: list[np.ndarray | None] = [None] * len(crystals)
    for b in loader(0):
        out = efs(params, b.graph)
        e, f, s = (np.asarray(x) for x in out)
        offset = 0
        for g, k in enumerate(b.index):
            n = int(b.graph.n_node[g])
            if k >= 0:
                energy[k], stress[k] = e[g], s[g]
                forces[k] = f[offset : offset + n]
            offset += n
    return energy, forces, stress


@functools.lru_cache(maxsize=16)
def _compiled(config):
    """One jitted energy_forces_stress per config (configs are frozen, hence hashable; shapes
    are bucketed by the loader, so each compiles a few times at most)."""
    model = config.build()
    return jax.jit(lambda p, g: energy_forces_stress(model.apply, p, g))


def evaluate(config, params, dataset: Dataset) -> dict:
    """MAE and RMSE of energy (meV/atom), forces (meV/Å, per component) and stress (GPa, per
    component) on ``dataset``, plus the predictions for parity plots."""
    energy, forces, stress = predict(config, params, dataset.crystals)
    n_atoms = dataset.n_atoms
    e_err = (energy - dataset.targets["energy"]) / n_atoms
    f_ref = np.concatenate(dataset.node_targets["forces"])
    f_pred = np.concatenate(forces)
    s_ref = stress_array(dataset).reshape(len(dataset), 9) * EV_PER_A3_TO_GPA
    s_pred = stress.reshape(len(dataset), 9) * EV_PER_A3_TO_GPA

    def stats(err, scale):
        err = err[np.isfinite(err)]
        return {
            "mae": float(np.mean(np.abs(err)) * scale),
            "rmse": float(np.sqrt(np.mean(err**2)) * scale),
        }

    return {
        "n": len(dataset),
        "energy_meV_atom": stats(e_err, 1e3),
        "forces_meV_A": stats((f_pred - f_ref).reshape(-1), 1e3),
        "stress_GPa": stats((s_pred - s_ref).reshape(-1), 1.0),
        "predictions": {
            "energy_per_atom": (energy / n_atoms).tolist(),
            "energy_per_atom_ref": (dataset.targets["energy"] / n_atoms).tolist(),
            "forces": f_pred.reshape(-1).tolist(),
            "forces_ref": f_ref.reshape(-1).tolist(),
            "stress_GPa": s_pred.reshape(-1).tolist(),
            "stress_GPa_ref": s_ref.reshape(-1).tolist(),
        },
    }


# --- the workflow ---------------------------------------------------------------------------


def distill(
    dataset: Dataset,
    *,
    out_dir: str | Path,
    config: NequIPConfig | None = None,
    weights: LossWeights = LossWeights(),
    group: Callable[[str], str] | None = None,
    n_epochs: int = 200,
    batch_nodes: int = 1024,
    learning_rate: float = 5e-3,
    ema_decay: float | None = 0.99,
    patience: int | None = 50,
    monitor: str = "loss",
    seed: int = 0,
    progress: bool = True,
    plots: bool = True,
    stop_after_steps: int | None = None,
) -> Potential | None:
    """Train a student potential on teacher labels; see the module docstring.

    Args:
        dataset: labelled configurations (:func:`jmof.data.labelled.read_extxyz`).
        out_dir: where checkpoints, the model and metrics go; rerunning continues training.
        config: the student's architecture; its ``elements`` default to those of the data, and
            ``atomic_energies``, ``scale`` and ``avg_num_neighbors`` are fitted here.
        weights: loss weights.
        group: name -> group for the split (all configurations of a group in one split).
        n_epochs, batch_nodes, learning_rate, ema_decay, patience, seed: training settings.
        monitor: the validation metric that picks the saved parameters and drives
            ``patience`` (:func:`jmof.train.fit`): ``"loss"`` (the training loss, weighted as
            in ``weights``) or another of ``MONITORS`` (ValueError before training for any
            other name). Where the validation structures
            hold compositions the training set barely covers, their energy error can dominate
            the loss from the first epochs on while the forces keep improving: monitor a force
            metric there.
        stop_after_steps: train at most this many steps in this call (resumable chunks);
            returns None if training is not finished.

    Returns:
        The :class:`Potential` with its test metrics, or None (see ``stop_after_steps``).
    """
    if monitor not in MONITORS:
        raise ValueError(f"monitor {monitor!r}: choose one of {', '.join(MONITORS)}")
    out_dir = Path(out_dir)
    parts = dataset.split(group=group)
    train_set, val_set, test_set = parts["train"], parts["val"], parts["test"]
    if len(train_set) == 0 or len(val_set) == 0:
        raise ValueError(f"{dataset.source}: the train or validation split is empty")
    elements = sorted({int(z) for c in dataset.crystals for z in np.unique(c.species)})
    base = config or NequIPConfig(elements=tuple(elements))
    if config is not None and not set(elements) <= set(config.elements):
        base = dataclasses.replace(base, elements=tuple(elements), atomic_energies=None)
    stats = fit_statistics(train_set, base.elements, base.cutoff)
    stats = {**stats, **_resumed_statistics(out_dir / CHECKPOINT_DIR, type(base), stats)}
    config = dataclasses.replace(base, **stats)

    loader_args = dict(
        cutoff=config.cutoff, targets=TARGETS, node_targets=("forces",), batch_nodes=batch_nodes
    )
    train_loader = GraphLoader(train_set, seed=seed, **loader_args)
    val_loader = GraphLoader(val_set, shuffle=False, **loader_args)
    first = next(iter(train_loader(0)))
    key = jax.random.key(seed)
    params = jax.jit(config.build().init)(key, jax.tree.map(jnp.asarray, first.graph))
    steps = n_epochs * len(train_loader)
    schedule = optax.cosine_decay_schedule(learning_rate, max(steps, 1), alpha=0.01)
    optimizer = optax.chain(optax.clip_by_global_norm(10.0), optax.adam(schedule))
    result = train.fit(
        loss_fn(config, weights),
        params,
        train_loader,
        optimizer=optimizer,
        n_epochs=n_epochs,
        key=jax.random.fold_in(key, 1),
        val_batches_fn=lambda: val_loader(0),
        ckpt_dir=out_dir / CHECKPOINT_DIR,
        config=config,
        ema_decay=ema_decay,
        patience=patience,
        monitor=monitor,
        progress=progress,
        stop_after_steps=stop_after_steps,
    )
    if not result.complete:
        return None
    model_dir = out_dir / MODEL_DIR
    if not model_dir.exists():
        checkpoint.save_model(model_dir, result.best_params, config)
    metrics = {"n_train": len(train_set), "n_val": len(val_set), "history": result.history}
    if len(test_set):
        metrics["test"] = evaluate(config, result.best_params, test_set)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
    if plots and len(test_set):
        from potentials.plots import parity_plot

        parity_plot(metrics["test"], out_dir / "parity.png", title=dataset.source)
    return Potential(config, result.best_params, metrics)


#: Potentials shipped with jmof, by name (``load("sevennet-0")``).
PRETRAINED = {"sevennet-0": Path(__file__).parent / "pretrained" / "sevennet-0"}


def load(path: str | Path, dtype: str | None = None) -> Potential:
    """The potential saved by :func:`distill` (``out_dir`` or ``out_dir/model``), by
    ``jmof.checkpoint.save_model`` with a potential config, or shipped with jmof (a name in
    :data:`PRETRAINED`, e.g. "sevennet-0"), computing in ``dtype`` (default: as saved)."""
    if str(path) in PRETRAINED and not Path(path).exists():
        path = PRETRAINED[str(path)]
    path = Path(path)
    if (path / MODEL_DIR).is_dir():
        path = path / MODEL_DIR
    config, params = checkpoint.load(path)
    if not hasattr(config, "check_species") or not hasattr(config, "cutoff"):
        raise ValueError(f"{path}: not a potential (config is {type(config).__name__})")
    metrics = None
    if (path.parent / "metrics.json").is_file():
        metrics = json.loads((path.parent / "metrics.json").read_text())
    return Potential(config, params, metrics).astype(dtype or config.dtype)
