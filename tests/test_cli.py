"""The jmof command: info, graph, data coremof, JSON output, errors without tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jmof.cli import main

STRUCTURES = Path(__file__).parent / "data" / "structures"


@pytest.fixture(scope="module")
def mof_cif(coremof_cif_dir):
    return coremof_cif_dir / "ABAVIJ_clean.cif"


def test_info_json_matches_pymatgen(mof_cif, capsys):
    from pymatgen.core import Structure

    assert main(["info", str(mof_cif), "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    structure = Structure.from_file(mof_cif)
    assert record["valid"] == "ok"
    assert record["n_atoms"] == len(structure)
    assert record["density_g_cm3"] == pytest.approx(structure.density, rel=1e-4)
    np.testing.assert_allclose(record["abc_A"], structure.lattice.abc, atol=1e-3)
    np.testing.assert_allclose(record["angles_deg"], structure.lattice.angles, atol=1e-2)


def test_info_reports_invalid_files_with_exit_code(capsys):
    assert main(["info", str(STRUCTURES / "overlap.cif"), "--json"]) == 1
    (record,) = json.loads(capsys.readouterr().out)
    assert record["valid"].startswith("invalid:")


def test_graph_json_matches_ase(mof_cif, capsys):
    from ase.io import read as ase_read
    from ase.neighborlist import neighbor_list

    assert main(["graph", str(mof_cif), "--cutoff", "6", "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    i, d = neighbor_list("id", ase_read(mof_cif), 6.0)
    assert record["n_edges"] == len(i)
    assert record["min_distance_A"] == pytest.approx(d.min(), abs=1e-4)
    assert record["neighbours_mean"] == pytest.approx(len(i) / record["n_atoms"], abs=1e-3)


def test_errors_are_one_line_without_traceback(tmp_path, capsys):
    missing = tmp_path / "missing.cif"
    assert main(["graph", str(missing)]) == 1
    err = capsys.readouterr().err
    assert "missing.cif" in err and "Traceback" not in err
    assert main(["graph", str(STRUCTURES / "empty.cif")]) == 1
    err = capsys.readouterr().err
    assert "empty.cif" in err and "Traceback" not in err
    assert main(["graph", str(STRUCTURES / "bom.cif"), "--cutoff", "-1"]) == 1
    assert "--cutoff" in capsys.readouterr().err
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err
    assert "No such command" in err and "Traceback" not in err


def test_data_coremof_report(tmp_path, capsys):
    out = tmp_path / "report"
    assert (
        main(
            [
                "data",
                "coremof",
                "--subset",
                "2019-ASR",
                "--limit",
                "40",
                "--report",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["structures"] + summary["failures"] == 40
    assert (out / "dataset.png").stat().st_size > 10_000
    assert json.loads((out / "report.json").read_text())["structures"] == summary["structures"]
    lines = (out / "failures.csv").read_text().splitlines()
    assert len(lines) == summary["failures"] + 1
    assert summary["padding"]["node_overhead"] >= 1.0


def test_family_commands_from_entry_points(monkeypatch, capsys):
    import typer

    import jmof.cli as cli

    family = typer.Typer()

    @family.command()
    def hello(name: str):
        print(f"hello {name}")

    class EntryPoint:
        name, value = "family", "family.cli:app"

        def load(self):
            return family

    monkeypatch.setattr(
        cli, "entry_points", lambda group: [EntryPoint()] if group == cli.ENTRY_POINT_GROUP else []
    )
    assert main(["family", "hello", "MOF"]) == 0
    assert capsys.readouterr().out.strip() == "hello MOF"
