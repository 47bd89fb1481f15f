"""Henry coefficients of jmof against RASPA2 on CoRE MOFs, same model, same run (issue 6).

    python experiments/bench_raspa.py [--raspa-python PATH] [--cycles 1000] [--insertions 100000]

RASPA2 2.0.4 from PyPI compiles here (about 7 minutes, no system packages); it lives in its own
environment, e.g. ``python -m venv ../raspa-venv && ../raspa-venv/bin/pip install raspa2==2.0.4``,
and ``experiments/_raspa.py`` runs it. Both codes get the same model, written from jmof's
tables: UFF framework parameters for the elements present, TraPPE CH4 (148 K, 3.73 Å) or Xe
(221 K, 4.1 Å), Lorentz–Berthelot, 12.8 Å cutoff with shift, no tail corrections, no charges,
the same supercell (every perpendicular width ≥ 25.6 Å), 298 K. Structures: the 10 CoRE MOFs of
``bench_widom.py``.

Reported per structure and guest: K_H and ⟨U⟩ from each code with 1σ errors (RASPA's printed
"+/-" is a 95 % interval over 5 blocks, divided here by 2.776), the z-score of the difference,
the wall time of each, and the time each would need for a 1 % (1σ) error on K_H, scaling its
measured time by (error / 1 %)². Writes ``experiments/results/raspa.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine, save

HERE = Path(__file__).parent
ANGLES = ("alpha", "beta", "gamma")


def raspa_cif(crystal, path: Path) -> None:
    """P1 CIF whose atom labels are element symbols (RASPA types framework atoms by label)."""
    from ase.data import chemical_symbols
    from ase.geometry import cell_to_cellpar

    a, b, c, alpha, beta, gamma = cell_to_cellpar(np.asarray(crystal.cell))
    lines = [
        "data_jmof",
        *(f"_cell_length_{k} {v:.8f}" for k, v in zip("abc", (a, b, c))),
        *(f"_cell_angle_{k} {v:.8f}" for k, v in zip(ANGLES, (alpha, beta, gamma))),
        "_symmetry_space_group_name_H-M 'P 1'",
        "_symmetry_Int_Tables_number 1",
        "loop_",
        "_symmetry_equiv_pos_as_xyz",
        "'x, y, z'",
        "loop_",
        "_atom_site_label",
        "_atom_site_type_symbol",
        "_atom_site_fract_x",
        "_atom_site_fract_y",
        "_atom_site_fract_z",
    ]  # fmt: skip
    # RASPA rebuilds the cell from lengths and angles; fractional coordinates carry over.
    for z, f in zip(np.asarray(crystal.species), np.asarray(crystal.frac_positions) % 1.0):
        s = chemical_symbols[z]
        lines.append(f"{s} {s} {f[0]:.8f} {f[1]:.8f} {f[2]:.8f}")
    path.write_text("\n".join(lines) + "\n")


def run_raspa(raspa_python: str, crystal, guest_name: str, cycles: int, tmp: Path) -> dict:
    from ase.data import atomic_masses, chemical_symbols

    from jmof.physics import forcefield as ffm
    from jmof.physics import host as hostm

    ff = ffm.uff()
    guest = ffm.guest(guest_name)
    cif = tmp / "framework.cif"
    raspa_cif(crystal, cif)
    config = {
        "cif": str(cif),
        "framework": {
            chemical_symbols[z]: [float(ff.epsilon[z]), float(ff.sigma[z]), float(atomic_masses[z])]
            for z in np.unique(np.asarray(crystal.species))
        },
        "guest": {
            "name": guest.name,
            "eps": float(guest.epsilon[0]),
            "sigma": float(guest.sigma[0]),
            "mass": guest.mass,
        },  # fmt: skip
        "unit_cells": list(hostm.supercell_repeats(crystal.cell, ff.cutoff)),
        "cutoff": ff.cutoff,
        "temperature": 298.0,
        "cycles": cycles,
    }
    (tmp / "config.json").write_text(json.dumps(config))
    out = subprocess.run(
        [raspa_python, str(HERE / "_raspa.py"), str(tmp / "config.json")],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"RASPA failed: {(out.stderr or out.stdout)[-1000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    import jax
    from bench_widom import widom_structures

    from jmof.data import coremof
    from jmof.physics import forcefield as ffm
    from jmof.physics import widom

    parser = argparse.ArgumentParser()
    parser.add_argument("--raspa-python", default=str(HERE.parents[1] / "raspa-venv/bin/python"))
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--insertions", type=int, default=100_000)
    parser.add_argument("--guests", default="CH4,Xe")
    args = parser.parse_args()

    dataset = coremof.load("2019-ASR", names=widom_structures(), progress=False)
    rows = []
    tmp = Path(tempfile.mkdtemp())
    for name, crystal in zip(dataset.names, dataset.crystals):
        for guest in args.guests.split(","):
            raspa = run_raspa(args.raspa_python, crystal, guest, args.cycles, tmp)
            widom.henry_coefficient(crystal, guest, 298.0, n_insertions=1000)  # compile
            start = time.perf_counter()
            ours = widom.henry_coefficient(crystal, guest, 298.0, n_insertions=args.insertions,
                                           key=jax.random.key(len(rows)))  # fmt: skip
            seconds = time.perf_counter() - start
            raspa_err = raspa["henry_err95"] / 2.776
            err = math.hypot(ours.henry_err, raspa_err)
            row = {
                "name": name,
                "n_atoms": crystal.n_atoms,
                "guest": guest,
                "K_H_jmof": ours.henry,
                "K_H_jmof_err": ours.henry_err,
                "K_H_raspa": raspa["henry"],
                "K_H_raspa_err": raspa_err,
                "z": (ours.henry - raspa["henry"]) / err if err > 0 else 0.0,
                "U_jmof_kJ_mol": ours.energy,
                "U_raspa_kJ_mol": raspa["energy_K"] * ffm.K_IN_KJ_PER_MOL,
                "seconds_jmof": seconds,
                "seconds_raspa": raspa["seconds"],
                "seconds_1pct_jmof": seconds * (ours.henry_err / ours.henry / 0.01) ** 2,
                "seconds_1pct_raspa": raspa["seconds"] * (raspa_err / raspa["henry"] / 0.01) ** 2,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    z = np.array([r["z"] for r in rows])
    ratio = np.array([r["seconds_1pct_raspa"] / r["seconds_1pct_jmof"] for r in rows])
    out = {
        "settings": vars(args),
        "rows": rows,
        "fraction_within_2sigma": float(np.mean(np.abs(z) < 2)),
        "median_abs_z": float(np.median(np.abs(z))),
        "median_speed_ratio_at_equal_error": float(np.median(ratio)),
        "machine": machine(),
    }
    save("raspa", out)
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
