"""SevenNet-0 in jmof (converted, JAX) against SevenNet-0 in torch, same run (issue 7).

    python experiments/bench_sevennet.py                 # CPU: speed, labelling, memory
    python experiments/bench_sevennet.py --device gpu    # the same on a GPU (no memory probe)

Structures come from the parity reference file (``tests/data/sevennet0-reference.extxyz``:
CoRE MOF 2019-ASR structures, lightly rattled), so the script needs neither the CoRE MOF
package nor torch for the jmof half (``--skip-torch``).

- **Speed**: energy + forces + stress per call, median of ``--repeats`` after a warm-up, on the
  MOFs closest to ~100, ~400 and ~1,000 atoms; jmof with the neighbour list built on the host
  (``total_s``, as SevenNet's ASE calculator does) and for the compiled model alone
  (``model_s``). Both float32.
- **Labelling throughput** (structures/min): all reference MOFs of at most 400 atoms, labelled
  by ``Potential.energy_forces_stress`` (padded batches of ~2,048 atoms) and by SevenNet's
  calculator one structure at a time (how ``potentials.teachers.label`` uses it).
- **Memory** (CPU only): peak resident memory of one energy+forces+stress evaluation of
  supercells of a ~400-atom MOF, each in a fresh process, and the largest system that fits in
  24 GiB extrapolated linearly from them (the machine has 24 GiB in all: running into the limit
  would take the session down with it).

Results: ``experiments/results/sevennet_speed_<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
HERE = Path(__file__).parent
REFERENCE = HERE.parent / "tests" / "data" / "sevennet0-reference.extxyz"
GIB = 1024**3


def _timed(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _mofs():
    from jmof.data.labelled import read_extxyz

    dataset = read_extxyz(REFERENCE)
    keep = [k for k, name in enumerate(dataset.names) if "-" not in name.split("_")[0]]
    return dataset.take(keep)


def _closest(dataset, size):
    k = int(np.argmin([abs(c.n_atoms - size) for c in dataset.crystals]))
    return dataset.names[k], dataset.crystals[k]


def jmof_efs(potential):
    """(compiled efs, graph builder) of a potential for single structures."""
    import jax
    import jax.numpy as jnp

    from jmof.graph import batch, radius_graph
    from jmof.potential import energy_forces_stress

    model = potential.config.build()
    efs = jax.jit(lambda p, g: energy_forces_stress(model.apply, p, g))

    def graph(crystal):
        return jax.tree.map(jnp.asarray, batch([radius_graph(crystal, potential.config.cutoff)]))

    return efs, graph


def speed(potential, torch_calc, structures, repeats: int) -> list[dict]:
    import jax
    from ase.calculators.calculator import all_changes

    efs, graph_of = jmof_efs(potential)
    rows = []
    for name, crystal in structures:
        g = graph_of(crystal)
        start = time.perf_counter()
        jax.block_until_ready(efs(potential.params, g))
        compile_s = time.perf_counter() - start
        row = {
            "structure": name,
            "n_atoms": crystal.n_atoms,
            "n_edges": int(np.asarray(g.edge_mask).sum()),
            "jmof_total_s": _timed(
                lambda c=crystal: jax.block_until_ready(efs(potential.params, graph_of(c))),
                repeats,
            ),
            "jmof_model_s": _timed(
                lambda g=g: jax.block_until_ready(efs(potential.params, g)), repeats
            ),
            "jmof_compile_s": compile_s,
        }
        if torch_calc is not None:
            atoms = crystal.to_ase()

            def call(atoms=atoms):
                torch_calc.reset()
                torch_calc.calculate(atoms, ["energy", "forces", "stress"], all_changes)

            row["torch_total_s"] = _timed(call, repeats)
            row["speedup"] = row["torch_total_s"] / row["jmof_total_s"]
        rows.append(row)
        print(json.dumps(row))
    return rows


def labelling(potential, torch_calc, crystals) -> dict:
    out = {"n_structures": len(crystals), "n_atoms": int(sum(c.n_atoms for c in crystals))}
    potential.energy_forces_stress(crystals)  # compile the bucketed shapes
    start = time.perf_counter()
    potential.energy_forces_stress(crystals)
    out["jmof_structures_per_min"] = 60 * len(crystals) / (time.perf_counter() - start)
    if torch_calc is not None:
        start = time.perf_counter()
        for crystal in crystals:
            atoms = crystal.to_ase()
            atoms.calc = torch_calc
            atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        out["torch_structures_per_min"] = 60 * len(crystals) / (time.perf_counter() - start)
        out["speedup"] = out["jmof_structures_per_min"] / out["torch_structures_per_min"]
    print(json.dumps(out))
    return out


def memory_probe(kind: str, repeat: int) -> None:
    """In a fresh process: one evaluation of the ~400-atom MOF repeated ``repeat`` times along
    a; prints the peak RSS (bytes) and the atom count as JSON."""
    _, crystal = _closest(_mofs(), 400)
    crystal = crystal.repeat((repeat, 1, 1))
    if kind == "jmof":
        import jax

        from potentials import load

        potential = load("sevennet-0")
        efs, graph_of = jmof_efs(potential)
        jax.block_until_ready(efs(potential.params, graph_of(crystal)))
    else:
        from potentials.teachers import calculator

        atoms = crystal.to_ase()
        atoms.calc = calculator("sevennet-0")
        atoms.get_forces(), atoms.get_stress()
    print(json.dumps({"kind": kind, "n_atoms": crystal.n_atoms, "peak_bytes": _peak_rss()}))


def _peak_rss() -> int:
    """Bytes, this process's peak resident memory (VmHWM: unlike ``ru_maxrss`` it is not
    inherited from the parent across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def memory(kinds, repeats=(1, 2, 4)) -> dict:
    out = {}
    for kind in kinds:
        points = []
        for r in repeats:
            cmd = [sys.executable, __file__, "--memory-probe", kind, "--probe-repeat", str(r)]
            result = subprocess.run(cmd, capture_output=True, text=True, check=True)
            point = json.loads(result.stdout.strip().splitlines()[-1])
            points.append(point)
            print(json.dumps(point))
        n = np.array([p["n_atoms"] for p in points], float)
        b = np.array([p["peak_bytes"] for p in points], float)
        slope, intercept = np.polyfit(n, b, 1)
        out[kind] = {
            "points": points,
            "bytes_per_atom": slope,
            "baseline_bytes": intercept,
            "max_atoms_in_24GiB_extrapolated": int((24 * GIB - intercept) / slope),
        }
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument(
        "--parts", default="speed,labelling,memory", help="comma-separated subset to run"
    )
    parser.add_argument("--memory-probe", choices=("jmof", "torch"))
    parser.add_argument("--probe-repeat", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.memory_probe:
        memory_probe(args.memory_probe, args.probe_repeat)
        return
    import jax

    from potentials import load

    backend = jax.default_backend()
    if (backend == "gpu") != (args.device == "gpu"):
        raise SystemExit(f"--device {args.device} but JAX runs on {backend}")
    potential = load("sevennet-0")
    torch_calc = None
    if not args.skip_torch:
        import torch
        from sevenn.calculator import SevenNetCalculator

        if args.device == "cpu":
            torch.set_num_threads(os.cpu_count())
        torch_calc = SevenNetCalculator("7net-0", device="cuda" if args.device == "gpu" else "cpu")
    out = args.out or HERE / "results" / f"sevennet_speed_{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)

    def write():  # after each part, so that an interrupted run keeps what it measured
        out.write_text(json.dumps(payload, indent=1, default=float))

    mofs = _mofs()
    structures = [_closest(mofs, size) for size in (100, 400, 1000)]
    parts = set(args.parts.split(","))
    if out.exists():  # keep the parts measured by an earlier run
        payload = json.loads(out.read_text())
    else:
        payload = {}
    payload.update(
        {
            "device": args.device,
            "jax": jax.__version__,
            "jax_device": str(jax.devices()[0]),
            "cpu_count": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d"),
            "repeats": args.repeats,
        }
    )
    if "speed" in parts:
        payload["speed"] = speed(potential, torch_calc, structures, args.repeats)
        write()
    if "labelling" in parts:
        small = [c for c in mofs.crystals if c.n_atoms <= 400]
        payload["labelling"] = labelling(potential, torch_calc, small)
        write()
    if "memory" in parts and args.device == "cpu":
        payload["memory"] = memory(["jmof"] + ([] if args.skip_torch else ["torch"]))
        write()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
