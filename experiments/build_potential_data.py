"""Teacher-labelled training data for the distilled potentials (issue 5).

    python experiments/build_potential_data.py --set mil53          # system-specific set
    python experiments/build_potential_data.py --set mil53-md --teacher sevennet-0-jax \
        --md-steps 600                                                # mostly MD snapshots
    python experiments/build_potential_data.py --set general --n 300 # many CoRE MOFs

``mil53``: MIL-53(Al) (CoRE 2019-ASR ``SABWAU01_clean``, 152 atoms, the breathing MOF):
the structure, rattled (σ = 0.03-0.1 Å) and strained (±2-6 %, the cell shape changes that
breathing involves) copies, and snapshots of SevenNet-0 Langevin MD at 300 K and 600 K.
``mil53-md``: the same MOF with more of what a simulation visits: rattles of only 0.02 and
0.04 Å (5 each), the same strains, and MD at 300, 450 and 600 K.
``general``: CoRE MOFs of at most 120 atoms with elements SevenNet-0 knows, each relaxed by
the teacher at fixed cell (BFGS to 0.1 eV/Å, at most 100 steps; the relaxed structures are
kept in ``experiments/data/general-starts-<teacher>.extxyz``, committed as the build goes, so a
fresh machine continues where the last stopped), then as itself, two
rattles (σ = 0.01, 0.03 Å) and two strains (±2 %). A MOF whose relaxation brought two
atoms closer than 0.6 Å is left out: the teacher collapsed it (LOSYAV: the CoRE file holds H2
pairs at 0.74 Å that SevenNet-0 pulls together, ending at -4,900 eV/atom and 4e6 eV/Å).
(Unrelaxed CoRE structures with rattles of 0.05–0.1 Å, the first recipe, gave a median
largest force of 8 eV/Å on the start frames and 28 eV/Å on the rattles: nothing a simulation
visits.)

Labels come from SevenNet-0 by default (``--teacher chgnet`` for CHGNet, ``--teacher
sevennet-0-jax`` for SevenNet-0 converted to jmof: no torch needed) and are cached per
configuration (``$JMOF_CACHE/labels``), so an interrupted run continues where it stopped:
rerun the same command. The result goes to ``experiments/data/<set>-<teacher>.extxyz``
(committed; the tests and the demo read it without torch).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"
MIL53 = "SABWAU01_clean"


def mil53_configurations(
    teacher: str,
    md_steps: int,
    interval: int,
    temperatures=(300.0, 600.0),
    rattles=(0.03, 0.05, 0.07, 0.1),
) -> list:
    from jmof.data import coremof
    from potentials import teachers

    dataset = coremof.load("2019-ASR", progress=False)
    crystal = dataset[MIL53]
    configs = teachers.perturbations(
        crystal,
        MIL53,
        rattle_A=tuple(rattles) * 5,
        strains=(-0.06, -0.04, -0.02, 0.02, 0.04, 0.06) * 3,
    )
    for k, temperature in enumerate(temperatures):
        configs += teachers.teacher_md(
            crystal,
            MIL53,
            teacher,
            temperature_K=temperature,
            steps=md_steps,
            interval=interval,
            seed=k,
        )
    return configs


def relaxed_starts(names, crystals, teacher: str) -> list:
    """Each crystal relaxed by the teacher (``teachers.relaxed``), kept in
    ``experiments/data/general-starts-<teacher>.extxyz`` (committed), so that a build on a fresh
    machine skips the relaxations already done. Every start is the structure as read back
    from that file (positions to 1e-8 Å), so all machines label the same positions."""
    import io

    import ase.io

    from jmof.progress import progress_bar
    from jmof.structure import Crystal
    from potentials import teachers

    path = DATA / f"general-starts-{teacher}.extxyz"
    done = {}
    if path.exists():
        for atoms in ase.io.read(path, ":", format="extxyz"):
            done[atoms.info["name"]] = Crystal.from_ase(atoms)
    with progress_bar(True) as bar:
        already = len(set(names) & set(done))
        task = bar.add_task(f"relaxing with {teacher}", total=len(names), completed=already)
        for name, crystal in zip(names, crystals, strict=True):
            if name in done:
                continue
            atoms = teachers.relaxed(crystal, teacher).to_ase()
            atoms.info["name"] = name
            buffer = io.StringIO()
            ase.io.write(buffer, atoms, format="extxyz")
            text = buffer.getvalue()
            with open(path, "a") as f:  # one write per frame: an interruption loses one at most
                f.write(text)
            done[name] = Crystal.from_ase(ase.io.read(io.StringIO(text), format="extxyz"))
            bar.advance(task)
    return [done[n] for n in names]


MIN_PAIR_A = 0.6  # Å; H2 is 0.74 Å, the shortest bond there is


def closest_pair(crystal) -> float:
    """The smallest interatomic distance of a crystal (Å), periodic images included."""
    from ase.neighborlist import neighbor_list

    distances = neighbor_list("d", crystal.to_ase(), 1.0)
    return float(distances.min()) if len(distances) else float("inf")


def general_configurations(n: int, teacher: str) -> list:
    from jmof.data import coremof
    from potentials import teachers

    dataset = coremof.load("2019-ASR", progress=False).filter(max_atoms=120)
    dataset = dataset.sample(n, salt="potential-data")
    starts = relaxed_starts(dataset.names, dataset.crystals, teacher)
    configs = []
    for k, (name, start) in enumerate(zip(dataset.names, starts, strict=True)):
        closest = closest_pair(start)
        if closest < MIN_PAIR_A:
            print(f"{name}: left out, atoms {closest:.2f} Å apart after the relaxation (collapsed)")
            continue
        configs += teachers.perturbations(
            start, name, rattle_A=(0.01, 0.03), strains=(-0.02, 0.02), seed=k
        )
    return configs


def main():
    from jmof.data.labelled import write_extxyz
    from potentials import teachers

    parser = argparse.ArgumentParser()
    parser.add_argument("--set", choices=("mil53", "mil53-md", "general"), required=True)
    parser.add_argument("--teacher", choices=teachers.TEACHERS, default="sevennet-0")
    parser.add_argument("--n", type=int, default=300, help="structures of the general set")
    parser.add_argument("--md-steps", type=int, default=200, help="MD steps per temperature")
    parser.add_argument("--interval", type=int, default=5, help="MD steps between snapshots")
    args = parser.parse_args()
    if args.set == "mil53":
        configs = mil53_configurations(args.teacher, args.md_steps, args.interval)
    elif args.set == "mil53-md":
        configs = mil53_configurations(
            args.teacher, args.md_steps, args.interval, (300.0, 450.0, 600.0), (0.02, 0.04)
        )
    else:
        configs = general_configurations(args.n, args.teacher)
    dataset = teachers.label(configs, args.teacher)
    energy = dataset.targets["energy"]
    print(f"{len(dataset)} configurations, energies {np.min(energy):.2f} … {np.max(energy):.2f} eV")
    DATA.mkdir(exist_ok=True)
    out = DATA / f"{args.set}-{args.teacher}.extxyz"
    write_extxyz(out, dataset)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
