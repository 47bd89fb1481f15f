"""The ``jmof`` command.

Every command that prints a table also takes ``--json`` and then prints the same records as JSON
on stdout (units in the keys). Errors go to stderr with exit code 1 and no traceback unless
``jmof --debug`` is given.

Families add sub-commands without ``jmof`` importing them: a package declares an entry point in
the group ``jmof.commands`` whose object is a ``typer.Typer`` (added as a command group) or a
plain function (added as one command), e.g. in its ``pyproject.toml``::

    [project.entry-points."jmof.commands"]
    train-predictor = "predictors.cli:train_predictor"
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

ENTRY_POINT_GROUP = "jmof.commands"
_MAX_WIDE_COLUMNS = 6  # a table with more columns is printed per record (field, value)
_MAX_TALL_RECORDS = 20  # ... unless there are so many records that one wide table is better


class CLIError(Exception):
    """An error for the person at the terminal: printed without a traceback."""


def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
):
    """Differentiable modelling of metal-organic frameworks and other porous materials."""


def _print_records(records: list[dict], as_json: bool, title: str | None = None) -> None:
    """Print records as a rich table, or as JSON (one list) on stdout."""
    if as_json:
        print(json.dumps(records, indent=1, default=_json_default))
        return
    if not records:
        return
    console = Console()
    columns = list(dict.fromkeys(k for r in records for k in r))
    if len(columns) > _MAX_WIDE_COLUMNS and len(records) <= _MAX_TALL_RECORDS:
        # Few records, many fields: one two-column table per record reads better.
        for record in records:
            console.print(f"[bold]{record.get('name', title or '')}[/bold]", highlight=False)
            table = Table(show_header=False)
            table.add_column("field", style="bold")
            table.add_column("value", overflow="fold")
            for column in columns:
                if column != "name":
                    table.add_row(column, _fmt(record.get(column, "")))
            console.print(table)
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column == "name")
    for record in records:
        table.add_row(*(_fmt(record.get(c, "")) for c in columns))
    console.print(table)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return " ".join(_fmt(v) for v in value)
    return str(value)


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value)}")


# --- jmof info ---------------------------------------------------------------------------------


def crystal_record(path: Path, *, disorder: str = "refuse") -> dict:
    """Formula, atoms, cell, density and validation result of one structure file."""
    import warnings

    import numpy as np

    from jmof.structure import StructureError, read

    record: dict = {"name": str(path)}
    status = "ok"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            crystal = read(path, disorder=disorder)
        except StructureError as err:
            status = "invalid: " + _reason(err, path)
            try:  # still describe what could be parsed
                crystal = read(path, disorder=disorder, validate=False)
            except StructureError:
                crystal = None
    record["valid"] = status
    record["warnings"] = [str(w.message) for w in caught]
    if crystal is not None:
        cell = np.asarray(crystal.cell, dtype=np.float64)
        lengths = np.linalg.norm(cell, axis=1)
        record.update(
            formula=crystal.formula,
            n_atoms=crystal.n_atoms,
            abc_A=[round(float(x), 4) for x in lengths],
            angles_deg=[round(float(x), 3) for x in _angles(cell)],
            volume_A3=round(crystal.volume, 3),
            density_g_cm3=round(crystal.density, 5) if crystal.volume > 0 else None,
        )
    return record


def _reason(err: Exception, path: Path) -> str:
    message = str(err)
    prefix = f"{path.name}: "
    return message.split(prefix, 1)[1] if prefix in message else message


def _angles(cell) -> list[float]:
    import numpy as np

    a, b, c = cell
    out = []
    for u, v in ((b, c), (a, c), (a, b)):
        denominator = np.linalg.norm(u) * np.linalg.norm(v)
        out.append(
            float(np.degrees(np.arccos(np.clip(u @ v / denominator, -1, 1))))
            if denominator
            else float("nan")
        )
    return out


def info(
    files: Annotated[
        list[Path], typer.Argument(help="Structure files (CIF, extxyz, POSCAR, ...).")
    ],
    disorder: Annotated[
        str, typer.Option(help="'refuse' or 'majority' for partial occupancy.")
    ] = "refuse",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON records.")] = False,
):
    """Formula, atoms, cell, density and validation result of structure files."""
    records = [crystal_record(path, disorder=disorder) for path in files]
    if as_json:
        _print_records(records, as_json=True)
    else:
        # Reasons and warnings are sentences: listed under the table rather than squeezed in it.
        table = [
            {k: ("ok" if v == "ok" else "INVALID") if k == "valid" else v for k, v in r.items()}
            for r in records
        ]
        _print_records([{k: v for k, v in r.items() if k != "warnings"} for r in table], False)
        console = Console()
        for r in records:
            if r["valid"] != "ok":
                console.print(f"[red]{r['name']}[/red]: {r['valid']}", highlight=False)
            for warning in r["warnings"]:
                console.print(f"[yellow]{r['name']}[/yellow]: warning: {warning}", highlight=False)
    if any(r["valid"] != "ok" for r in records):
        raise typer.Exit(1)


# --- jmof graph --------------------------------------------------------------------------------


def graph_record(path: Path, cutoff: float) -> dict:
    """Neighbour statistics of one structure at a cutoff."""
    import numpy as np

    from jmof.graph import host_edge_lengths, radius_graph
    from jmof.structure import read

    crystal = read(path)
    graph = radius_graph(crystal, cutoff)
    i, j = graph.senders, graph.receivers
    distances = host_edge_lengths(graph)
    degree = np.bincount(i, minlength=crystal.n_atoms)
    pairs = np.unique(np.stack([i, j], 1), axis=0, return_counts=True)[1] if len(i) else np.zeros(1)
    return {
        "name": str(path),
        "n_atoms": crystal.n_atoms,
        "cutoff_A": cutoff,
        "n_edges": int(len(i)),
        "neighbours_mean": round(float(degree.mean()), 3),
        "neighbours_min": int(degree.min()),
        "neighbours_max": int(degree.max()),
        "min_distance_A": round(float(distances.min()), 4) if len(i) else None,
        "self_image_edges": int((i == j).sum()),
        "max_images_per_pair": int(pairs.max()),
    }


def graph(
    files: Annotated[list[Path], typer.Argument(help="Structure files.")],
    cutoff: Annotated[float, typer.Option("--cutoff", "-r", help="Cutoff radius in Å.")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON records.")] = False,
):
    """Neighbour statistics of the periodic radius graph."""
    if not cutoff > 0:
        raise CLIError(f"--cutoff must be positive, got {cutoff}")
    _print_records([graph_record(path, cutoff) for path in files], as_json)


# --- jmof data coremof -------------------------------------------------------------------------


def data_coremof(
    subset: Annotated[str, typer.Option(help="2014, 2019-ASR or 2019-FSR.")] = "2019-ASR",
    limit: Annotated[int | None, typer.Option(help="Only the first N structures.")] = None,
    max_atoms: Annotated[int | None, typer.Option(help="Filter: at most this many atoms.")] = None,
    cutoff: Annotated[float, typer.Option(help="Graph cutoff in Å for the report.")] = 5.0,
    batch_nodes: Annotated[int, typer.Option(help="Node budget per batch for the report.")] = 4096,
    report: Annotated[
        Path | None, typer.Option(help="Write a report (Markdown, JSON, PNG) here.")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel parsing processes.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
):
    """Extract and parse a CoRE MOF subset into the cache and summarise it."""
    from jmof.data import coremof
    from jmof.data.report import dataset_summary, write_report

    dataset = coremof.load(subset, limit=limit, max_atoms=max_atoms, workers=workers)
    if report is not None:
        summary = write_report(dataset, report, cutoff=cutoff, batch_nodes=batch_nodes)
    else:
        summary = dataset_summary(dataset)
    if as_json:
        print(json.dumps(summary, indent=1, default=_json_default))
        return
    console = Console()
    console.print(
        f"[bold]CoRE MOF {subset}[/bold]: {summary['structures']} structures loaded, "
        f"{summary['failures']} left out; atoms per cell median {summary['atoms_median']}, "
        f"max {summary['atoms_max']}"
    )
    _print_records(
        [{"reason": r, "count": c} for r, c in summary["failure_table"]], False, title="left out"
    )
    if report is not None:
        console.print(f"report written to {report / 'report.md'}")


# --- entry points and main -------------------------------------------------------------------


def build_app() -> typer.Typer:
    """The ``jmof`` command: core commands plus those that installed families declare."""
    app = typer.Typer(
        name="jmof", no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False
    )
    app.callback()(_root)
    app.command()(info)
    app.command()(graph)
    from jmof.physics import cli as physics_cli

    for command in (physics_cli.grid, physics_cli.henry, physics_cli.geometry):
        app.command()(command)
    data_app = typer.Typer(help="Datasets: extract, parse, summarise.", no_args_is_help=True)
    data_app.command("coremof")(data_coremof)
    app.add_typer(data_app, name="data")
    _add_family_commands(app)
    return app


def _add_family_commands(app: typer.Typer) -> None:
    """Add the sub-commands that installed families declare in ``jmof.commands``."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as err:  # a broken family must not break the core CLI
            print(
                f"warning: jmof command {ep.name!r} from {ep.value} failed to load: {err}",
                file=sys.stderr,
            )
            continue
        if isinstance(obj, typer.Typer):
            app.add_typer(obj, name=ep.name)
        else:
            app.command(name=ep.name)(obj)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (errors are printed without traceback)."""
    from jmof.structure import StructureError

    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        result = build_app()(args=argv, standalone_mode=False)
    except typer.Exit as exit_:
        return exit_.exit_code
    except typer.Abort:
        return 130
    except typer.exceptions.TyperException as err:  # usage errors: message and usage line
        err.show()
        return getattr(err, "exit_code", 2)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    except (StructureError, CLIError, OSError, KeyError, ValueError) as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Exception as err:
        if debug:
            raise
        print(
            f"error: {type(err).__name__}: {err} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
