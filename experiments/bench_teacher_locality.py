"""How much of the teacher's force on an atom comes from atoms a student cannot see (issue 5).

    python experiments/bench_teacher_locality.py [--radii 6,10,15] [--centers 2] [--pairs 1]

A student of ``L`` layers with cutoff ``r_c`` computes the energy of an atom from atoms within
``L r_c`` of it, and so the force on an atom from atoms within ``2 L r_c`` (the force is a sum
of derivatives of its neighbours' energies); SevenNet-0, the teacher, has 5 layers of 5 Å.
Whatever the teacher's force on atom i takes from beyond a radius R, a model that sees only R
around i cannot know: it sets a floor under that model's force error.

Measured on MIL-53(Al) MD snapshots of the teacher (``experiments/data/mil53-md-sevennet-0-
jax.extxyz``, Langevin at fixed cell): two snapshots A and B of one trajectory 300 fs apart,
each repeated to a supercell (default 2×2×4, 2,432 atoms, every width ≥ 25 Å), and for a
centre atom i of the home cell a hybrid that keeps A's atoms within R of i (minimum image) and
takes B's displacements for all others. The change of the force on i,
ΔF = F_i(hybrid) − F_i(A), compares two far environments drawn (roughly) independently from MD
for the same near one, so a model that sees only R around i has a force error of at least
about std(ΔF)/√2 per component (its best guess is the mean over far environments; the
difference of two independent draws has twice their variance). The seams at R (A's atoms
next to B's) add some strain that thermal motion would not, and the supercell's images of the
near atoms sit at ≥ width − R from i: both make this an estimate, not a bound.

The converted SevenNet-0 computes every force (float32, no torch). Results:
``experiments/results/teacher_locality.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import save

DATA = Path(__file__).parent / "data" / "mil53-md-sevennet-0-jax.extxyz"
ELEMENTS = {1: "H", 6: "C", 8: "O", 13: "Al"}


def snapshot_pairs(dataset, temperatures, pairs: int, separation: int = 60):
    """[(temperature, name A, crystal A, crystal B)]: frames ``separation`` apart (5 fs each)."""
    frames = {}
    for name, crystal in zip(dataset.names, dataset.crystals, strict=True):
        _, kind, index = name.split("/")
        frames.setdefault(kind, {})[int(index)] = (name, crystal)
    out = []
    for temperature in temperatures:
        trajectory = frames[f"md-{temperature}K"]
        indices = sorted(trajectory)
        for k in range(pairs):
            a = indices[k * separation]
            b = indices[k * separation + separation]
            out.append((temperature, trajectory[a][0], trajectory[a][1], trajectory[b][1]))
    return out


def aligned(a, b) -> np.ndarray:
    """B's positions moved by lattice vectors to the images nearest A's (same atom order)."""
    cell = np.asarray(a.cell)
    frac = (np.asarray(b.positions) - np.asarray(a.positions)) @ np.linalg.inv(cell)
    return np.asarray(a.positions) + (frac - np.round(frac)) @ cell


def minimum_image_distances(positions, cell, centre: int) -> np.ndarray:
    """[n] Å from atom ``centre`` to every atom, minimum image over the 27 neighbouring cells
    (exact when the cell's widths exceed twice the radii that matter)."""
    delta = positions - positions[centre]
    frac = delta @ np.linalg.inv(cell)
    frac -= np.round(frac)
    shifts = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    cart = (frac[:, None, :] + shifts[None]) @ cell
    return np.linalg.norm(cart, axis=-1).min(axis=1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--radii", default="6,10,15", help="Å, comma-separated")
    parser.add_argument("--centers", type=int, default=2, help="centre atoms per element")
    parser.add_argument("--pairs", type=int, default=1, help="snapshot pairs per temperature")
    parser.add_argument("--temperatures", default="300,600")
    parser.add_argument("--repeats", default="2,2,4")
    args = parser.parse_args()
    radii = [float(r) for r in args.radii.split(",")]
    repeats = tuple(int(n) for n in args.repeats.split(","))

    import potentials
    from jmof.data.labelled import read_extxyz
    from jmof.structure import Crystal

    teacher = potentials.load("sevennet-0")
    dataset = read_extxyz(DATA)
    temperatures = [int(t) for t in args.temperatures.split(",")]
    rng = np.random.default_rng(0)
    rows, checks = [], []
    started = time.perf_counter()
    for temperature, name, a, b in snapshot_pairs(dataset, temperatures, args.pairs):
        b_positions = aligned(a, b)
        big_a = a.repeat(repeats)
        big_b = Crystal(a.species, b_positions, a.cell).repeat(repeats)
        print(f"{name}: {big_a.n_atoms} atoms, widths {big_a.perpendicular_widths.round(1)} Å")
        _, (forces_a,), _ = potentials.predict(
            teacher.config, teacher.params, [big_a], batch_nodes=big_a.n_atoms
        )
        # The home cell's atoms are the first ones (Crystal.repeat); their forces in the
        # supercell must be the labelled ones of the unit cell.
        labelled = dataset.node_targets["forces"][dataset.names.index(name)]
        checks.append(float(np.abs(forces_a[: a.n_atoms] - labelled).max()))
        species = np.asarray(a.species)
        for z, symbol in ELEMENTS.items():
            candidates = np.flatnonzero(species == z)
            for centre in rng.choice(candidates, size=args.centers, replace=False):
                distance = minimum_image_distances(
                    np.asarray(big_a.positions), np.asarray(big_a.cell), int(centre)
                )
                for radius in radii:
                    near = distance <= radius
                    hybrid = Crystal(
                        big_a.species,
                        np.where(near[:, None], big_a.positions, big_b.positions),
                        big_a.cell,
                    )
                    _, (forces,), _ = potentials.predict(
                        teacher.config, teacher.params, [hybrid], batch_nodes=hybrid.n_atoms
                    )
                    delta = forces[centre] - forces_a[centre]
                    rows.append(
                        {
                            "snapshot": name,
                            "temperature_K": temperature,
                            "element": symbol,
                            "centre": int(centre),
                            "radius_A": radius,
                            "near_atoms": int(near.sum()),
                            "delta_F_eV_A": delta.tolist(),
                        }
                    )
                    print(
                        f"  {symbol:2s} {centre:3d} R {radius:4.1f} Å: |ΔF| "
                        f"{1000 * np.linalg.norm(delta):7.1f} meV/Å ({near.sum()} near atoms)"
                    )
    summary = {}
    for radius in radii:
        for temperature in [*temperatures, "all"]:
            picked = [
                r
                for r in rows
                if r["radius_A"] == radius and temperature in ("all", r["temperature_K"])
            ]
            components = 1000 * np.array([r["delta_F_eV_A"] for r in picked]).reshape(-1)
            key = f"R{radius:g}_T{temperature}"
            summary[key] = {
                "n_components": len(components),
                "std_dF_meV_A": float(components.std()),
                "mae_dF_meV_A": float(np.abs(components).mean()),
                "floor_rmse_meV_A": float(components.std() / np.sqrt(2)),
                "floor_mae_meV_A": float(np.abs(components).mean() / np.sqrt(2)),
            }
            print(f"{key}: {summary[key]}")
    save(
        "teacher_locality",
        {
            "repeats": list(repeats),
            "radii_A": radii,
            "supercell_vs_labelled_max_dF_eV_A": max(checks),
            "summary": summary,
            "rows": rows,
            "seconds": time.perf_counter() - started,
        },
    )


if __name__ == "__main__":
    main()
