"""Speed of equivariant potentials: jmof (JAX) against the torch originals, same run (issue 5).

    python experiments/bench_potential_speed.py [--repeats 5] [--sizes 100,400,1000]

Energy + forces + stress of three CoRE MOFs (2019-ASR, the valid structures closest to ~100,
~400 and ~1,000 atoms), median wall time per call after a warm-up call, for:

- SevenNet-0 (torch, ``sevenn``'s ASE calculator) and jmof NequIP with SevenNet-0's width and
  depth (5 layers, 128x0e+64x1o+32x2e, l_max 2, 5 Å, 8 Bessel functions, radial MLP 64-64,
  linear self-connection; random weights: speed does not depend on them);
- CHGNet (torch);
- mace-torch and jmof MACE of the same size (2 layers, 32 channels, L = 1, l_max 3,
  correlation 3, 5 Å; random weights), when mace-torch is installed (it pins e3nn 0.4.4, which
  conflicts with sevenn, so install it with ``pip install --no-deps mace-torch==0.3.16`` plus its
  light dependencies; it runs with e3nn 0.6);
- the distilled students (a small NequIP, the larger NequIP of 32 channels and l_max 2, and a
  small MACE; random weights);
- MD throughput (atom·steps/s) on MIL-53(Al): ASE velocity Verlet with SevenNet-0 against
  ``jmof.md.run_nve`` with the two student NequIPs and the MACE student of the accuracy
  benchmark (32 channels, l_max 2, ν = 3) (JAX-MD replicates the 152-atom cell to make
  minimum images exact; throughput counts the atoms simulated), in the steady state after
  compilation (:func:`md_throughput`). The peer runs 20 steps
  before and 20 after the students (its rate drifts with the machine); ratios are to the
  mean. ``--md-only`` runs this part alone (``potential_speed_md.json``).

jmof times include building the neighbour list on the host (as the torch calculators do) and
are also reported for the compiled model alone. Both frameworks use the machine's cores
(torch threads = os.cpu_count()). Results: ``experiments/results/potential_speed.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import numpy as np
from _common import save
from bench_potential_accuracy import student

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


def pick_structures(sizes):
    from jmof.data import coremof

    dataset = coremof.load("2019-ASR", progress=False)
    n = dataset.n_atoms
    picked = []
    for size in sizes:
        k = int(np.argmin(np.abs(n - size)))
        picked.append((dataset.names[k], dataset.crystals[k]))
    return picked


def timed(fn, repeats):
    fn()  # warm-up (compilation, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def jmof_timer(config, crystal, repeats):
    import jax
    import jax.numpy as jnp

    from jmof.graph import batch, radius_graph
    from jmof.potential import energy_forces_stress

    model = config.build()
    graph = jax.tree.map(jnp.asarray, batch([radius_graph(crystal, config.cutoff)]))
    params = jax.jit(model.init)(jax.random.key(0), graph)
    efs = jax.jit(lambda p, g: energy_forces_stress(model.apply, p, g))
    start = time.perf_counter()
    jax.block_until_ready(efs(params, graph))
    compile_s = time.perf_counter() - start

    def full():
        g = jax.tree.map(jnp.asarray, batch([radius_graph(crystal, config.cutoff)]))
        jax.block_until_ready(efs(params, g))

    def model_only():
        jax.block_until_ready(efs(params, graph))

    return {
        "total_s": timed(full, repeats),
        "model_s": timed(model_only, repeats),
        "compile_s": compile_s,
        "n_edges": int(np.asarray(graph.edge_mask).sum()),
    }


def ase_timer(calc, crystal, repeats):
    from ase.calculators.calculator import all_changes

    atoms = crystal.to_ase()

    def call():
        if hasattr(calc, "reset"):
            calc.reset()
        calc.calculate(atoms, ["energy", "forces", "stress"], all_changes)

    return {"total_s": timed(call, repeats)}


def mace_torch_calculator(elements, path):
    """A random-weight mace-torch model of the benchmark size, saved and loaded through
    mace's own ASE calculator; None if mace-torch is not installed."""
    try:
        import torch
        from e3nn import o3
        from mace.calculators import MACECalculator
        from mace.modules import (
            RealAgnosticInteractionBlock,
            RealAgnosticResidualInteractionBlock,
            ScaleShiftMACE,
        )
    except ImportError:
        return None
    torch.manual_seed(0)
    model = ScaleShiftMACE(
        r_max=5.0,
        num_bessel=8,
        num_polynomial_cutoff=5,
        max_ell=3,
        interaction_cls=RealAgnosticResidualInteractionBlock,
        interaction_cls_first=RealAgnosticInteractionBlock,
        num_interactions=2,
        num_elements=len(elements),
        hidden_irreps=o3.Irreps("32x0e+32x1o"),
        MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.zeros(len(elements)),
        avg_num_neighbors=30.0,
        atomic_numbers=list(elements),
        correlation=3,
        gate=torch.nn.functional.silu,
        radial_MLP=[64, 64, 64],
        atomic_inter_scale=1.0,
        atomic_inter_shift=0.0,
    )
    torch.save(model, path)
    return MACECalculator(model_paths=str(path), device="cpu", default_dtype="float32")


def peer_md_throughput(peer_calc, crystal, steps: int = 20) -> float:
    """atom·steps/s of ASE velocity Verlet (0.5 fs) with ``peer_calc``, after one warm-up step."""
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    atoms = crystal.to_ase()
    atoms.calc = peer_calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    dyn.run(1)
    start = time.perf_counter()
    dyn.run(steps)
    return crystal.n_atoms * steps / (time.perf_counter() - start)


def md_throughput(config, crystal, steps: int) -> dict:
    """atom·steps/s of ``jmof.md.run_nve`` (0.5 fs) with ``config`` (random weights), in the
    steady state: each ``run_nve`` call compiles its chunk afresh (tens of seconds for a MACE
    student), so a run of 50 steps is timed as well, and the rate is that of the ``steps``
    more that the longer run takes. The compile time (about the short run's) is reported
    beside it."""
    import jax
    import jax.numpy as jnp

    from jmof import md
    from jmof.graph import batch, radius_graph

    model = config.build()
    graph = jax.tree.map(jnp.asarray, batch([radius_graph(crystal, config.cutoff)]))
    params = jax.jit(model.init)(jax.random.key(0), graph)
    system = md.system(model.apply, params, crystal, cutoff=config.cutoff)
    elapsed = {}
    for n in (50, 50 + steps):
        start = time.perf_counter()
        md.run_nve(system, steps=n, dt_fs=0.5, temperature_K=300, log_every=50, progress=False)
        elapsed[n] = time.perf_counter() - start
    nbrs = system.neighbor_fn.allocate(system.positions)
    return {
        "structure_atoms": crystal.n_atoms,
        "jmof_atoms": system.crystal.n_atoms,
        "jmof_atom_steps_per_s": system.crystal.n_atoms
        * steps
        / (elapsed[50 + steps] - elapsed[50]),
        "first_50_steps_s": elapsed[50],
        "edges_evaluated": nbrs.capacity,
        "pairs_listed": int(nbrs.verlet.idx.shape[1]),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default="100,400,1000")
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--md-only", action="store_true", help="only the MD throughput")
    parser.add_argument("--md-steps", type=int, default=500)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    from potentials import MACEConfig, NequIPConfig
    from potentials.teachers import calculator

    structures = pick_structures(sizes)
    elements = tuple(sorted({int(z) for _, c in structures for z in np.unique(c.species)}))
    sevennet_like = NequIPConfig(
        elements=elements,
        cutoff=5.0,
        n_layers=5,
        hidden_irreps="128x0e+64x1o+32x2e",
        l_max=2,
        n_basis=8,
        radial_hidden=(64, 64),
        self_connection="linear",
        avg_num_neighbors=36.0,
    )
    mace_like = MACEConfig(
        elements=elements,
        cutoff=5.0,
        n_layers=2,
        channels=32,
        l_max=3,
        hidden_l=1,
        correlation=3,
        avg_num_neighbors=30.0,
    )
    # The students of the accuracy benchmark (one definition, there).
    student_nequip = dataclasses.replace(student("nequip", elements), avg_num_neighbors=30.0)
    student_large = dataclasses.replace(
        student("nequip", elements, channels=32, l_max=2), avg_num_neighbors=30.0
    )
    student_mace = dataclasses.replace(student("mace", elements), avg_num_neighbors=30.0)
    peers = {}
    if not args.skip_torch:
        import torch

        torch.set_num_threads(os.cpu_count())
        peers["SevenNet-0 (torch)"] = calculator("sevennet-0")
        if not args.md_only:  # the MD part only runs SevenNet-0
            peers["CHGNet (torch)"] = calculator("chgnet")
            mace = mace_torch_calculator(elements, "/tmp/jmof_bench_mace.model")
            if mace is not None:
                peers["mace-torch"] = mace
    jmof_models = {
        "jmof NequIP, SevenNet-0 size": sevennet_like,
        "jmof MACE, mace-torch size": mace_like,
        "jmof student NequIP": student_nequip,
        "jmof larger student NequIP": student_large,
        "jmof student MACE": student_mace,
    }
    rows = []
    for name, crystal in [] if args.md_only else structures:
        print(f"{name}: {crystal.n_atoms} atoms")
        for label, calc in peers.items():
            r = ase_timer(calc, crystal, args.repeats)
            rows.append({"structure": name, "n_atoms": crystal.n_atoms, "model": label, **r})
            print(f"  {label:32s} {r['total_s']:8.3f} s")
        for label, config in jmof_models.items():
            r = jmof_timer(config, crystal, args.repeats)
            rows.append({"structure": name, "n_atoms": crystal.n_atoms, "model": label, **r})
            print(
                f"  {label:32s} {r['total_s']:8.3f} s (model {r['model_s']:.3f} s, "
                f"compile {r['compile_s']:.1f} s)"
            )
    from jmof.data import coremof

    mil53 = coremof.load("2019-ASR", progress=False)["SABWAU01_clean"]
    mil53_elements = tuple(sorted(set(mil53.species.tolist())))
    md_runs = {}
    peer = peers.get("SevenNet-0 (torch)")
    if peer is not None:  # once, before and after the students: the peer's rate drifts
        md_runs["md_peer_atom_steps_per_s"] = [peer_md_throughput(peer, mil53)]
    for label, model, kwargs in [
        ("md", "nequip", {}),
        ("md_larger_student", "nequip", {"channels": 32, "l_max": 2}),
        ("md_mace_student", "mace", {"channels": 32, "correlation": 3}),
    ]:
        config = dataclasses.replace(
            student(model, mil53_elements, **kwargs), avg_num_neighbors=30.0
        )
        md_runs[label] = md_throughput(config, mil53, args.md_steps)
        print(f"MD on MIL-53(Al), {label}: {md_runs[label]}")
    if peer is not None:
        md_runs["md_peer_atom_steps_per_s"].append(peer_md_throughput(peer, mil53))
        rate = float(np.mean(md_runs["md_peer_atom_steps_per_s"]))
        print(f"MD on MIL-53(Al), ASE + SevenNet-0: {md_runs['md_peer_atom_steps_per_s']}")
        for label in ("md", "md_larger_student", "md_mace_student"):
            md_runs[label]["ratio"] = md_runs[label]["jmof_atom_steps_per_s"] / rate
            print(f"  {label}: {md_runs[label]['ratio']:.1f}x the mean peer rate")
    out = "potential_speed_md" if args.md_only else "potential_speed"
    save(out, {"repeats": args.repeats, "rows": rows, **md_runs})


if __name__ == "__main__":
    main()
