"""``jmof grid``, ``jmof henry`` and ``jmof geometry`` against the library they call."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

import jmof
from jmof.cli import main
from jmof.physics import geometry, grid, widom

CIF = Path(__file__).parents[1] / "data" / "griday" / "acs+N270+E33.cif"


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_grid_command_saves_what_energy_grid_computes(tmp_path, capsys):
    out, png = tmp_path / "g.npz", tmp_path / "slice.png"
    args = ["grid", str(CIF), "--guest", "Kr", "--spacing", "0.9", "--out", str(out)]
    assert main([*args, "--plot", str(png), "--json"]) == 0
    record = _json(capsys)[0]
    ref = grid.energy_grid(jmof.read(CIF), "Kr", spacing=0.9)
    saved = grid.EnergyGrid.load(out)
    assert saved.shape == ref.shape == tuple(record["shape"])
    assert np.allclose(np.asarray(saved.values), np.asarray(ref.values), rtol=1e-6)
    assert record["E_min_kJ_mol"] == pytest.approx(float(ref.values.min()) * 8.314462618e-3)
    assert png.stat().st_size > 10_000


def test_henry_command_matches_library(capsys):
    assert main(["henry", str(CIF), "--guest", "CH4", "--n", "2000", "--json"]) == 0
    record = _json(capsys)[0]
    ref = widom.henry_coefficient(jmof.read(CIF), "CH4", 298.0, n_insertions=2000,
                                  key=jax.random.key(0))  # fmt: skip
    assert record["K_H_mol_kg_Pa"] == pytest.approx(ref.henry, rel=1e-6)
    assert record["q_st_kJ_mol"] == pytest.approx(ref.heat, rel=1e-6)


def test_henry_command_several_guests_in_one_pass(capsys):
    assert main(["henry", str(CIF), "--guest", "CH4,Xe", "--n", "2000", "--json"]) == 0
    records = _json(capsys)
    assert [r["guest"] for r in records] == ["CH4", "Xe"]
    ref = widom.henry_coefficient(jmof.read(CIF), "Xe", 298.0, n_insertions=2000,
                                  key=jax.random.key(0))  # fmt: skip
    assert records[1]["K_H_mol_kg_Pa"] == pytest.approx(ref.henry, rel=1e-5)


def test_geometry_command_on_simple_cubic(tmp_path, capsys):
    path = tmp_path / "sc.cif"
    jmof.write(path, jmof.Crystal(np.array([30]), np.zeros((1, 3)), np.eye(3) * 8.0))
    assert main(["geometry", str(path), "--spacing", "0.2", "--no-helium", "--json"]) == 0
    record = _json(capsys)[0]
    r = geometry.ccdc_radii()[30]
    assert record["LCD_A"] == pytest.approx(2 * (8.0 * np.sqrt(3) / 2 - r), abs=1e-3)
    assert record["PLD_A"] == pytest.approx(2 * (8.0 / np.sqrt(2) - r), abs=0.3)
    assert "He_VF" not in record


def test_physics_command_errors(capsys):
    assert main(["henry", str(CIF), "--guest", "SF6"]) == 1
    assert "unknown guest" in capsys.readouterr().err
    assert main(["grid", str(CIF), "--guest", "CO2"]) == 1
    assert "single-site probe" in capsys.readouterr().err
    assert main(["geometry", str(CIF), "--spacing", "0"]) == 1
    assert main(["henry", "missing.cif"]) == 1
