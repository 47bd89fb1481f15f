"""Dynamics with a distilled student (issue 5): NVE energy drift, NVT temperature, NPT volume.

    python experiments/bench_potential_dynamics.py --part nve [--budget-minutes M]
    python experiments/bench_potential_dynamics.py --part nvt
    python experiments/bench_potential_dynamics.py --part npt
    python experiments/bench_potential_dynamics.py --part npt --potential sevennet-0 --ps 5
    python experiments/bench_potential_dynamics.py --part npt --potential sevennet-0 --engine ase
    python experiments/bench_potential_dynamics.py --part npt --engine ase --ps 10
    python experiments/bench_potential_dynamics.py --eos [--potential sevennet-0]
    python experiments/bench_potential_dynamics.py --summarize

MOF: MIL-53(Al) (CoRE 2019-ASR ``SABWAU01_clean``, 152 atoms), the system-specific student's
MOF; the starting frame of ``experiments/data/mil53-sevennet-0.extxyz``, relaxed at fixed cell
by the potential that runs it (ASE BFGS to fmax 0.02 eV/Å); ``jmof.md`` replicates it to 304
atoms so that minimum images are exact at 5 + 0.5 Å. Potential: the student of
``bench_potential_accuracy.py --set mil53-md --teacher sevennet-0-jax``
(``experiments/runs/potential-mil53-md-nequip``) by default, or any ``potentials.load``
argument (``sevennet-0``: the teacher, converted to JAX).
Velocities from a Maxwell–Boltzmann distribution at 300 K (600 K for NVE, which starts at the
minimum: equipartition gives half of it back to the potential energy, leaving about 300 K).

- ``nve``: velocity Verlet, 0.5 fs, 10 ps, float64 positions and energies. Drift: slope of a
  least-squares line through the total energy, in eV/atom/ps (goal < 1e-4); also its standard
  deviation about that line.
- ``nvt``: Nosé–Hoover chain at 300 K (τ = 100 fs), 1 fs, 10 ps. Mean and standard deviation
  of the kinetic temperature over the second half, against the canonical T·sqrt(2 / 3N).
- ``npt``: Nosé–Hoover NPT at 300 K and 1 bar (τ_T = 100 fs, τ_P = 1 ps, isotropic), 1 fs,
  20 ps. Volume per CoRE unit cell over time, its mean and standard deviation over the second
  half, next to the same run with the teacher (``--potential sevennet-0``, as long as it ran).
- ``--engine ase`` (``npt`` only): the same ensemble with ASE's isotropic MTK integrator
  (``IsotropicMTKNPT``: Nosé–Hoover chains on particles and volume, the equations JAX-MD's
  ``npt_nose_hoover`` integrates; same τ_T, τ_P, step and temperature) and the potential's ASE
  calculator, on the 152-atom CoRE cell. The calculator builds neighbour lists with periodic
  shifts, so the cell needs no replication: for a teacher at 1 s per 152-atom call on this
  CPU that halves the cost of the trace. With the student (the default potential) it is the
  control for the teacher's trace: same integrator, same 152-atom cell, other potential.
  Resumable like the others: its state (positions,
  momenta, volume and chain variables, log) is saved every 100 steps to
  ``experiments/runs/dynamics-npt-<potential>-ase/restart.npz``.
- ``--eos``: the 0 K equation of state that NPT samples around: the relaxed start scaled
  isotropically (lattice factors 0.97–1.03, the cell shape kept as in the isotropic NPT),
  positions relaxed at each volume (BFGS to 0.02 eV/Å), energy and pressure −tr(σ)/3. Cheap
  enough to run with the teacher, so student and teacher volumes compare directly; the NPT
  panel marks each potential's zero-pressure volume.

Runs keep a ``jmof.md`` restart file under ``experiments/runs/dynamics-<part>-<potential>/``
(rewritten every 1,000 steps): ``--budget-minutes`` stops at the first checkpoint after the
budget and the same command continues. A finished (or budget-stopped) run writes
``experiments/results/dynamics_<part>_<potential>.json`` with its summary and log;
``--summarize`` prints the table and plots ``experiments/results/dynamics.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, save

HERE = Path(__file__).parent
STUDENT = HERE / "runs" / "potential-mil53-md-nequip"
PARTS = {  # ps, fs per step, ensemble settings
    "nve": dict(ps=10.0, dt_fs=0.5),
    "nvt": dict(ps=10.0, dt_fs=1.0),
    "npt": dict(ps=20.0, dt_fs=1.0),
}
TEMPERATURE_K = 300.0
PRESSURE_GPA = 1e-4  # 1 bar


def start_structure(model, label: str):
    """The CoRE structure relaxed by ``model`` at fixed cell (ASE BFGS to fmax 0.02 eV/Å, at
    most 500 steps), cached as ``experiments/runs/dynamics-start-<label>-<params hash>.extxyz``
    (a retrained model gets its own)."""
    import hashlib

    import ase.io
    import jax
    from sevennet_md import relax
    from sevennet_md import start_structure as core_structure

    from jmof.structure import Crystal

    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(model.params):
        digest.update(np.asarray(leaf, np.float32).tobytes())
    path = HERE / "runs" / f"dynamics-start-{label}-{digest.hexdigest()[:10]}.extxyz"
    if not path.exists():
        atoms, _ = relax(core_structure(), model.calculator())
        path.parent.mkdir(parents=True, exist_ok=True)
        ase.io.write(path, atoms, format="extxyz")
    return Crystal.from_ase(ase.io.read(path))


def label_of(potential: str) -> str:
    return "student" if Path(potential).resolve() == STUDENT.resolve() else Path(potential).name


def summary(part: str, log: dict, n_atoms: int, repeats) -> dict:
    """The numbers each part reports, from a ``jmof.md`` log."""
    t_ps = np.asarray(log["time_fs"]) / 1000.0
    half = t_ps >= t_ps[-1] / 2
    out = {"time_ps": float(t_ps[-1]), "n_atoms": n_atoms}
    if part == "nve":
        total = np.asarray(log["conserved_eV"]) / n_atoms
        slope, offset = np.polyfit(t_ps, total, 1)
        out |= {
            "drift_eV_per_atom_ps": float(slope),
            "scatter_eV_per_atom": float(np.std(total - (slope * t_ps + offset))),
            "max_deviation_eV_per_atom": float(np.abs(total - total[0]).max()),
            "T_mean_K": float(np.mean(np.asarray(log["temperature_K"])[half])),
        }
    elif part == "nvt":
        temperature = np.asarray(log["temperature_K"])[half]
        out |= {
            "T_target_K": TEMPERATURE_K,
            "T_mean_K": float(temperature.mean()),
            "T_std_K": float(temperature.std()),
            "T_std_canonical_K": TEMPERATURE_K * float(np.sqrt(2.0 / (3.0 * n_atoms))),
        }
    else:
        cells = int(np.prod(repeats))
        volume = np.asarray(log["volume_A3"]) / cells
        out |= {
            "V_start_A3": float(volume[0]),
            "V_mean_A3": float(volume[half].mean()),
            "V_std_A3": float(volume[half].std()),
            "T_mean_K": float(np.mean(np.asarray(log["temperature_K"])[half])),
            "P_mean_GPa": float(np.mean(np.asarray(log["pressure_GPa"])[half])),
        }
    return out


def save_result(part, potential, label, dtype, dt, done, steps, repeats, n_atoms, log, **extra):
    """``experiments/results/dynamics_<part>_<label>.json``: the run's settings, summary and log."""
    payload = {
        "part": part,
        "potential": str(potential),
        "label": label,
        **extra,
        "dtype": dtype,
        "dt_fs": dt,
        "steps_done": done,
        "steps_target": steps,
        "repeats": list(repeats),
        "summary": summary(part, log, n_atoms, repeats),
        "log": {k: np.asarray(v).tolist() for k, v in log.items()},
    }
    save(f"dynamics_{part}_{label}", payload)


def run(part: str, potential: str, ps: float | None, budget_minutes: float | None):
    import jax

    jax.config.update("jax_enable_x64", True)
    import potentials
    from jmof import md

    settings = PARTS[part]
    total_ps = ps or settings["ps"]
    dt = settings["dt_fs"]
    steps = int(round(total_ps * 1000 / dt))
    model = potentials.load(potential, dtype="float64" if part == "nve" else None)
    crystal = start_structure(model, label_of(potential))
    system = md.system(
        model.config.build().apply, model.params, crystal, cutoff=model.config.cutoff
    )
    name = f"dynamics-{part}-{label_of(potential)}"
    folder = HERE / "runs" / name
    restart = folder / "restart.npz"
    trajectory = folder / "trajectory.extxyz"
    common = dict(dt_fs=dt, temperature_K=TEMPERATURE_K, log_every=10, traj_every=1000,
                  trajectory=trajectory, restart=restart, progress=True,
                  time_limit_s=60 * budget_minutes if budget_minutes else None)  # fmt: skip
    before = md.restart_steps(restart)
    started = time.perf_counter()
    if part == "nve":
        # From the minimum, equipartition halves the kinetic energy: start at 2T.
        result = md.run_nve(system, steps=steps, **(common | {"temperature_K": 600.0}))
    elif part == "nvt":
        result = md.run_nvt(system, steps=steps, tau_fs=100.0, **common)
    else:
        result = md.run_npt(system, steps=steps, pressure_GPa=PRESSURE_GPA, tau_T_fs=100.0,
                            tau_P_fs=1000.0, **common)  # fmt: skip
    elapsed, done = time.perf_counter() - started, result.steps
    if done > before:
        rate = system.crystal.n_atoms * (done - before) / elapsed
        print(f"{name}: {done}/{steps} steps, {rate:.0f} atom·steps/s (compile included)")
    save_result(part, potential, label_of(potential), model.config.dtype, dt, done, steps,
                system.repeats, system.crystal.n_atoms, result.log)  # fmt: skip
    if done < steps:
        print(f"{name}: budget reached at {done}/{steps} steps; run the same command to continue")


def run_ase_npt(potential: str, ps: float | None, budget_minutes: float | None) -> None:
    """``--part npt --engine ase``: isotropic MTK NPT through ASE, resumable (module doc)."""
    from ase import units
    from ase.md.nose_hoover_chain import IsotropicMTKNPT
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    import potentials
    from jmof.data import save_npz
    from jmof.progress import progress_bar

    settings = PARTS["npt"]
    dt = settings["dt_fs"]
    steps = int(round((ps or settings["ps"]) * 1000 / dt))
    model = potentials.load(potential)
    crystal = start_structure(model, label_of(potential))
    label = f"{label_of(potential)}-ase"
    folder = HERE / "runs" / f"dynamics-npt-{label}"
    restart = folder / "restart.npz"
    atoms = crystal.to_ase()
    atoms.calc = model.calculator()
    MaxwellBoltzmannDistribution(atoms, temperature_K=TEMPERATURE_K, rng=np.random.default_rng(0))
    Stationary(atoms)
    dyn = IsotropicMTKNPT(atoms, timestep=dt * units.fs, temperature_K=TEMPERATURE_K,
                          pressure_au=PRESSURE_GPA * units.GPa, tdamp=100 * units.fs,
                          pdamp=1000 * units.fs)  # fmt: skip
    # The integrator's state (ASE 3.29 keeps it in these attributes; a restart overwrites them).
    state = {
        "": ("_q", "_p", "_eps", "_p_eps", "_cell0", "_volume0"),
        "thermostat": ("_eta", "_p_eta"),
        "barostat": ("_xi", "_p_xi"),
    }
    owners = {"": dyn, "thermostat": dyn._thermostat, "barostat": dyn._barostat}
    keys = ("step", "time_fs", "volume_A3", "temperature_K", "pressure_GPa", "potential_eV")
    log = {k: [] for k in keys}
    done = 0
    if restart.exists():
        saved = np.load(restart)
        for owner, names in state.items():
            for name in names:
                value = saved[f"{owner}.{name}"]
                setattr(owners[owner], name, value if value.ndim else float(value))
        done = int(saved["step"])
        log = {k: saved[f"log.{k}"].tolist() for k in keys}
        dyn._update_atoms()

    def record(step):
        stress = atoms.get_stress(voigt=False, include_ideal_gas=True)
        log["step"].append(step)
        log["time_fs"].append(step * dt)
        log["volume_A3"].append(float(atoms.get_volume()))
        log["temperature_K"].append(float(atoms.get_temperature()))
        log["pressure_GPa"].append(float(-np.trace(stress) / 3 / units.GPa))
        log["potential_eV"].append(float(atoms.get_potential_energy()))

    def save_state(step):
        arrays = {f"{o}.{n}": np.asarray(getattr(owners[o], n)) for o, ns in state.items()
                  for n in ns}  # fmt: skip
        arrays |= {f"log.{k}": np.asarray(v) for k, v in log.items()}
        save_npz(restart, step=step, **arrays)

    if done == 0:
        record(0)
    started = time.perf_counter()
    with progress_bar(True) as bar:
        task = bar.add_task(f"NPT, {label}", total=steps, completed=done)
        step = done
        while step < steps:
            dyn.step()
            step += 1
            bar.advance(task)
            if step % 10 == 0:
                record(step)
            if step % 100 == 0 or step == steps:
                save_state(step)
                over = budget_minutes and time.perf_counter() - started > 60 * budget_minutes
                if over:
                    break
    rate = crystal.n_atoms * (step - done) / (time.perf_counter() - started)
    print(f"dynamics-npt-{label}: {step}/{steps} steps, {rate:.1f} atom·steps/s")
    save_result("npt", potential, label, model.config.dtype, dt, step, steps, (1, 1, 1),
                crystal.n_atoms, log, engine="ase IsotropicMTKNPT")  # fmt: skip
    if step < steps:
        print(f"budget reached at {step}/{steps} steps; run the same command to continue")


SCALES = (0.97, 0.98, 0.99, 1.0, 1.01, 1.02, 1.03)


def eos_fit(rows) -> dict:
    """Zero-pressure volume (linear interpolation of P(V) between the bracketing points), the
    minimum of a cubic fit of E(V) as a cross-check (P = −dE/dV), and the bulk modulus
    V·E''(V) there, in GPa."""
    from jmof.potential import EV_PER_A3_TO_GPA

    volume = np.array([r["volume_A3"] for r in rows])
    pressure = np.array([r["pressure_GPa"] for r in rows])
    energy = np.array([r["energy_eV"] for r in rows])
    order = np.argsort(volume)
    fit = np.polynomial.Polynomial.fit(volume, energy, 3)
    roots = [r.real for r in fit.deriv().roots() if abs(r.imag) < 1e-9]
    inside = [r for r in roots if volume.min() <= r <= volume.max() and fit.deriv(2)(r) > 0]
    v_min = float(inside[0]) if inside else None
    return {
        "V0_zero_pressure_A3": float(np.interp(0.0, -pressure[order], volume[order])),
        "V0_energy_minimum_A3": v_min,
        "B0_GPa": float(v_min * fit.deriv(2)(v_min) * EV_PER_A3_TO_GPA) if inside else None,
    }


def equation_of_state(potential: str) -> None:
    """Energy and pressure against volume at 0 K (see the module docstring)."""
    from sevennet_md import relax

    import potentials
    from jmof.potential import EV_PER_A3_TO_GPA
    from jmof.structure import Crystal

    model = potentials.load(potential)
    start = start_structure(model, label_of(potential))
    rows = []
    for scale in SCALES:
        scaled = Crystal(start.species, start.positions * scale, start.cell * scale, start.pbc)
        atoms, info = relax(scaled, model.calculator(), steps=300)
        pressure = -float(np.trace(atoms.get_stress(voigt=False))) / 3 * EV_PER_A3_TO_GPA
        rows.append(dict(scale=scale, volume_A3=float(atoms.get_volume()),
                         energy_eV=info["energy_eV"], pressure_GPa=pressure,
                         fmax=info["fmax"], steps=info["steps"]))  # fmt: skip
        print(f"{label_of(potential)}: scale {scale:.2f}, V {rows[-1]['volume_A3']:.1f} Å³, "
              f"E {info['energy_eV']:.4f} eV, P {pressure:.3f} GPa, "
              f"{info['steps']} steps")  # fmt: skip
    save(
        f"dynamics_eos_{label_of(potential)}",
        {
            "potential": str(potential),
            "label": label_of(potential),
            "n_atoms": start.n_atoms,
            "rows": rows,
        }
        | eos_fit(rows),
    )


def summarize() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted(p for p in RESULTS.glob("dynamics_*.json") if "_eos_" not in p.name)
    if not runs:
        print("no dynamics results yet")
        return
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for path in runs:
        data = json.loads(path.read_text())
        part, label, log = data["part"], data["label"], data["log"]
        print(f"{part:4s} {label:12s} {data['steps_done']}/{data['steps_target']} steps "
              f"{json.dumps(data['summary'])}")  # fmt: skip
        t_ps = np.asarray(log["time_fs"]) / 1000.0
        n = data["summary"]["n_atoms"]
        if part == "nve":
            total = np.asarray(log["conserved_eV"]) / n
            axes[0].plot(t_ps, 1000 * (total - total[0]), lw=0.8, label=label)
        elif part == "nvt":
            axes[1].plot(t_ps, log["temperature_K"], lw=0.6, label=label)
        else:
            cells = int(np.prod(data["repeats"]))
            volume = np.asarray(log["volume_A3"]) / cells
            (line,) = axes[2].plot(t_ps, volume, lw=0.5, alpha=0.35)
            # The barostat's swing has a period of about 0.5 ps: its running mean shows drift.
            width = max(1, int(round(0.5 / np.median(np.diff(t_ps)))))
            smooth = np.convolve(volume, np.ones(width) / width, mode="valid")
            axes[2].plot(t_ps[width // 2 : width // 2 + len(smooth)], smooth, lw=1.6,
                         color=line.get_color(), label=f"{label} (0.5 ps mean)")  # fmt: skip
    for k, path in enumerate(sorted(RESULTS.glob("dynamics_eos_*.json"))):
        data = json.loads(path.read_text())
        fit = eos_fit(data["rows"])
        v_min, bulk = fit["V0_energy_minimum_A3"], fit["B0_GPa"]
        minimum = f"{v_min:.1f} Å³, B0 {bulk:.1f} GPa" if v_min else "outside the scan"
        print(f"eos  {data['label']:12s} V0 (P = 0) {fit['V0_zero_pressure_A3']:.1f} Å³ per "
              f"CoRE cell, E(V) minimum {minimum}")  # fmt: skip
        axes[2].axhline(fit["V0_zero_pressure_A3"], color=f"C{k + 3}", ls="--", lw=0.8,
                        label=f"{data['label']}, 0 K, P = 0")  # fmt: skip
    axes[0].set(xlabel="t (ps)", ylabel="E_total - E_0 (meV/atom)", title="NVE, 0.5 fs")
    axes[1].axhline(TEMPERATURE_K, color="k", lw=0.5)
    axes[1].set(xlabel="t (ps)", ylabel="T (K)", title="NVT Nosé–Hoover, 300 K")
    axes[2].set(xlabel="t (ps)", ylabel="V per cell (Å³)", title="NPT 300 K, 1 bar")
    for ax in axes:
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle('MIL-53(Al): jmof.md on 304 atoms; "-ase" runs: ASE on the 152-atom cell')
    fig.tight_layout()
    fig.savefig(RESULTS / "dynamics.png", dpi=120)
    print(f"wrote {RESULTS / 'dynamics.png'}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=tuple(PARTS))
    parser.add_argument("--potential", default=str(STUDENT))
    parser.add_argument("--ps", type=float, default=None, help="simulated time (default: part's)")
    parser.add_argument("--budget-minutes", type=float, default=None)
    parser.add_argument("--summarize", action="store_true")
    parser.add_argument("--eos", action="store_true", help="0 K energy and pressure vs volume")
    parser.add_argument(
        "--engine", choices=("jax-md", "ase"), default="jax-md", help="ase: NPT through ASE"
    )
    args = parser.parse_args()

    from jmof.data import enable_compilation_cache

    enable_compilation_cache()  # a resumed chunk reuses the programs earlier chunks compiled
    if args.summarize:
        summarize()
    elif args.eos:
        equation_of_state(args.potential)
    elif args.part and args.engine == "ase":
        if args.part != "npt":
            parser.error("--engine ase runs --part npt")
        run_ase_npt(args.potential, args.ps, args.budget_minutes)
    elif args.part:
        run(args.part, args.potential, args.ps, args.budget_minutes)
    else:
        parser.error("give --part or --summarize")


if __name__ == "__main__":
    main()
