"""Throughput of guest–framework energies: direct Widom insertion and energy grids (issue 6).

    python experiments/bench_physics_speed.py [--device cpu|gpu] [--out FILE]

Structures: the acs example framework shipped with the tests (128 atoms,
``tests/data/griday/acs+N270+E33.cif``) and its 2×2×2 supercell (1,024 atoms), so that the run
needs no CoRE MOF data (the device machine has none). For each: CH4 Widom insertion (1,000,000
insertions, float32) and a 0.3 Å CH4 grid; median of 3 runs after a warm-up; throughput in
guest–atom pairs per second over the replicated framework. Writes
``experiments/results/physics_speed_<device>.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import machine, median_time, save

CIF = Path(__file__).parents[1] / "tests" / "data" / "griday" / "acs+N270+E33.cif"


def main():
    import jax

    import jmof
    from jmof.physics import forcefield as ffm
    from jmof.physics import grid as gridm
    from jmof.physics import host as hostm
    from jmof.physics import widom

    parser = argparse.ArgumentParser()
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.device == "gpu" and jax.default_backend() != "gpu":
        raise SystemExit(f"no GPU: JAX backend is {jax.default_backend()}")
    base = jmof.read(CIF)
    rows = []
    for label, crystal in (
        ("acs (128 atoms)", base),
        ("acs 2x2x2 (1,024 atoms)", base.repeat((2, 2, 2))),
    ):
        h = hostm.host(crystal, ffm.uff())
        n = 1_000_000

        def insert(crystal=crystal, n=n):
            return widom.henry_coefficient(crystal, "CH4", 298.0, n_insertions=n)

        insert()
        t_widom, runs_widom = median_time(insert)
        shape = gridm.grid_shape(crystal.cell, 0.3)

        def build(crystal=crystal, shape=shape):
            return gridm.energy_grid(crystal, "CH4", shape=shape).values.block_until_ready()

        build()
        t_grid, runs_grid = median_time(build)
        points = shape[0] * shape[1] * shape[2]
        rows.append(
            {
                "structure": label,
                "supercell_atoms": h.n_atoms,
                "widom_insertions": n,
                "widom_s": t_widom,
                "widom_runs": runs_widom,
                "widom_pairs_per_s": n * h.n_atoms / t_widom,
                "grid_shape": list(shape),
                "grid_s": t_grid,
                "grid_runs": runs_grid,
                "grid_pairs_per_s": points * h.n_atoms / t_grid,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    out = {"device": str(jax.devices()[0]), "rows": rows, "machine": machine()}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    else:
        save(f"physics_speed_{args.device}", out)


if __name__ == "__main__":
    main()
