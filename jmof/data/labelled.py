"""Configurations labelled with energy, forces and stress (training data for potentials).

Stored as extended XYZ, the format ASE and every MLIP code read: one frame per configuration
with the cell, ``pbc``, positions, and the labels as ASE calculator results (``energy`` eV,
``forces`` eV/Å, ``stress`` eV/Å³ in ASE's sign convention). A frame's ``name`` in its info line
identifies it (e.g. ``"ABAVIJ_clean/md-600K/0040"``: source structure, how it was made, index);
names let splits keep all configurations of one structure together.

    dataset = read_extxyz("labels.extxyz")      # Dataset: targets energy + stress_xx…,
    dataset.node_targets["forces"][k]           #          per-atom forces
    write_extxyz("copy.extxyz", dataset)

Missing labels (no stress, say) are NaN, and the training losses skip them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jmof.data.dataset import Dataset
from jmof.structure import Crystal

__all__ = ["STRESS_KEYS", "read_extxyz", "stress_array", "write_extxyz"]

STRESS_KEYS = tuple(f"stress_{a}{b}" for a in "xyz" for b in "xyz")
"""Target names of the 9 stress components (row-major), eV/Å³."""


def _result(atoms, key: str):
    calc = atoms.calc
    if calc is None or key not in getattr(calc, "results", {}):
        return None
    if key == "stress":
        return atoms.get_stress(voigt=False)
    return calc.results[key]


def read_extxyz(
    paths: str | os.PathLike | Sequence[str | os.PathLike], source: str | None = None
) -> Dataset:
    """Read one or more extxyz files into a :class:`Dataset`.

    Targets: ``"energy"`` [n] eV and the 9 :data:`STRESS_KEYS` (eV/Å³); node target
    ``"forces"`` ([n_atoms, 3] eV/Å per structure). Names come from each frame's ``name`` info
    key, else ``"<file stem>/<frame index>"``; they must be unique.
    """
    import ase.io

    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    names, crystals, energies, stresses, forces = [], [], [], [], []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        for k, atoms in enumerate(ase.io.read(path, ":", format="extxyz")):
            names.append(str(atoms.info.get("name", f"{path.stem}/{k:05d}")))
            crystals.append(Crystal.from_ase(atoms))
            energy = _result(atoms, "energy")
            energies.append(np.nan if energy is None else float(energy))
            stress = _result(atoms, "stress")
            stresses.append(np.full((3, 3), np.nan) if stress is None else np.asarray(stress))
            f = _result(atoms, "forces")
            forces.append(np.full((len(atoms), 3), np.nan) if f is None else np.asarray(f, float))
    if len(set(names)) != len(names):
        raise ValueError(f"{', '.join(map(str, paths))}: frame names are not unique")
    stresses = np.asarray(stresses, np.float64).reshape(len(names), 9)
    targets = {"energy": np.asarray(energies, np.float64)}
    targets.update({key: stresses[:, i] for i, key in enumerate(STRESS_KEYS)})
    return Dataset(
        source=source or ",".join(Path(p).name for p in paths),
        names=tuple(names),
        crystals=tuple(crystals),
        targets=targets,
        node_targets={"forces": tuple(forces)},
    )


def stress_array(dataset: Dataset) -> np.ndarray:
    """[n, 3, 3] eV/Å³ from the 9 stress targets."""
    return dataset.target_array(STRESS_KEYS).reshape(len(dataset), 3, 3)


def write_extxyz(path: str | os.PathLike, dataset: Dataset, *, append: bool = False) -> None:
    """Write ``dataset`` (as read by :func:`read_extxyz`) to ``path``; NaN labels are omitted."""
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    path = Path(path)
    if not append:
        path.unlink(missing_ok=True)
    stresses = stress_array(dataset) if all(k in dataset.targets for k in STRESS_KEYS) else None
    frames = []
    for k, (name, crystal) in enumerate(zip(dataset.names, dataset.crystals, strict=True)):
        atoms = crystal.to_ase()
        results = {}
        energy = dataset.targets.get("energy", np.full(len(dataset), np.nan))[k]
        if np.isfinite(energy):
            results["energy"] = float(energy)
        forces = dataset.node_targets.get("forces")
        if forces is not None and np.isfinite(forces[k]).all():
            results["forces"] = np.asarray(forces[k])
        if stresses is not None and np.isfinite(stresses[k]).all():
            results["stress"] = stresses[k]
        atoms.calc = SinglePointCalculator(atoms, **results)
        atoms.info["name"] = name
        frames.append(atoms)
    ase.io.write(path, frames, format="extxyz", append=append)
