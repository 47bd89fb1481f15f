"""Graph-network accuracy on CoRE MOF 2019-ASR, next to the descriptor baselines (issue 4).

    python experiments/bench_predictor_accuracy.py --run single [--train-size 0] [--budget-steps N]
    python experiments/bench_predictor_accuracy.py --run ensemble        # K = 5, trained by vmap
    python experiments/bench_predictor_accuracy.py --run single --train-size 2000 --seed 1
    python experiments/bench_predictor_accuracy.py --combine --train-size 2000  # seeds 0-4
    python experiments/bench_predictor_accuracy.py --combine --members 3        # all, seeds 0-2
    python experiments/bench_predictor_accuracy.py --learning-curve      # all, then 5,000 … 500
    python experiments/bench_predictor_accuracy.py --summarize           # table of finished runs

Same data and split as ``bench_predictor_baselines.py``: every 2019-ASR structure that passes
validation, 80/10/10 by name hash; targets LCD, PLD, density (cm3_g), ASA_m2_g, AV_VF (regression)
and Has_OMS (classification). The graph network is ``predictors.fit`` with the default CGCNN
(8 Å, 12 nearest neighbours, 64 features, 3 convolutions), Adam with cosine decay, early
stopping on the validation loss. ``--train-size N`` trains on the first N training structures
of a fixed shuffled order (a learning-curve point; 0 = all). Every run trains for ``--epochs``
(default 15) epochs, or more on small training sets: at least ``MIN_PASSES`` structure passes
(30,000: 60 epochs at 500, 30 at 1,000, 15 at 2,000), so that a small set is not judged after a
few hundred optimiser steps.

Training is long on a 2-core CPU (about 30-40 structures/s), so a run trains in resumable chunks:
``--budget-steps`` stops after that many steps with a checkpoint under ``experiments/runs/`` and
the same command continues it. A finished run writes ``experiments/results/cgcnn_<run>.json``.

``--seed k`` trains a single network from another initialisation and batch order
(``predictors.fit(seed=k)``; run ``single-<size>-seed<k>``). ``--combine`` stacks the single
runs of seeds 0 … K-1 (``--members K``, default 5) at ``--train-size`` into one ensemble
(``predictors.combine``) and scores it on the test split, with the Spearman ρ between the
ensemble spread and the absolute error (``cgcnn_ensemble<K>-<size>.json``). On this 2-core
CPU five separate trainings take 1.5× less time than the vmapped ensemble
(``bench_predictor_speed.py``), so that is how the ensembles of the accuracy table are trained.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _common import RESULTS, save

TARGETS = ("LCD", "PLD", "cm3_g", "ASA_m2_g", "AV_VF", "Has_OMS")
KINDS = ("regression",) * 5 + ("classification",)
RUNS = Path(__file__).parent / "runs"
MIN_PASSES = 30_000
CURVE_SIZES = (0, 5000, 2000, 1000, 500)  # the full run first: it fills the main table


def epochs_for(train_size: int, epochs: int) -> int:
    """Epochs for a run on ``train_size`` structures (0 = all): ``epochs``, raised so that the run
    makes at least ``MIN_PASSES`` structure passes."""
    if not train_size:
        return epochs
    return max(epochs, -(-MIN_PASSES // train_size))


def run_name(kind: str, train_size: int, seed: int = 0) -> str:
    return f"{kind}-{train_size or 'all'}" + (f"-seed{seed}" if seed else "")


def load_dataset(train_size: int):
    """CoRE MOF 2019-ASR; with ``train_size`` the first N training structures of a fixed order,
    with the validation and test splits whole."""
    from jmof.data import coremof

    dataset = coremof.load("2019-ASR")
    if train_size:
        parts = dataset.split()
        order = np.random.default_rng(0).permutation(len(parts["train"]))[:train_size]
        keep = set(np.array(parts["train"].names)[order]) | set(parts["val"].names)
        keep |= set(parts["test"].names)
        dataset = dataset.take([k for k, n in enumerate(dataset.names) if n in keep])
    return dataset


def combine(train_size: int, n_members: int = 5) -> None:
    import predictors
    from predictors.api import _jsonable, evaluate_split

    names = [run_name("single", train_size, seed) for seed in range(n_members)]
    missing = [n for n in names if not (RUNS / n / "model").is_dir()]
    if missing:
        raise SystemExit(f"train these first (--run single --seed k): {missing}")
    model = predictors.combine([predictors.load(RUNS / n) for n in names])
    test = load_dataset(train_size).split()["test"]
    report = evaluate_split(model, test)
    name = f"ensemble{n_members}-{train_size or 'all'}"
    single = json.loads((RESULTS / f"cgcnn_{names[0]}.json").read_text())
    save(
        f"cgcnn_{name}",
        {
            "run": name,
            "members": names,
            "n_train": single["n_train"],
            "metrics": _jsonable(report["metrics"]),
        },
    )
    for target, m in report["metrics"].items():
        print(target, {k: round(v, 4) for k, v in m.items()})


def train(kind: str, train_size: int, epochs: int, budget_steps: int | None, seed: int = 0) -> None:
    """One run, resumable; the vmapped ensemble (5 members, 2-3 s per step on this CPU)
    checkpoints every 200 steps so that a killed session loses at most a few minutes."""
    import predictors

    dataset = load_dataset(train_size)
    name = run_name(kind, train_size, seed)
    model = predictors.fit(
        dataset,
        TARGETS,
        kinds=KINDS,
        out_dir=RUNS / name,
        n_models=5 if kind == "ensemble" else 1,
        n_epochs=epochs_for(train_size, epochs),
        stop_after_steps=budget_steps,
        seed=seed,
        checkpoint_every=200 if kind == "ensemble" else 1000,
    )
    if model is None:
        print(f"{name}: stopped after the step budget; run the same command to continue")
        return
    report = json.loads((RUNS / name / "metrics.json").read_text())
    save(
        f"cgcnn_{name}",
        {
            "run": name,
            "epochs": epochs_for(train_size, epochs),
            "epochs_trained": len(report["history"]),
            "n_train": report["n_train"],
            "metrics": report["metrics"],
        },
    )


def summarize() -> None:
    baselines = json.loads((RESULTS / "predictor_baselines.json").read_text())
    rows = {f"{r['family']} n={r['n_train']}": r["metrics"] for r in baselines["rows"]}
    for path in sorted(RESULTS.glob("cgcnn_*.json")):
        result = json.loads(path.read_text())
        rows[f"cgcnn {result['run']} n={result['n_train']}"] = result["metrics"]
    header = "| model | " + " | ".join(TARGETS) + " |"
    print(header)
    print("|---" * (len(TARGETS) + 1) + "|")
    for label, metrics in rows.items():
        cells = []
        for t in TARGETS:
            m = metrics[t]
            cells.append(
                f"AUC {m['roc_auc']:.3f}" if "roc_auc" in m else f"{m['mae']:.3g} / {m['r2']:.3f}"
            )
        print(f"| {label} | " + " | ".join(cells) + " |")
    plot_learning_curves(baselines)


def plot_learning_curves(baselines: dict) -> None:
    """Test MAE (ROC-AUC for Has_OMS) against training-set size, GBM and CGCNN, one panel per
    target: ``experiments/results/learning_curve.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = {"GBM (RACs + cell)": {}, "CGCNN (single, 15+ epochs)": {}}
    for row in baselines["rows"]:
        if row["family"] == "gbm":
            families["GBM (RACs + cell)"][row["n_train"]] = row["metrics"]
    for path in RESULTS.glob("cgcnn_single-*.json"):
        if "seed" in path.stem:  # other initialisations of a size: ensemble members
            continue
        result = json.loads(path.read_text())
        families["CGCNN (single, 15+ epochs)"][result["n_train"]] = result["metrics"]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    axes = axes.ravel()
    sizes_all = sorted({n for rows in families.values() for n in rows})
    for ax, target, kind in zip(axes, TARGETS, KINDS):
        key = "roc_auc" if kind == "classification" else "mae"
        for label, rows in families.items():
            sizes = sorted(rows)
            ax.plot(sizes, [rows[n][target][key] for n in sizes], "o-", label=label)
        ax.set_xscale("log")
        ax.set_xticks(sizes_all, [f"{n:,}" for n in sizes_all])
        ax.minorticks_off()
        ax.set_xlabel("training structures")
        ax.set_ylabel("test ROC-AUC" if key == "roc_auc" else "test MAE")
        ax.set_title(target)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "learning_curve.png", dpi=110)
    print(f"wrote {RESULTS / 'learning_curve.png'}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", choices=("single", "ensemble"))
    parser.add_argument("--train-size", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--learning-curve", action="store_true", help="single runs, all sizes")
    parser.add_argument("--budget-steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--combine", action="store_true", help="ensemble of seeds 0 … K-1")
    parser.add_argument("--members", type=int, default=5, help="K of --combine")
    parser.add_argument("--summarize", action="store_true")
    args = parser.parse_args()
    if args.run:
        train(args.run, args.train_size, args.epochs, args.budget_steps, args.seed)
    if args.combine:
        combine(args.train_size, args.members)
    if args.learning_curve:
        for size in CURVE_SIZES:
            if not (RESULTS / f"cgcnn_{run_name('single', size)}.json").exists():
                train("single", size, args.epochs, args.budget_steps)
    if args.summarize:
        summarize()


if __name__ == "__main__":
    main()
