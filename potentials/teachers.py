"""Universal potentials as teachers: SevenNet-0 and CHGNet label configurations for distillation.

Needs the ``[torch]`` extra (``pip install -e '.[torch]'``); torch is imported only when a
teacher is created, never by the rest of jmof.

    from potentials import teachers
    configs = teachers.perturbations(crystal, "ABAVIJ", seed=0)     # rattled and strained
    configs += teachers.teacher_md(crystal, "ABAVIJ", "sevennet-0", temperature_K=600, steps=200)
    dataset = teachers.label(configs, "sevennet-0")                  # energy, forces, stress

Labels are cached on disk per (teacher, configuration) under ``$JMOF_CACHE/labels/<teacher>/``
so that an interrupted labelling run resumes where it stopped, and the same configuration is
never computed twice.

The teachers: SevenNet-0 (``7net-0``, the 11 July 2024 NequIP-architecture model shipped in
``sevenn``, 5 Å cutoff, trained on MPtrj) and CHGNet 0.3.0 (shipped in ``chgnet``). Both give
total energy (eV), forces (eV/Å) and stress through ASE calculators; stress is converted to
ASE's convention, eV/Å³. ``"sevennet-0-jax"`` is SevenNet-0 converted to jmof
(``potentials.load("sevennet-0")``, float32): the same model without torch, labelling in
padded batches; its labels are cached separately from the torch teacher's.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

import numpy as np

from jmof.data.cache import cache_root, save_npz
from jmof.data.dataset import Dataset
from jmof.data.labelled import STRESS_KEYS
from jmof.structure import Crystal

__all__ = ["TEACHERS", "calculator", "label", "perturbations", "relaxed", "teacher_md"]

TEACHERS = ("sevennet-0", "chgnet", "sevennet-0-jax")
JAX_TEACHERS = {"sevennet-0-jax": "sevennet-0"}  # teacher -> shipped jmof potential


def calculator(name: str):
    """A fresh ASE calculator of the teacher ``name`` on the CPU (imports torch, except for
    the JAX teachers)."""
    if name not in TEACHERS:
        raise ValueError(f"unknown teacher {name!r}; choose from {TEACHERS}")
    if name in JAX_TEACHERS:
        from potentials.ase import JmofCalculator

        return JmofCalculator(JAX_TEACHERS[name])
    # e3nn (pinned by the teachers) loads a pickled constants file that torch >= 2.6 refuses
    # under weights_only; the file ships inside the e3nn wheel.
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    try:
        if name == "sevennet-0":
            import warnings

            from sevenn.calculator import SevenNetCalculator

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "no TP accelerator"
                return SevenNetCalculator("7net-0", device="cpu")
        from chgnet.model.dynamics import CHGNetCalculator

        return CHGNetCalculator(use_device="cpu")
    except ImportError as err:
        raise ImportError(
            f"the {name} teacher needs the [torch] extra: pip install -e '.[torch]' ({err})"
        ) from err


def _key(teacher: str, crystal: Crystal) -> str:
    h = hashlib.sha1(teacher.encode())
    h.update(np.asarray(crystal.species, np.int64).tobytes())
    h.update(np.round(np.asarray(crystal.positions, np.float64), 8).tobytes())
    h.update(np.round(np.asarray(crystal.cell, np.float64), 8).tobytes())
    return h.hexdigest()


def _compute(calc, crystal: Crystal) -> dict[str, np.ndarray]:
    atoms = crystal.to_ase()
    if hasattr(calc, "reset"):
        calc.reset()  # CHGNet keeps stale magnetic moments between structures otherwise
    atoms.calc = calc
    return {
        "energy": np.float64(atoms.get_potential_energy()),
        "forces": np.asarray(atoms.get_forces(), np.float64),
        "stress": np.asarray(atoms.get_stress(voigt=False), np.float64),
    }


def _compute_batch(potential, crystals: Sequence[Crystal]) -> list[dict[str, np.ndarray]]:
    energy, forces, stress = potential.energy_forces_stress(crystals)
    return [
        {
            "energy": np.float64(energy[k]),
            "forces": np.asarray(forces[k], np.float64),
            "stress": np.asarray(stress[k], np.float64),
        }
        for k in range(len(crystals))
    ]


def label(
    configurations: Sequence[tuple[str, Crystal]],
    teacher: str = "sevennet-0",
    *,
    cache: bool = True,
    progress: bool = True,
    chunk: int = 32,
) -> Dataset:
    """Energy, forces and stress of each ``(name, crystal)`` from ``teacher``.

    Returns a :class:`jmof.data.Dataset` in the layout of :func:`jmof.data.labelled.read_extxyz`
    (targets ``energy`` and ``stress_*``, node target ``forces``). Cached results are reused;
    the teacher is only loaded if something is missing. JAX teachers label ``chunk``
    configurations per call (padded batches) and cache after each chunk.
    """
    from jmof.progress import progress_bar

    if teacher not in TEACHERS:
        raise ValueError(f"unknown teacher {teacher!r}; choose from {TEACHERS}")
    folder = cache_root() / "labels" / teacher
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{_key(teacher, crystal)}.npz" for _, crystal in configurations]
    results: list[dict | None] = [
        dict(np.load(path)) if cache and path.exists() else None for path in paths
    ]
    missing = [k for k, r in enumerate(results) if r is None]
    with progress_bar(progress) as bar:
        task = bar.add_task(f"labelling with {teacher}", total=len(configurations))
        bar.advance(task, len(configurations) - len(missing))
        if teacher in JAX_TEACHERS and missing:
            from potentials.distill import load

            potential = load(JAX_TEACHERS[teacher])
            for start in range(0, len(missing), chunk):
                part = missing[start : start + chunk]
                batch = _compute_batch(potential, [configurations[k][1] for k in part])
                for k, result in zip(part, batch, strict=True):
                    results[k] = result
                    if cache:
                        save_npz(paths[k], **result)
                bar.advance(task, len(part))
        elif missing:
            calc = calculator(teacher)
            for k in missing:
                results[k] = _compute(calc, configurations[k][1])
                if cache:
                    save_npz(paths[k], **results[k])
                bar.advance(task)
    energies, stresses, forces = [], [], []
    for result in results:
        energies.append(float(result["energy"]))
        stresses.append(np.asarray(result["stress"]).reshape(9))
        forces.append(np.asarray(result["forces"]))
    stresses = np.asarray(stresses).reshape(len(configurations), 9)
    targets = {"energy": np.asarray(energies)}
    targets.update({key: stresses[:, i] for i, key in enumerate(STRESS_KEYS)})
    return Dataset(
        source=f"teacher/{teacher}",
        names=tuple(name for name, _ in configurations),
        crystals=tuple(crystal for _, crystal in configurations),
        targets=targets,
        node_targets={"forces": tuple(forces)},
    )


def perturbations(
    crystal: Crystal,
    name: str,
    *,
    rattle_A: Sequence[float] = (0.03, 0.08),
    strains: Sequence[float] = (-0.03, 0.03),
    seed: int = 0,
) -> list[tuple[str, Crystal]]:
    """The crystal itself, rattled copies (Gaussian displacements of each given σ, Å) and
    randomly strained copies (a random symmetric strain of each given size, plus a small
    rattle), named ``"<name>/<kind>/<k>"``."""
    rng = np.random.default_rng(seed)
    positions = np.asarray(crystal.positions, np.float64)
    cell = np.asarray(crystal.cell, np.float64)
    out = [(f"{name}/start/0", crystal)]
    for k, sigma in enumerate(rattle_A):
        moved = positions + rng.normal(0.0, sigma, positions.shape)
        out.append((f"{name}/rattle/{k}", Crystal(crystal.species, moved, cell, crystal.pbc)))
    for k, size in enumerate(strains):
        direction = rng.normal(size=(3, 3))
        direction = 0.5 * (direction + direction.T)
        direction *= size / np.abs(np.linalg.eigvalsh(direction)).max()
        deform = np.eye(3) + direction
        moved = positions @ deform + rng.normal(0.0, 0.02, positions.shape)
        out.append(
            (f"{name}/strain/{k}", Crystal(crystal.species, moved, cell @ deform, crystal.pbc))
        )
    return out


def relaxed(
    crystal: Crystal,
    teacher: str = "sevennet-0",
    *,
    fmax: float = 0.1,
    steps: int = 100,
    cache: bool = True,
) -> Crystal:
    """The crystal relaxed by the teacher at fixed cell (ASE BFGS until every force component
    is below ``fmax`` eV/Å or ``steps`` steps), cached under ``$JMOF_CACHE/relaxed/<teacher>/``.
    Experimental structures (X-ray hydrogen positions, solvent removed) carry forces of
    several eV/Å under a universal potential; perturbing the relaxed structure instead gives
    configurations of the kind a simulation visits."""
    from ase.optimize import BFGS

    path = cache_root() / "relaxed" / teacher / f"{_key(teacher, crystal)}-{fmax:g}-{steps}.npz"
    if cache and path.exists():
        positions = np.load(path)["positions"]
    else:
        atoms = crystal.to_ase()
        atoms.calc = calculator(teacher)
        BFGS(atoms, logfile=None).run(fmax=fmax, steps=steps)
        positions = np.asarray(atoms.positions, np.float64)
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_npz(path, positions=positions)
    return Crystal(crystal.species, positions, crystal.cell, crystal.pbc)


def teacher_md(
    crystal: Crystal,
    name: str,
    teacher: str = "sevennet-0",
    *,
    temperature_K: float = 600.0,
    steps: int = 200,
    interval: int = 10,
    dt_fs: float = 1.0,
    friction_per_fs: float = 0.02,
    seed: int = 0,
    progress: bool = True,
) -> list[tuple[str, Crystal]]:
    """Snapshots of a Langevin NVT run of the teacher through ASE, every ``interval`` steps,
    named ``"<name>/md-<T>K/<step>"``. The teacher's results at each snapshot are stored in the
    label cache, so :func:`label` on the snapshots costs nothing more."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from jmof.progress import progress_bar

    atoms = crystal.to_ase()
    atoms.calc = calculator(teacher)
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)
    dyn = Langevin(
        atoms,
        timestep=dt_fs * units.fs,
        temperature_K=temperature_K,
        friction=friction_per_fs / units.fs,
        rng=rng,
    )
    folder = cache_root() / "labels" / teacher
    folder.mkdir(parents=True, exist_ok=True)
    snapshots = []
    with progress_bar(progress) as bar:
        task = bar.add_task(f"{teacher} MD {temperature_K:g} K", total=steps)
        for step in range(interval, steps + 1, interval):
            dyn.run(interval)
            snapshot = Crystal.from_ase(atoms)
            result = {  # the calculator's results for exactly these positions
                "energy": np.float64(atoms.get_potential_energy()),
                "forces": np.asarray(atoms.get_forces(), np.float64),
                "stress": np.asarray(atoms.get_stress(voigt=False), np.float64),
            }
            save_npz(folder / f"{_key(teacher, snapshot)}.npz", **result)
            snapshots.append((f"{name}/md-{temperature_K:g}K/{step:05d}", snapshot))
            bar.advance(task, interval)
    return snapshots
