"""Accuracy of distilled students against their teacher (issue 5).

    python experiments/bench_potential_accuracy.py --set mil53 --model nequip [--budget-steps N]
    python experiments/bench_potential_accuracy.py --set general --model nequip
    python experiments/bench_potential_accuracy.py --set mil53-md --teacher sevennet-0-jax \
        --channels 32 --l-max 2 --layers 2        # a larger student: run nequip-c32-l2-n2
    python experiments/bench_potential_accuracy.py --set general --teacher sevennet-0-jax \
        --energy-weight 1 --train-fraction 0.5 --epochs 120   # half the training MOFs
    python experiments/bench_potential_accuracy.py --learning-curve nequip-e1

``--train-fraction F`` keeps a nested fraction of the training MOFs (validation and test
unchanged; scale ``--epochs`` by 1/F to train the same number of steps), and
``--learning-curve VARIANT`` fits the test force MAE of those runs against the number of
training MOFs (a power law, extrapolated to the issue's 80 meV/Å) and plots it.

``mil53`` (system-specific student): ``experiments/data/mil53-sevennet-0.extxyz`` (built by
``build_potential_data.py --set mil53``), split by frame, test on held-out frames (MD
snapshots, rattled and strained cells of the same MOF), reported for all test frames and for
the test frames that are MD snapshots. ``mil53-md`` (``--teacher sevennet-0-jax``): the larger
set of mostly MD snapshots, split by 50-step (250 fs) windows of each trajectory, so test
snapshots are not interleaved with training ones. ``general``: many CoRE MOFs, split by
structure, so the test MOFs were never seen in training; reported for all test MOFs and for
those made only of elements the training MOFs hold (``test_seen_elements``), and by how
many training MOFs hold the test MOF's rarest element (``test_by_rarest_element_groups``).

Students: ``nequip`` (2 layers, 16 channels, l_max 1, 5 Å) and ``mace`` (2 layers, 8 channels,
l_max 2, L = 1, correlation 2). Training runs in resumable chunks under
``experiments/runs/potential-<set>-<model>/`` (``--budget-steps``); a finished run writes
``experiments/results/potential_accuracy_<set>_<model>.json`` with test MAE/RMSE of energy
(meV/atom), forces (meV/Å) and stress (GPa), and the parity plot next to its checkpoints.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from _common import save

DATA = Path(__file__).parent / "data"
RUNS = Path(__file__).parent / "runs"


def student(
    model: str,
    elements,
    channels: int | None = None,
    l_max: int | None = None,
    layers: int | None = None,
    correlation: int | None = None,
):
    """The student configs; ``channels``, ``l_max``, ``layers`` and (MACE) ``correlation``
    override the defaults (NequIP 16 channels, l_max 1; MACE 8 channels, l_max 2, ν = 2; both
    2 layers)."""
    from potentials import MACEConfig, NequIPConfig

    if model == "nequip":
        return NequIPConfig(
            elements=elements,
            cutoff=5.0,
            n_layers=layers or 2,
            channels=channels or 16,
            l_max=l_max or 1,
        )
    return MACEConfig(
        elements=elements,
        cutoff=5.0,
        n_layers=layers or 2,
        channels=channels or 8,
        l_max=l_max or 2,
        hidden_l=1,
        correlation=correlation or 2,
        radial_hidden=(32, 32),
    )


def variant_name(
    model: str,
    channels=None,
    l_max=None,
    layers=None,
    correlation=None,
    energy_weight=None,
    train_fraction=None,
    monitor=None,
) -> str:
    """``nequip``, or with the overridden sizes, energy loss weight and fraction of the
    training groups, and the force-selected model: ``nequip-c32-l2-n3``, ``mace-c16-nu3``,
    ``nequip-e1``, ``nequip-e1-f0.25``, ``nequip-e1-mf``."""
    parts = [model]
    for prefix, value in (
        ("c", channels),
        ("l", l_max),
        ("n", layers),
        ("nu", correlation),
        ("e", energy_weight),
        ("f", train_fraction),
    ):
        if value is not None:
            parts.append(f"{prefix}{value:g}")
    if monitor == "forces":
        parts.append("mf")
    return "-".join(parts)


def subsample_training(dataset, fraction: float, group=None):
    """``dataset`` without the training groups (``Dataset.split``'s default split, by ``group``
    or by name) outside a ``fraction`` of them; validation and test are untouched. The kept
    groups are chosen by a second name hash, so a smaller fraction keeps a subset of what a
    larger one keeps: a learning curve in the amount of data."""
    from jmof.data import split_of

    key = group or (lambda name: name)
    keep = [
        k
        for k, name in enumerate(dataset.names)
        if split_of(key(name)) != "train"
        or split_of(key(name), (fraction, 0.0, 1.0 - fraction), salt="train-fraction") == "train"
    ]
    return dataset.take(keep)


# --monitor: the validation metric of distill(monitor=) that each choice selects on.
MONITOR_METRICS = {"loss": "loss", "forces": "mae_forces_meV_A"}


def selected_epoch(history: list[dict], monitor: str = "loss") -> int:
    """The epoch whose parameters ``distill`` saved: the first with the lowest validation
    loss (``monitor="loss"``) or force MAE (``"forces"``)."""
    values = [h["val"][MONITOR_METRICS[monitor]] for h in history]
    return values.index(min(values))


def by_structure(name: str) -> str:
    """Split group of a configuration of the general set: its MOF."""
    return name.split("/")[0]


def by_window(name: str, window_steps: int = 50) -> str:
    """Split group of an MD snapshot: its trajectory and 50-step window (frames every 5 fs of
    one window stay together, so no test snapshot sits between two training ones); other
    configurations are their own group."""
    structure, kind, index = name.split("/")
    if kind.startswith("md-"):
        return f"{structure}/{kind}/{int(index) // window_steps}"
    return name


def learning_curve(variant: str = "nequip-e1") -> dict:
    """The general student ``variant`` trained on nested fractions of the training MOFs
    (``--train-fraction``): test and best validation force MAE against the number of training
    MOFs, a power law ``MAE = a·N^b`` fitted through the test points, and the N at which it
    would reach the issue's 80 meV/Å. Each point records the steps it trained and the epoch
    whose parameters were tested (early stopping can end a run before its planned steps, so
    the steps are reported, not assumed). Writes
    ``results/potential_learning_curve_general_<variant>.json`` and ``.png``."""
    import json

    import numpy as np
    from _common import RESULTS

    from jmof.plotting import pyplot

    points = []
    for path in sorted(RESULTS.glob(f"potential_accuracy_general_{variant}*.json")):
        result = json.loads(path.read_text())
        suffix = result["model"][len(variant) :]
        if suffix and not suffix.startswith("-f"):
            continue  # another variant that shares the prefix
        fraction = result.get("train_fraction") or 1.0
        history = json.loads((RUNS / f"potential-general-{result['model']}" / "metrics.json")
                             .read_text())["history"]  # fmt: skip
        points.append({
            "train_fraction": fraction,
            "n_train_mofs": result.get("n_train_groups"),
            "n_train_configurations": result["n_train"],
            "steps": history[-1]["step"],
            "selected_epoch": selected_epoch(history, result.get("monitor", "loss")),
            "epochs_trained": len(history),
            "test_forces_meV_A": result["test"]["forces_meV_A"]["mae"],
            "test_energy_meV_atom": result["test"]["energy_meV_atom"]["mae"],
            "best_val_forces_meV_A": min(h["val"]["mae_forces_meV_A"] for h in history),
            "last_train_forces_meV_A": history[-1]["train"]["mae_forces_meV_A"],
        })  # fmt: skip
    if any(p["n_train_mofs"] is None for p in points):  # results written before the count was
        from jmof.data.labelled import read_extxyz

        dataset = read_extxyz(DATA / "general-sevennet-0-jax.extxyz")
        for p in points:
            part = subsample_training(dataset, p["train_fraction"], by_structure)
            train = part.split(group=by_structure)["train"]
            p["n_train_mofs"] = len({by_structure(n) for n in train.names})
    points.sort(key=lambda p: p["n_train_mofs"])
    n = np.array([p["n_train_mofs"] for p in points], float)
    summary = {"variant": variant, "points": points}
    if len(points) >= 2:
        for key in ("test_forces_meV_A", "best_val_forces_meV_A"):
            slope, intercept = np.polyfit(np.log(n), np.log([p[key] for p in points]), 1)
            summary[f"{key}_power_law"] = {
                "exponent": float(slope),
                "n_mofs_for_80": float(np.exp((np.log(80.0) - intercept) / slope))
                if slope < 0
                else None,
            }
    save(f"potential_learning_curve_general_{variant}", summary)

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for key, label, marker in (
        ("test_forces_meV_A", "test (28 unseen MOFs)", "o"),
        ("best_val_forces_meV_A", "validation, best epoch (23 MOFs)", "s"),
        ("last_train_forces_meV_A", "training, last epoch", "^"),
    ):
        ax.plot(n, [p[key] for p in points], marker=marker, label=label)
    for x, p in zip(n, points):
        ax.annotate(f"{p['steps']:,} steps", (x, p["test_forces_meV_A"]), fontsize=6,
                    textcoords="offset points", xytext=(4, 4))  # fmt: skip
    ax.axhline(80.0, color="grey", ls="--", lw=1, label="goal, 80 meV/Å")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training MOFs (5 configurations each)")
    ax.set_ylabel("force MAE (meV/Å)")
    ax.set_title(f"general student {variant}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = RESULTS / f"potential_learning_curve_general_{variant}.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
    return summary


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", choices=("mil53", "mil53-md", "general"))
    parser.add_argument(
        "--learning-curve",
        metavar="VARIANT",
        help="summarise the --train-fraction runs of a general student (e.g. nequip-e1)",
    )
    parser.add_argument("--model", choices=("nequip", "mace"), default="nequip")
    parser.add_argument("--teacher", default="sevennet-0")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--budget-steps", type=int, default=None)
    parser.add_argument("--channels", type=int, default=None, help="student width (run -c<N>)")
    parser.add_argument("--l-max", type=int, default=None, help="student l_max (run -l<L>)")
    parser.add_argument("--layers", type=int, default=None, help="interaction blocks (run -n<N>)")
    parser.add_argument("--correlation", type=int, default=None, help="MACE ν (run -nu<N>)")
    parser.add_argument(
        "--energy-weight",
        type=float,
        default=None,
        help="loss weight of the energy per atom, (eV/atom)^-2 (default 100; run -e<W>)",
    )
    parser.add_argument(
        "--train-fraction",
        type=float,
        default=None,
        help="train on this fraction of the training MOFs/frames; validation and test "
        "unchanged (run -f<F>; scale --epochs by 1/F for the same number of steps)",
    )
    parser.add_argument(
        "--monitor",
        choices=tuple(MONITOR_METRICS),
        default="loss",
        help="validation metric that picks the saved model and drives early stopping: the "
        "weighted loss, or the force MAE (run -mf)",
    )
    args = parser.parse_args()
    if args.learning_curve:
        learning_curve(args.learning_curve)
        return
    if args.set is None:
        parser.error("give --set (or --learning-curve VARIANT)")

    from jmof.data import enable_compilation_cache

    enable_compilation_cache()  # a resumed chunk reuses the programs earlier chunks compiled

    import numpy as np

    from jmof.data.labelled import read_extxyz
    from potentials import LossWeights, distill

    dataset = read_extxyz(DATA / f"{args.set}-{args.teacher}.extxyz")
    elements = tuple(sorted({int(z) for c in dataset.crystals for z in np.unique(c.species)}))
    if args.correlation and args.model != "mace":
        parser.error("--correlation is a MACE setting")
    config = student(args.model, elements, args.channels, args.l_max, args.layers, args.correlation)
    group = {"general": by_structure, "mil53-md": by_window}.get(args.set)
    if args.train_fraction is not None:
        if not 0.0 < args.train_fraction <= 1.0:
            parser.error("--train-fraction must be in (0, 1]")
        dataset = subsample_training(dataset, args.train_fraction, group)
    variant = variant_name(
        args.model,
        args.channels,
        args.l_max,
        args.layers,
        args.correlation,
        args.energy_weight,
        args.train_fraction,
        args.monitor,
    )
    weights = LossWeights()
    if args.energy_weight is not None:
        weights = dataclasses.replace(weights, energy=args.energy_weight)
    name = f"potential-{args.set}-{variant}"
    result = distill(
        dataset,
        out_dir=RUNS / name,
        config=config,
        weights=weights,
        group=group,
        n_epochs=args.epochs,
        batch_nodes=1024,
        monitor=MONITOR_METRICS[args.monitor],
        stop_after_steps=args.budget_steps,
    )
    if result is None:
        print(f"{name}: stopped after the step budget; run the same command to continue")
        return
    from potentials import evaluate

    test = dict(result.metrics["test"])
    test.pop("predictions")
    # The test frames that are MD snapshots (the "held-out MD snapshots").
    parts = dataset.split(group=group)
    train_set, test_set = parts["train"], parts["test"]
    md_frames = [k for k, n in enumerate(test_set.names) if "/md-" in n]
    test_md = None
    if md_frames:
        test_md = evaluate(result.config, result.params, test_set.take(md_frames))
        test_md.pop("predictions")
    # The test MOFs made only of elements the training set holds (the shifts and embeddings
    # of an element seen only in test are untrained; the general set has elements in one MOF).
    seen = {int(z) for c in train_set.crystals for z in np.unique(c.species)}
    seen_frames = [k for k, c in enumerate(test_set.crystals) if set(map(int, c.species)) <= seen]
    test_seen = None
    if seen_frames and len(seen_frames) < len(test_set):
        test_seen = evaluate(result.config, result.params, test_set.take(seen_frames))
        test_seen.pop("predictions")
        test_seen["n_frames"] = len(seen_frames)
    # By how many training groups (MOFs, for the general set) hold the test frame's rarest
    # element: what data a general student lacks.
    holders: dict[int, set] = {}
    for n, c in zip(train_set.names, train_set.crystals, strict=True):
        for z in np.unique(c.species):
            holders.setdefault(int(z), set()).add(group(n) if group else n)
    buckets = {}
    for k, c in enumerate(test_set.crystals):
        rarest = min(len(holders.get(int(z), ())) for z in np.unique(c.species))
        edges = ((20, "20+"), (5, "5-19"), (1, "1-4"), (0, "0"))
        label = next(b for lo, b in edges if rarest >= lo)
        buckets.setdefault(label, []).append(k)
    test_by_rarest = {}
    for label, frames in sorted(buckets.items()):
        test_by_rarest[label] = evaluate(result.config, result.params, test_set.take(frames))
        test_by_rarest[label].pop("predictions")
    # And by kind of configuration (md-300K, md-600K, rattle, ...).
    kinds = {}
    for k, n in enumerate(test_set.names):
        kinds.setdefault(n.split("/")[1] if n.count("/") == 2 else "other", []).append(k)
    test_by_kind = {}
    for kind, frames in sorted(kinds.items()):
        test_by_kind[kind] = evaluate(result.config, result.params, test_set.take(frames))
        test_by_kind[kind].pop("predictions")
    n_params = sum(int(np.size(x)) for x in __import__("jax").tree.leaves(result.params))
    save(
        f"potential_accuracy_{args.set}_{variant}",
        {
            "set": args.set,
            "model": variant,
            "config": {k: v for k, v in vars(result.config).items() if k != "atomic_energies"},
            "n_params": n_params,
            "loss_weights": dataclasses.asdict(weights),
            "n_train": result.metrics["n_train"],
            "train_fraction": args.train_fraction,
            "n_train_groups": len({group(n) if group else n for n in train_set.names}),
            "n_val": result.metrics["n_val"],
            "epochs_trained": len(result.metrics["history"]),
            "monitor": args.monitor,
            # The epoch whose parameters were saved and tested.
            "selected_epoch": selected_epoch(result.metrics["history"], args.monitor),
            "test": test,
            "test_md_snapshots": test_md,
            "test_seen_elements": test_seen,
            "test_by_rarest_element_groups": test_by_rarest,
            "test_by_kind": test_by_kind,
        },
    )
    print(f"{name}: {n_params} parameters, test {test}, MD snapshots {test_md}")
    if test_seen is not None:
        print(f"test MOFs with elements seen in training ({len(seen_frames)} frames): {test_seen}")


if __name__ == "__main__":
    main()
