"""The torch teachers (optional [torch] extra): labels are cached, the stress follows ASE's
convention (checked against finite differences of the teacher's own energy)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sevenn")
pytest.importorskip("chgnet")

from jmof.data import coremof  # noqa: E402
from jmof.structure import Crystal  # noqa: E402
from potentials import teachers  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mil53_small():
    """MIL-53(Al) in its 38-atom cell (CoRE 2019-ASR SABWAU_SL)."""
    return coremof.load("2019-ASR", progress=False)["SABWAU_SL"]


@pytest.mark.parametrize("teacher", teachers.TEACHERS)
def test_teacher_stress_matches_its_energy_derivative(mil53_small, teacher, tmp_path, monkeypatch):
    monkeypatch.setenv("JMOF_CACHE", str(tmp_path))
    crystal = mil53_small
    h = 2e-3
    configs = [("start", crystal)]
    for sign in (1, -1):
        deform = np.eye(3)
        deform[0, 0] += sign * h
        configs.append(
            (
                f"x{sign}",
                Crystal(crystal.species, crystal.positions @ deform, crystal.cell @ deform),
            )
        )
    labels = teachers.label(configs, teacher, progress=False)
    energy = labels.targets["energy"]
    numeric = (energy[1] - energy[2]) / (2 * h) / crystal.volume
    assert labels.targets["stress_xx"][0] == pytest.approx(numeric, rel=0.05, abs=2e-4)
    forces = labels.node_targets["forces"][0]
    assert forces.shape == (crystal.n_atoms, 3) and np.abs(forces.sum(axis=0)).max() < 1e-3
    # A second call is served from the cache (no teacher is created).
    monkeypatch.setattr(teachers, "calculator", lambda name: pytest.fail("cache missed"))
    again = teachers.label(configs, teacher, progress=False)
    np.testing.assert_array_equal(again.targets["energy"], energy)
