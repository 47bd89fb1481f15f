"""``jmof train-predictor`` and ``jmof predict``: registered through the ``jmof.commands``
entry-point group, so that ``jmof`` itself never imports this family."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from jmof.cli import CLIError, _json_default, _print_records


def train_predictor(
    out: Annotated[Path, typer.Option(help="Output directory (resumes if it holds a run).")],
    data: Annotated[str, typer.Option(help="Dataset: coremof.")] = "coremof",
    subset: Annotated[str, typer.Option(help="CoRE MOF subset.")] = "2019-ASR",
    targets: Annotated[str, typer.Option(help="Comma-separated target names.")] = "LCD,PLD",
    limit: Annotated[int | None, typer.Option(help="Only the first N structures.")] = None,
    max_atoms: Annotated[int | None, typer.Option(help="Skip larger structures.")] = None,
    sample: Annotated[
        int | None, typer.Option(help="A deterministic sample of N structures (by name hash).")
    ] = None,
    n_models: Annotated[int, typer.Option(help="Ensemble size (trained at once).")] = 1,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 100,
    batch_nodes: Annotated[int, typer.Option(help="Atoms per batch.")] = 4096,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate (Adam).")] = 1e-3,
    features: Annotated[int, typer.Option(help="Atom feature width.")] = 64,
    n_conv: Annotated[int, typer.Option(help="Graph convolutions.")] = 3,
    cutoff: Annotated[float, typer.Option(help="Neighbour cutoff in Å.")] = 8.0,
    max_neighbors: Annotated[int, typer.Option(help="Nearest neighbours kept per atom.")] = 12,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    report: Annotated[
        Path | None, typer.Option(help="Append a Markdown section with the results to this file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print test metrics as JSON.")] = False,
):
    """Train a CGCNN (ensemble) on CoRE MOF targets; writes checkpoints, metrics and plots."""
    import predictors
    from jmof.data import coremof
    from predictors.cgcnn import CGCNNConfig

    if data != "coremof":
        raise CLIError(f"unknown dataset {data!r}; available: coremof")
    names = [t.strip() for t in targets.split(",") if t.strip()]
    dataset = coremof.load(subset, limit=limit, max_atoms=max_atoms)
    if sample is not None:
        dataset = dataset.sample(sample)
    unknown = sorted(set(names) - set(dataset.targets))
    if unknown:
        raise CLIError(
            f"unknown targets {unknown}; CoRE MOF {subset} has {sorted(dataset.targets)}"
        )
    config = CGCNNConfig(
        cutoff=cutoff, max_neighbors=max_neighbors, features=features, n_conv=n_conv
    )
    predictors.fit(
        dataset,
        names,
        out_dir=out,
        config=config,
        n_models=n_models,
        n_epochs=epochs,
        batch_nodes=batch_nodes,
        learning_rate=learning_rate,
        seed=seed,
    )
    results = json.loads((out / "metrics.json").read_text())
    records = [{"target": name, **values} for name, values in results["metrics"].items()]
    markdown = results_markdown(results, out, report.parent if report else out)
    (out / "report.md").write_text(markdown)
    if report is not None:
        with open(report, "a") as f:
            f.write("\n" + markdown)
    _print_records(records, as_json)


def results_markdown(results: dict, out: Path, relative_to: Path) -> str:
    """A Markdown section: data sizes, test metrics per target, parity and learning plots."""
    import os

    def link(name: str) -> str:
        return os.path.relpath(out / name, relative_to)

    lines = [
        f"## Graph network (CGCNN, ensemble of {results['n_members']})",
        "",
        f"Trained on {results['n_train']} structures (validation {results['n_val']}), tested on "
        f"{results['n_test']} (splits by name hash), {len(results['history'])} epochs.",
        "",
        "| target | test MAE | R² | ROC-AUC |",
        "|---|---:|---:|---:|",
    ]
    for name, m in results["metrics"].items():
        if "roc_auc" in m:
            lines.append(f"| {name} | | | {m['roc_auc']:.3f} |")
        else:
            lines.append(f"| {name} | {m['mae']:.4g} | {m['r2']:.3f} | |")
    lines += [
        "",
        f"![parity]({link('parity.png')})",
        "",
        f"![learning curve]({link('learning_curve.png')})",
        "",
    ]
    return "\n".join(lines)


def predict(
    model_dir: Annotated[Path, typer.Argument(help="Directory written by train-predictor.")],
    files: Annotated[list[Path], typer.Argument(help="Structure files.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON records.")] = False,
):
    """Predict with a trained model: values and ensemble spread per structure."""
    import predictors
    from jmof.structure import read

    model = predictors.load(model_dir)
    crystals = [read(path) for path in files]
    mean, std = predictors.predict(model, crystals)
    records = []
    for path, m, s in zip(files, mean, std):
        record = {"name": str(path)}
        for target, value, spread in zip(model.targets, m, s):
            record[target] = float(value)
            record[f"{target}_std"] = float(spread)
        records.append(record)
    if as_json:
        print(json.dumps(records, indent=1, default=_json_default))
    else:
        _print_records(records, False)
