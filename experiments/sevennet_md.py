"""The converted SevenNet-0 in use (issue 7): relaxation and 10 ps NVT, against SevenNet-0
through ASE.

    python experiments/sevennet_md.py --relax-only            # MIL-53(Al) relaxations (CPU)
    python experiments/sevennet_md.py --engine jmof  [--budget-minutes M]   # NVT, resumable
    python experiments/sevennet_md.py --engine torch [--budget-minutes M]   # NVT, resumable
    python experiments/sevennet_md.py --summarize             # statistics, JSON and plot

1. **Relaxation**: MIL-53(Al) (CoRE 2019-ASR ``SABWAU01_clean``, 152 atoms; the starting frame
   of ``experiments/data/mil53-sevennet-0.extxyz``), ASE BFGS to fmax 0.02 eV/Å at fixed cell,
   once with ``JmofCalculator("sevennet-0")`` and once with SevenNet's own calculator: final
   energies, steps and the largest distance between the two relaxed structures
   (``sevennet_md_<device>.json``).
2. **NVT**: Langevin at 300 K (friction 0.01/fs, 1 fs, 10 ps) of one CoRE MOF (``--structure``,
   default ``acscombsci.5b00188_5036495_clean``: 62 atoms, C32H16N2O10Zn2, every perpendicular
   width ≥ 14 Å, so JAX-MD needs no replica at 5 + 0.5 Å and both codes move the same 62
   atoms; MIL-53(Al) would take about 4 h per code on this CPU). Both runs start from the
   structure relaxed with the converted model and Maxwell–Boltzmann velocities at 300 K:
   ``--engine jmof`` runs ``jmof.md.run_nvt`` (JAX-MD's BAOAB Langevin, the converted model),
   ``--engine torch`` ASE's Langevin with SevenNet-0's calculator. Each is resumable: its state
   is saved under ``experiments/runs/sevennet-nvt-<structure>-<engine>/`` every 200 steps and
   ``--budget-minutes`` stops after the next save. ``--summarize`` reports, after the first
   picosecond, the mean and standard deviation of the temperature and of the potential energy
   per atom (relative to the relaxed structure; standard errors of the means from 10 blocks)
   and the mean metal–ligand distance over the trajectory frames (every 200 steps), for the
   runs that exist (``sevennet_nvt_<structure>_<device>.json`` and a PNG of both traces).
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


NVT_STRUCTURE = "acscombsci.5b00188_5036495_clean"
NVT = dict(temperature_K=300.0, dt_fs=1.0, friction_per_fs=0.01, log_every=20, save_every=200)


def nvt_folder(structure: str, engine: str) -> Path:
    return HERE / "runs" / f"sevennet-nvt-{structure}-{engine}"


def nvt_start(structure: str):
    """The CoRE structure relaxed at fixed cell by the converted SevenNet-0 (BFGS to fmax
    0.02 eV/Å), cached next to the runs so both engines start from the same atoms; returns
    ``(ase.Atoms, relaxed energy in eV)``."""
    import ase.io

    from jmof.data import coremof
    from potentials.ase import JmofCalculator

    path = HERE / "runs" / f"sevennet-nvt-{structure}-start.extxyz"
    if not path.exists():
        dataset = coremof.load("2019-ASR", progress=False)
        if structure not in dataset.names:
            raise SystemExit(f"{structure!r} is not a valid CoRE MOF 2019-ASR structure")
        crystal = dataset.crystals[dataset.names.index(structure)]
        atoms, info = relax(crystal, JmofCalculator("sevennet-0"))
        print(f"relaxed {structure}: {info}", flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        ase.io.write(path, atoms, format="extxyz")
    atoms = ase.io.read(path)
    return atoms, float(atoms.get_potential_energy())


def jmof_nvt(structure: str, steps: int, budget_minutes: float | None) -> None:
    """``--engine jmof``: JAX-MD Langevin with the converted model; resumable (jmof.md
    restart file)."""
    from jmof import md
    from jmof.structure import Crystal
    from potentials import load

    atoms, _ = nvt_start(structure)
    potential = load("sevennet-0")
    system = md.system(
        potential.config.build().apply, potential.params, Crystal.from_ase(atoms), cutoff=5.0
    )
    folder = nvt_folder(structure, "jmof")
    result = md.run_nvt(
        system,
        steps=steps,
        dt_fs=NVT["dt_fs"],
        temperature_K=NVT["temperature_K"],
        thermostat="langevin",
        friction_per_fs=NVT["friction_per_fs"],
        log_every=NVT["log_every"],
        traj_every=NVT["save_every"],
        trajectory=folder / "trajectory.extxyz",
        restart=folder / "restart.npz",
        time_limit_s=60 * budget_minutes if budget_minutes else None,
    )
    n = system.crystal.n_atoms
    log = {k: np.asarray(v).tolist() for k, v in result.log.items()}
    log["atoms_simulated"] = n
    (folder / "log.json").write_text(json.dumps(log))
    print(f"jmof NVT: {result.steps}/{steps} steps of {n} atoms", flush=True)


def torch_nvt(structure: str, steps: int, budget_minutes: float | None) -> None:
    """``--engine torch``: ASE Langevin with SevenNet-0's calculator; resumable (positions,
    momenta, the noise generator's state and the log are saved every 200 steps)."""
    import ase.io
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from sevenn.calculator import SevenNetCalculator

    from jmof.data import save_npz
    from jmof.progress import progress_bar

    atoms, _ = nvt_start(structure)
    atoms.calc = SevenNetCalculator("7net-0", device="cpu")
    MaxwellBoltzmannDistribution(
        atoms, temperature_K=NVT["temperature_K"], rng=np.random.default_rng(0)
    )
    dyn = Langevin(atoms, NVT["dt_fs"] * units.fs, temperature_K=NVT["temperature_K"],
                   friction=NVT["friction_per_fs"] / units.fs, fixcm=False,
                   rng=np.random.default_rng(1))  # fmt: skip
    folder = nvt_folder(structure, "torch")
    restart, trajectory = folder / "restart.npz", folder / "trajectory.extxyz"
    keys = ("time_fs", "temperature_K", "potential_eV", "kinetic_eV")
    log = {k: [] for k in keys}
    done = 0
    if restart.exists():
        saved = np.load(restart)
        atoms.set_positions(saved["positions"])
        atoms.set_momenta(saved["momenta"])
        dyn.rng.bit_generator.state = json.loads(str(saved["rng"]))
        done = int(saved["step"])
        log = {k: saved[f"log.{k}"].tolist() for k in keys}
        # Frames written after the last saved state (an interruption between the two writes).
        frames = ase.io.read(trajectory, ":") if trajectory.exists() else []
        if len(frames) > done // NVT["save_every"]:
            ase.io.write(trajectory, frames[: done // NVT["save_every"]], format="extxyz")
    else:
        trajectory.unlink(missing_ok=True)

    def save_state(step):
        folder.mkdir(parents=True, exist_ok=True)
        atoms.info["time_fs"] = step * NVT["dt_fs"]
        ase.io.write(trajectory, atoms, format="extxyz", append=True)
        save_npz(restart, step=step, positions=atoms.get_positions(),
                 momenta=atoms.get_momenta(), rng=json.dumps(dyn.rng.bit_generator.state),
                 **{f"log.{k}": np.asarray(v) for k, v in log.items()})  # fmt: skip

    started = time.perf_counter()
    step = done
    with progress_bar(True) as bar:
        task = bar.add_task("NVT, SevenNet-0 (torch)", total=steps, completed=done)
        while step < steps:
            dyn.run(NVT["log_every"])
            step += NVT["log_every"]
            bar.advance(task, NVT["log_every"])
            log["time_fs"].append(step * NVT["dt_fs"])
            log["temperature_K"].append(float(atoms.get_temperature()))
            log["potential_eV"].append(float(atoms.get_potential_energy()))
            log["kinetic_eV"].append(float(atoms.get_kinetic_energy()))
            if step % NVT["save_every"] == 0 or step >= steps:
                save_state(step)
                if budget_minutes and time.perf_counter() - started > 60 * budget_minutes:
                    break
    rate = len(atoms) * (step - done) / max(time.perf_counter() - started, 1e-9)
    print(f"torch NVT: {step}/{steps} steps, {rate:.1f} atom·steps/s", flush=True)


def metal_ligand_mean(atoms, cutoff: float = 2.6) -> float:
    """Å, mean distance of each metal atom (``predictors.descriptors.is_metal``) to its
    neighbours within ``cutoff`` (minimum image through ASE's neighbour list)."""
    from ase.neighborlist import neighbor_list

    from predictors.descriptors import is_metal

    i, d = neighbor_list("id", atoms, cutoff)
    keep = is_metal(atoms.numbers)[i]
    return float(d[keep].mean()) if keep.any() else float("nan")


def nvt_statistics(time_fs, temperature, epot_per_atom, frames, n_blocks=10) -> dict:
    """Means, standard deviations and block standard errors after the first picosecond."""
    t = np.asarray(time_fs)
    keep = t >= EQUILIBRATION_FS
    out = {"time_ps": float(t[-1] / 1000) if len(t) else 0.0}
    for name, values in (("T_K", temperature), ("Epot_meV_atom", 1000 * np.asarray(epot_per_atom))):
        v = np.asarray(values)[keep]
        if len(v) < n_blocks:
            continue
        blocks = np.array([b.mean() for b in np.array_split(v, n_blocks)])
        out[f"{name}_mean"] = float(v.mean())
        out[f"{name}_std"] = float(v.std())
        out[f"{name}_mean_err"] = float(blocks.std(ddof=1) / np.sqrt(n_blocks))
    distances = [metal_ligand_mean(a) for a in frames]
    if distances:
        out["metal_ligand_A_mean"] = float(np.mean(distances))
        out["metal_ligand_A_std"] = float(np.std(distances))
        out["n_frames"] = len(distances)
    return out


def summarize(structure: str, device: str) -> None:
    import ase.io

    atoms, e_relaxed = nvt_start(structure)
    n = len(atoms)
    runs, payload = {}, {"structure": structure, "n_atoms": n, "settings": NVT,
                         "relaxed_energy_eV": e_relaxed}  # fmt: skip
    jmof_log = nvt_folder(structure, "jmof") / "log.json"
    if jmof_log.exists():
        log = json.loads(jmof_log.read_text())
        m = log["atoms_simulated"]  # a multiple of n if the cell was replicated
        runs["jmof (JAX-MD)"] = {
            "time_fs": log["time_fs"],
            "temperature_K": log["temperature_K"],
            "epot_eV_atom": (np.asarray(log["potential_eV"]) / m - e_relaxed / n).tolist(),
        }
    torch_restart = nvt_folder(structure, "torch") / "restart.npz"
    if torch_restart.exists():
        saved = np.load(torch_restart)
        runs["SevenNet-0 torch (ASE)"] = {
            "time_fs": saved["log.time_fs"].tolist(),
            "temperature_K": saved["log.temperature_K"].tolist(),
            "epot_eV_atom": (saved["log.potential_eV"] / n - e_relaxed / n).tolist(),
        }
    for label, tr in runs.items():
        engine = "jmof" if label.startswith("jmof") else "torch"
        path = nvt_folder(structure, engine) / "trajectory.extxyz"
        frames = ase.io.read(path, ":") if path.exists() else []
        every = NVT["save_every"] * NVT["dt_fs"]  # frames without a time: one per save
        frames = [a for k, a in enumerate(frames)
                  if a.info.get("time_fs", (k + 1) * every) >= EQUILIBRATION_FS]  # fmt: skip
        payload[engine] = nvt_statistics(
            tr["time_fs"], tr["temperature_K"], tr["epot_eV_atom"], frames
        )
        print(label, payload[engine])
    payload["traces"] = runs
    out = HERE / "results" / f"sevennet_nvt_{structure}_{device}.json"
    out.write_text(json.dumps(payload, indent=1, default=float))
    if runs:
        plot(runs, out.with_suffix(".png"), structure)
    print(f"wrote {out}")


def plot(runs: dict, path: Path, structure: str) -> None:
    from jmof.plotting import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    for label, tr in runs.items():
        t = np.asarray(tr["time_fs"]) / 1000
        axes[0].plot(t, tr["temperature_K"], label=label, lw=0.6)
        axes[1].plot(t, 1000 * np.asarray(tr["epot_eV_atom"]), label=label, lw=0.6)
    axes[0].set_ylabel("T (K)")
    axes[1].set_ylabel("E_pot − E_relaxed (meV/atom)")
    axes[1].set_xlabel("time (ps)")
    axes[0].legend()
    axes[0].set_title(f"{structure}, Langevin 300 K: SevenNet-0 in jmof vs torch", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def relax_both(device: str, relax_steps: int) -> None:
    """``--relax-only``: MIL-53(Al) relaxed by the converted model and by SevenNet-0."""
    import jax
    from sevenn.calculator import SevenNetCalculator

    from potentials.ase import JmofCalculator

    out = HERE / "results" / f"sevennet_md_{device}.json"
    payload = {"device": device, "jax_device": str(jax.devices()[0])}
    crystal = start_structure()
    torch_calc = SevenNetCalculator("7net-0", device="cuda" if device == "gpu" else "cpu")
    relaxed, payload["relax_jmof"] = relax(crystal, JmofCalculator("sevennet-0"), steps=relax_steps)
    relaxed_t, payload["relax_torch"] = relax(crystal, torch_calc, steps=relax_steps)
    d = relaxed.positions - relaxed_t.positions
    payload["relax_max_displacement_A"] = float(np.linalg.norm(d, axis=1).max())
    print(payload, flush=True)
    out.write_text(json.dumps(payload, indent=1, default=float))
    print(f"wrote {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                        help="label of the result files (JAX uses its default device)")  # fmt: skip
    parser.add_argument("--relax-only", action="store_true", help="the MIL-53(Al) relaxations")
    parser.add_argument("--relax-steps", type=int, default=500)
    parser.add_argument("--engine", choices=("jmof", "torch"), help="run (or continue) one NVT")
    parser.add_argument("--summarize", action="store_true")
    parser.add_argument("--structure", default=NVT_STRUCTURE, help="CoRE 2019-ASR name (NVT)")
    parser.add_argument("--steps", type=int, default=10_000, help="NVT steps of 1 fs")
    parser.add_argument("--budget-minutes", type=float, default=None)
    args = parser.parse_args()

    from jmof.data import enable_compilation_cache

    enable_compilation_cache()  # a resumed chunk reuses the programs earlier chunks compiled
    if args.relax_only:
        relax_both(args.device, args.relax_steps)
    elif args.engine == "jmof":
        jmof_nvt(args.structure, args.steps, args.budget_minutes)
    elif args.engine == "torch":
        torch_nvt(args.structure, args.steps, args.budget_minutes)
    if args.summarize:
        summarize(args.structure, args.device)
    if not (args.relax_only or args.engine or args.summarize):
        parser.error("choose --relax-only, --engine jmof|torch or --summarize")


if __name__ == "__main__":
    main()
