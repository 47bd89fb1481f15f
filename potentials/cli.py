"""``jmof distill``: train a small student potential on teacher-labelled configurations.
Registered through the ``jmof.commands`` entry points (``jmof`` never imports this family)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jmof.cli import CLIError, _print_records


def distill(
    data: Annotated[
        list[Path], typer.Argument(help="extxyz files with energy, forces (and stress) labels.")
    ],
    out: Annotated[Path, typer.Option(help="Output directory (resumes if it holds a run).")],
    model: Annotated[str, typer.Option(help="Student architecture: nequip or mace.")] = "nequip",
    channels: Annotated[int, typer.Option(help="Channels per irrep.")] = 16,
    l_max: Annotated[int, typer.Option(help="Highest spherical-harmonic degree.")] = 1,
    layers: Annotated[int, typer.Option(help="Interaction blocks.")] = 2,
    cutoff: Annotated[float, typer.Option(help="Cutoff in Å.")] = 5.0,
    correlation: Annotated[
        int, typer.Option(help="MACE only: body order ν of the product basis.")
    ] = 3,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 200,
    batch_nodes: Annotated[int, typer.Option(help="Atoms per batch.")] = 1024,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate (Adam).")] = 5e-3,
    group_by_structure: Annotated[
        bool,
        typer.Option(
            help="Split by the part of each frame name before the first '/' (test on unseen "
            "structures) instead of by frame."
        ),
    ] = False,
    monitor: Annotated[
        str,
        typer.Option(
            help="Validation metric that picks the saved model and stops training early: loss, "
            "mae_forces_meV_A, rmse_forces_meV_A, mae_energy_meV_atom or mae_stress_GPa."
        ),
    ] = "loss",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print test metrics as JSON.")] = False,
):
    """Distil teacher labels into a NequIP or MACE student; writes checkpoints, the model,
    metrics and a parity plot. The model loads in potentials.ase.JmofCalculator and jmof.md.
    A rerun with the same --out resumes, loading the programs compiled by the interrupted run
    from jmof's compilation cache."""
    from jmof.data import enable_compilation_cache
    from jmof.data.labelled import read_extxyz
    from potentials import MACEConfig, NequIPConfig
    from potentials import distill as run
    from potentials.distill import MONITORS

    if monitor not in MONITORS:
        raise CLIError(f"--monitor {monitor!r}: choose one of {', '.join(MONITORS)}")
    if model not in ("nequip", "mace"):
        raise CLIError(f"--model {model!r}: choose nequip or mace")
    try:
        dataset = read_extxyz(data)
    except (FileNotFoundError, ValueError) as err:
        raise CLIError(str(err)) from err
    elements = tuple(sorted({int(z) for c in dataset.crystals for z in set(c.species.tolist())}))
    sizes = dict(elements=elements, channels=channels, l_max=l_max, n_layers=layers, cutoff=cutoff)
    if model == "mace":
        config = MACEConfig(**sizes, correlation=correlation, hidden_l=min(1, l_max))
    else:
        config = NequIPConfig(**sizes)
    enable_compilation_cache()
    group = (lambda name: name.split("/")[0]) if group_by_structure else None
    student = run(
        dataset,
        out_dir=out,
        config=config,
        group=group,
        n_epochs=epochs,
        batch_nodes=batch_nodes,
        learning_rate=learning_rate,
        monitor=monitor,
        seed=seed,
    )
    test = student.metrics.get("test")
    if test is None:
        raise CLIError("the test split is empty: nothing to report (use more configurations)")
    records = [
        {"quantity": name, "mae": test[name]["mae"], "rmse": test[name]["rmse"], "n": test["n"]}
        for name in ("energy_meV_atom", "forces_meV_A", "stress_GPa")
    ]
    _print_records(records, as_json)


def convert(
    source: Annotated[str, typer.Argument(help="What to convert: 'sevennet'.")],
    out: Annotated[Path, typer.Option(help="Output model directory (must not exist).")],
    model: Annotated[
        str, typer.Option(help="SevenNet checkpoint: a name shipped in sevenn or a .pth path.")
    ] = "7net-0",
    dtype: Annotated[str, typer.Option(help="float32 or float64.")] = "float32",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
):
    """Convert a pretrained potential into a jmof NequIP model directory (needs the [torch]
    extra for this step only). The result loads in potentials.load, JmofCalculator and
    jmof.md without torch."""
    if source != "sevennet":
        raise CLIError(f"unknown source {source!r}: only 'sevennet' converts")
    if out.exists():
        raise CLIError(f"{out}: already exists")
    from potentials.convert.sevennet import convert as run

    try:
        config, params = run(out, model=model, dtype=dtype)
    except (FileNotFoundError, ValueError, ImportError) as err:
        raise CLIError(str(err)) from err
    import jax
    import numpy as np

    n_params = sum(int(np.size(x)) for x in jax.tree.leaves(params))
    record = {
        "model": model,
        "out": str(out),
        "parameters": n_params,
        "elements": len(config.elements),
        "cutoff_A": config.cutoff,
        "irreps": config.irreps,
        "layers": config.n_layers,
    }
    _print_records([record], as_json)
