"""The converted SevenNet-0 in use: relaxation and 10 ps NVT of MIL-53(Al), against SevenNet-0
through ASE (issue 7).

    python experiments/sevennet_md.py --device gpu            # the intended run (a GPU)
    python experiments/sevennet_md.py --relax-only            # the relaxations alone (CPU)

1. **Relaxation**: MIL-53(Al) (CoRE 2019-ASR ``SABWAU01_clean``, 152 atoms; the starting frame
   of ``experiments/data/mil53-sevennet-0.extxyz``), ASE BFGS to fmax 0.02 eV/Å at fixed cell,
   once with ``JmofCalculator("sevennet-0")`` and once with SevenNet's own calculator: final
   energies, steps and the largest distance between the two relaxed structures.
2. **NVT**: Langevin at 300 K (friction 0.01/fs, 1 fs) from the jmof-relaxed structure, with
   ``jmof.md.run_nvt`` (JAX-MD; the cell is replicated so that minimum images are exact) for
   ``--steps`` steps, and with ASE's Langevin and SevenNet-0 for the same number of steps or
   ``--torch-seconds`` of wall time, whichever ends first. Statistics after the first
   picosecond: mean and standard deviation of the temperature and of the potential energy per
   atom (relative to the relaxed structure), and the mean Al–O distance of the last frame.

Writes ``experiments/results/sevennet_md_<device>.json`` (or ``--out``) and a PNG of both
traces next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
HERE = Path(__file__).parent
DATA = HERE / "data" / "mil53-sevennet-0.extxyz"
EQUILIBRATION_FS = 1000.0


def start_structure():
    from jmof.data.labelled import read_extxyz

    dataset = read_extxyz(DATA)
    return dataset.crystals[dataset.names.index("SABWAU01_clean/start/0")]


def relax(crystal, calc, fmax=0.02, steps=500):
    from ase.optimize import BFGS

    atoms = crystal.to_ase()
    atoms.calc = calc
    opt = BFGS(atoms, logfile=None)
    start = time.perf_counter()
    opt.run(fmax=fmax, steps=steps)
    return atoms, {
        "energy_eV": float(atoms.get_potential_energy()),
        "fmax": float(np.abs(atoms.get_forces()).max()),
        "steps": int(opt.nsteps),
        "wall_s": time.perf_counter() - start,
    }


def al_o_mean(positions, cell, species) -> float:
    """Å, mean distance of each Al to its six nearest O (minimum image)."""
    frac_inv = np.linalg.inv(cell)
    al, o = positions[species == 13], positions[species == 8]
    d = al[:, None, :] - o[None, :, :]
    f = d @ frac_inv
    d = (f - np.round(f)) @ cell
    r = np.sort(np.linalg.norm(d, axis=-1), axis=1)[:, :6]
    return float(r.mean())


def stats(time_fs, temperature, potential_per_atom) -> dict:
    keep = np.asarray(time_fs) >= EQUILIBRATION_FS
    if not keep.any():
        keep = slice(len(time_fs) // 2, None)
    t, e = np.asarray(temperature)[keep], np.asarray(potential_per_atom)[keep]
    return {
        "time_ps": float(np.asarray(time_fs)[-1] / 1000),
        "T_mean_K": float(t.mean()),
        "T_std_K": float(t.std()),
        "Epot_mean_meV_atom": float(1000 * e.mean()),
        "Epot_std_meV_atom": float(1000 * e.std()),
    }


def jmof_nvt(crystal, e_ref_per_atom, steps, log_every=20):
    from jmof import md
    from potentials import load

    potential = load("sevennet-0")
    system = md.system(potential.config.build().apply, potential.params, crystal, cutoff=5.0)
    start = time.perf_counter()
    result = md.run_nvt(
        system,
        steps=steps,
        dt_fs=1.0,
        temperature_K=300.0,
        thermostat="langevin",
        friction_per_fs=0.01,
        log_every=log_every,
        progress=False,
    )
    wall = time.perf_counter() - start
    n = system.crystal.n_atoms
    log = result.log
    last = result.crystal
    species = np.asarray(last.species)
    return {
        "atoms_simulated": n,
        "wall_s": wall,
        "atom_steps_per_s": n * result.steps / wall,
        "al_o_final_A": al_o_mean(np.asarray(last.positions), np.asarray(last.cell), species),
        "trace": {
            "time_fs": log["time_fs"].tolist(),
            "temperature_K": log["temperature_K"].tolist(),
            "epot_eV_atom": (log["potential_eV"] / n - e_ref_per_atom).tolist(),
        },
    }


def torch_nvt(atoms, calc, e_ref_per_atom, steps, seconds, log_every=20):
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    atoms = atoms.copy()
    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dyn = Langevin(
        atoms,
        1.0 * units.fs,
        temperature_K=300,
        friction=0.01 / units.fs,
        rng=np.random.default_rng(1),
    )
    trace = {"time_fs": [], "temperature_K": [], "epot_eV_atom": []}
    n = len(atoms)
    species = atoms.get_atomic_numbers()
    start = time.perf_counter()
    done = 0
    while done < steps and time.perf_counter() - start < seconds:
        dyn.run(log_every)
        done += log_every
        trace["time_fs"].append(float(done))
        trace["temperature_K"].append(float(atoms.get_temperature()))
        trace["epot_eV_atom"].append(float(atoms.get_potential_energy() / n - e_ref_per_atom))
    wall = time.perf_counter() - start
    return {
        "atoms_simulated": n,
        "wall_s": wall,
        "atom_steps_per_s": n * done / wall,
        "al_o_final_A": al_o_mean(atoms.positions, np.asarray(atoms.cell), species),
        "trace": trace,
    }


def plot(results, path):
    from jmof.plotting import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    for label, run in results.items():
        tr = run["trace"]
        t = np.asarray(tr["time_fs"]) / 1000
        axes[0].plot(t, tr["temperature_K"], label=label, lw=0.8)
        axes[1].plot(t, 1000 * np.asarray(tr["epot_eV_atom"]), label=label, lw=0.8)
    axes[0].set_ylabel("T (K)")
    axes[1].set_ylabel("E_pot − E_relaxed (meV/atom)")
    axes[1].set_xlabel("time (ps)")
    axes[0].legend()
    axes[0].set_title("MIL-53(Al), Langevin 300 K: SevenNet-0 in jmof (JAX-MD) vs torch (ASE)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--torch-seconds", type=float, default=300.0)
    parser.add_argument("--relax-steps", type=int, default=500)
    parser.add_argument("--relax-only", action="store_true", help="skip the NVT runs")
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    import jax

    from jmof.structure import Crystal
    from potentials.ase import JmofCalculator

    out = args.out or HERE / "results" / f"sevennet_md_{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"device": args.device, "jax_device": str(jax.devices()[0])}

    def write():
        out.write_text(json.dumps(payload, indent=1, default=float))

    crystal = start_structure()
    torch_calc = None
    if not args.skip_torch:
        from sevenn.calculator import SevenNetCalculator

        torch_calc = SevenNetCalculator("7net-0", device="cuda" if args.device == "gpu" else "cpu")
    jmof_calc = JmofCalculator("sevennet-0")
    relaxed, payload["relax_jmof"] = relax(crystal, jmof_calc, steps=args.relax_steps)
    print("relax jmof", payload["relax_jmof"], flush=True)
    if torch_calc is not None:
        relaxed_t, payload["relax_torch"] = relax(crystal, torch_calc, steps=args.relax_steps)
        d = relaxed.positions - relaxed_t.positions
        payload["relax_max_displacement_A"] = float(np.linalg.norm(d, axis=1).max())
        print("relax torch", payload["relax_torch"], flush=True)
    write()
    if args.relax_only:
        print(f"wrote {out}")
        return
    payload["nvt_steps"] = args.steps
    e_ref = payload["relax_jmof"]["energy_eV"] / len(relaxed)
    runs = {}
    runs["jmof (JAX-MD)"] = jmof_nvt(Crystal.from_ase(relaxed), e_ref, args.steps)
    tr = runs["jmof (JAX-MD)"]["trace"]
    payload["nvt_jmof"] = {
        **{k: v for k, v in runs["jmof (JAX-MD)"].items() if k != "trace"},
        **stats(tr["time_fs"], tr["temperature_K"], tr["epot_eV_atom"]),
    }
    print("nvt jmof", payload["nvt_jmof"], flush=True)
    write()
    if torch_calc is not None:
        runs["SevenNet-0 torch (ASE)"] = torch_nvt(
            relaxed, torch_calc, e_ref, args.steps, args.torch_seconds
        )
        tr = runs["SevenNet-0 torch (ASE)"]["trace"]
        payload["nvt_torch"] = {
            **{k: v for k, v in runs["SevenNet-0 torch (ASE)"].items() if k != "trace"},
            **stats(tr["time_fs"], tr["temperature_K"], tr["epot_eV_atom"]),
        }
        print("nvt torch", payload["nvt_torch"], flush=True)
    payload["traces"] = {k: v["trace"] for k, v in runs.items()}
    write()
    plot(runs, out.with_suffix(".png"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
