"""Distillation end to end without torch: a NequIP student learns Lennard-Jones labels (an
analytic teacher), is saved, reloaded, and drives ASE; the statistics fit recovers known
per-element energies."""

from __future__ import annotations

import json

import ase.optimize
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jmof.data.dataset import Dataset
from jmof.data.labelled import STRESS_KEYS, read_extxyz, write_extxyz
from jmof.graph import batch, radius_graph
from jmof.potential import LennardJones, energy_forces_stress
from jmof.structure import Crystal
from potentials import NequIPConfig, distill, load, predict
from potentials.ase import JmofCalculator
from potentials.distill import fit_statistics

CUTOFF = 4.0
TEACHER = LennardJones(cutoff=CUTOFF)
FCC = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])


def _labelled(n=48, seed=0) -> Dataset:
    """Rattled and strained 8-atom Ar/Kr fcc cells labelled by Lennard-Jones (float64)."""
    rng = np.random.default_rng(seed)
    params = TEACHER.params({18: (0.0104, 3.40), 36: (0.014, 3.65)})
    names, crystals, energies, stresses, forces = [], [], [], [], []
    for k in range(n):
        a = 5.4 * (1 + rng.uniform(-0.03, 0.03))
        base = Crystal(np.array([18, 18, 36, 18]), FCC * a, np.eye(3) * a).repeat((2, 1, 1))
        strain = np.eye(3) + 0.02 * rng.normal(size=(3, 3))
        positions = base.positions @ strain + rng.normal(0, 0.08, (base.n_atoms, 3))
        crystal = Crystal(base.species, positions, base.cell @ strain)
        graph = jax.tree.map(jnp.asarray, batch([radius_graph(crystal, CUTOFF)], n_graph=2))
        out = energy_forces_stress(TEACHER.apply, params, graph)
        names.append(f"cell{k // 4}/frame/{k}")
        crystals.append(crystal)
        energies.append(float(out.energy[0]))
        stresses.append(np.asarray(out.stress[0]).reshape(9))
        forces.append(np.asarray(out.forces[: crystal.n_atoms]))
    stresses = np.asarray(stresses)
    targets = {"energy": np.asarray(energies)}
    targets.update({key: stresses[:, i] for i, key in enumerate(STRESS_KEYS)})
    return Dataset(
        "lj", tuple(names), tuple(crystals), targets, node_targets={"forces": tuple(forces)}
    )


@pytest.fixture(scope="module")
def labelled():
    with jax.enable_x64(True):
        return _labelled()


@pytest.fixture(scope="module")
def student(labelled, tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    config = NequIPConfig(elements=(18, 36), cutoff=CUTOFF, channels=8, l_max=1, n_layers=2)
    model = distill(
        labelled,
        out_dir=out,
        config=config,
        n_epochs=60,
        batch_nodes=128,
        learning_rate=1e-2,
        progress=False,
        plots=True,
    )
    return model, out


def test_extxyz_round_trip_keeps_every_label(labelled, tmp_path):
    path = tmp_path / "set.extxyz"
    write_extxyz(path, labelled)
    back = read_extxyz(path)
    assert back.names == labelled.names
    np.testing.assert_allclose(back.targets["energy"], labelled.targets["energy"], rtol=1e-12)
    for key in STRESS_KEYS:
        np.testing.assert_allclose(back.targets[key], labelled.targets[key], rtol=1e-7, atol=1e-12)
    for f_back, f in zip(back.node_targets["forces"], labelled.node_targets["forces"], strict=True):
        np.testing.assert_allclose(f_back, f, atol=1e-8)
    np.testing.assert_allclose(
        back.crystals[3].positions, labelled.crystals[3].positions, atol=1e-8
    )


def test_statistics_recover_exact_per_element_energies(labelled):
    """Energies that are exactly Σ_Z n_Z e_Z over varied compositions give back e_Z."""
    rng = np.random.default_rng(1)
    crystals = tuple(
        Crystal(rng.choice([18, 36], size=c.n_atoms), c.positions, c.cell)
        for c in labelled.crystals
    )
    exact = {18: -1.25, 36: -3.5}
    energies = np.array([sum(exact[int(z)] for z in c.species) for c in crystals])
    dataset = Dataset(
        "x", labelled.names, crystals, {"energy": energies}, node_targets=labelled.node_targets
    )
    stats = fit_statistics(dataset, (18, 36), CUTOFF)
    np.testing.assert_allclose(stats["atomic_energies"], (-1.25, -3.5), rtol=1e-6)
    forces = np.concatenate(labelled.node_targets["forces"])
    assert stats["scale"] == pytest.approx(np.sqrt(np.mean(forces**2)))
    n_edges = np.mean([len(radius_graph(c, CUTOFF).senders) / c.n_atoms for c in crystals])
    assert stats["avg_num_neighbors"] == pytest.approx(n_edges)


def test_student_learns_the_teacher(student, labelled):
    model, out = student
    test = model.metrics["test"]
    forces = np.concatenate(labelled.node_targets["forces"]).reshape(-1)
    # The labels' spread is what a model that learned nothing would miss by.
    assert test["forces_meV_A"]["mae"] < 0.25 * 1e3 * np.mean(np.abs(forces - forces.mean()))
    history = model.metrics["history"]
    assert history[-1]["val"]["mae_forces_meV_A"] < 0.5 * history[0]["val"]["mae_forces_meV_A"]
    assert (out / "parity.png").stat().st_size > 10_000
    assert json.loads((out / "metrics.json").read_text())["n_train"] == model.metrics["n_train"]


def test_saved_student_reloads_and_drives_ase(student, labelled):
    model, out = student
    again = load(out)
    assert again.config == model.config
    crystals = labelled.crystals[:3]
    e1, f1, s1 = predict(model.config, model.params, crystals)
    e2, f2, s2 = again.energy_forces_stress(crystals)
    np.testing.assert_array_equal(e1, e2)
    np.testing.assert_array_equal(f1[2], f2[2])
    atoms = crystals[0].to_ase()
    atoms.calc = JmofCalculator(out)
    np.testing.assert_allclose(atoms.get_potential_energy(), e1[0], atol=1e-5)  # float32
    np.testing.assert_allclose(atoms.get_forces(), f1[0], atol=1e-5)
    voigt = s1[0][[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    np.testing.assert_allclose(atoms.get_stress(), voigt, atol=1e-7)
    fmax = np.abs(atoms.get_forces()).max()
    ase.optimize.BFGS(atoms, logfile=None).run(fmax=0.2 * fmax, steps=50)
    assert np.abs(atoms.get_forces()).max() <= 0.2 * fmax


def test_unknown_elements_are_refused_with_their_names(student):
    model, _ = student
    copper = Crystal(np.array([29, 18]), np.array([[0.0, 0, 0], [2.0, 2, 2]]), np.eye(3) * 8)
    with pytest.raises(ValueError, match="elements Cu are not known"):
        model.energy_forces_stress([copper])
    atoms = copper.to_ase()
    atoms.calc = JmofCalculator(model)
    with pytest.raises(ValueError, match="Cu are not known"):
        atoms.get_potential_energy()


def test_distill_command_trains_reports_and_refuses_bad_input(
    labelled, tmp_path, capsys, monkeypatch
):
    import jmof.data
    from jmof.cli import main
    from potentials import MACEConfig

    # The cache folder is process-wide JAX state: record the request, keep this process clean.
    cached = []
    monkeypatch.setattr(jmof.data, "enable_compilation_cache", lambda: cached.append(True))
    path = tmp_path / "labels.extxyz"
    write_extxyz(path, labelled)
    out = tmp_path / "cli-student"
    args = ["distill", str(path), "--out", str(out), "--channels", "4", "--layers", "1"]
    assert main(args + ["--epochs", "2", "--cutoff", "4.0", "--batch-nodes", "128", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["quantity"] for r in records] == ["energy_meV_atom", "forces_meV_A", "stress_GPa"]
    saved = json.loads((out / "metrics.json").read_text())["test"]
    assert records[1]["mae"] == pytest.approx(saved["forces_meV_A"]["mae"])
    assert isinstance(load(out).config, NequIPConfig) and cached == [True]
    mace = ["distill", str(path), "--out", str(tmp_path / "cli-mace"), "--model", "mace"]
    sizes = ["--channels", "4", "--layers", "1", "--l-max", "1", "--correlation", "2"]
    assert main(mace + sizes + ["--epochs", "1", "--batch-nodes", "128", "--cutoff", "4.0"]) == 0
    capsys.readouterr()
    config = load(tmp_path / "cli-mace").config
    assert isinstance(config, MACEConfig)
    assert (config.correlation, config.channels, config.n_layers) == (2, 4, 1)
    assert main(args + ["--model", "allegro"]) == 1
    assert "--model 'allegro'" in capsys.readouterr().err
    assert main(["distill", str(tmp_path / "nothing.extxyz"), "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "nothing.extxyz" in err and "Traceback" not in err
    assert main(args + ["--monitor", "force"]) == 1
    err = capsys.readouterr().err
    assert "--monitor 'force'" in err and "mae_forces_meV_A" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_resume_keeps_the_statistics_it_started_with(labelled, tmp_path, monkeypatch):
    import sys

    module = sys.modules["potentials.distill"]  # the package exports a function of that name

    config = NequIPConfig(elements=(18, 36), cutoff=CUTOFF, channels=4, l_max=1, n_layers=1)
    options = dict(out_dir=tmp_path, config=config, n_epochs=2, batch_nodes=128, plots=False,
                   progress=False)  # fmt: skip
    assert distill(labelled, stop_after_steps=3, **options) is None
    fitted = fit_statistics(labelled.split()["train"], (18, 36), CUTOFF)
    # Another machine: the same fit in other last digits.
    shifts = tuple(e * (1 + 1e-9) for e in fitted["atomic_energies"])
    moved = {**fitted, "atomic_energies": shifts}
    monkeypatch.setattr(module, "fit_statistics", lambda *args: moved)
    student = distill(labelled, **options)
    assert student is not None
    assert student.config.atomic_energies == fitted["atomic_energies"]
    # Without the fix the refit is taken, and the resume is refused: the test can fail.
    monkeypatch.setattr(module, "_resumed_statistics", lambda *args: {})
    with pytest.raises(ValueError, match="resume with the same config"):
        distill(labelled, **{**options, "n_epochs": 3})


def test_an_unknown_monitor_is_refused_before_training(labelled, tmp_path):
    with pytest.raises(ValueError, match="monitor 'force': choose one of loss, mae_forces_meV_A"):
        distill(labelled, out_dir=tmp_path / "run", monitor="force", progress=False)
    assert not (tmp_path / "run").exists()
