"""Energy grids and Widom insertion on real frameworks (issue 6).

    python experiments/bench_widom.py [--parts griday,widom,fit]

- ``griday``: every example grid shipped in the ``moftransformer`` 2.2.0 wheel (fetched from PyPI
  with ``pip download`` into the cache): GRIDAY's CH4 grid (UFF, 12.8 Å, truncated, 30³ points
  on the ≥ 30 Å supercell) against ``jmof.physics.energy_grid`` with the same conventions —
  Pearson correlation and median relative difference over points attractive in both, and time.
- ``widom``: CH4, Kr and Xe at 298 K in 10 CoRE MOF 2019-ASR structures (the first 10 of the
  name-hash order with 30–200 atoms and PLD ≥ 3.8 Å): direct Widom insertion and insertion into
  a 0.3 Å grid (cubic B-spline), 20,000 insertions each, 5 blocks; the z-score of the
  difference and the wall time of each.
- ``fit``: the force-field example: starting from UFF, fit the ε of carbon so that CH4's ln K_H
  in one MOF matches a target computed with ε_C raised by 30 %, by gradient descent (optax
  Adam) through ``log_henry``; reports the recovered ε and the number of steps.

Writes ``experiments/results/widom.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
from _common import RESULTS, machine, save


def griday_examples() -> Path:
    from jmof.data.cache import cache_root

    root = cache_root() / "moftransformer-2.2.0"
    if not (root / "done").exists():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "moftransformer==2.2.0", "--no-deps",
             "-q", "-d", str(root)],
            check=True,
        )  # fmt: skip
        wheel = next(root.glob("moftransformer-2.2.0-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                if name.startswith("moftransformer/examples/dataset/total/"):
                    z.extract(name, root)
        (root / "done").touch()
    return root / "moftransformer" / "examples" / "dataset" / "total"


def part_griday() -> dict:
    import jmof
    from jmof.physics import forcefield as ffm
    from jmof.physics import grid as gridm

    rows = []
    for grid_file in sorted(griday_examples().glob("*.grid")):
        stem = grid_file.with_suffix("")
        crystal = jmof.read(f"{stem}.cif")
        ref = gridm.read_griday(stem)
        reps = [math.ceil(30.0 / n) for n in np.linalg.norm(crystal.cell, axis=1)]
        supercell = crystal.repeat(reps)
        start = time.perf_counter()
        grid = gridm.energy_grid(supercell, "CH4", ffm.uff(12.8, shifted=False), shape=ref.shape)
        ours = np.asarray(grid.values)
        seconds = time.perf_counter() - start
        theirs = np.asarray(ref.values)
        both = (ours < 0) & (theirs < 0)
        rel = np.abs(ours[both] - theirs[both]) / np.abs(theirs[both])
        rows.append(
            {
                "name": stem.name,
                "supercell_atoms": supercell.n_atoms,
                "attractive_points": int(both.sum()),
                "pearson": float(np.corrcoef(ours[both], theirs[both])[0, 1]),
                "median_rel": float(np.median(rel)),
                "p95_rel": float(np.percentile(rel, 95)),
                "sign_agreement": float(np.mean((ours > 0) == (theirs > 0))),
                "seconds": seconds,
            }
        )
        print(rows[-1], flush=True)
    return {"rows": rows}


def widom_structures(n: int = 10) -> list[str]:
    from jmof.data import coremof

    props = coremof.properties("2019-ASR")
    dataset = coremof.load("2019-ASR", max_atoms=200, progress=False)
    names = [s for s, c in zip(dataset.names, dataset.crystals) if c.n_atoms >= 30]
    names = [s for s in names if props[s]["PLD"] >= 3.8]
    names.sort(key=lambda s: hashlib.sha256(s.encode()).hexdigest())
    return names[:n]


def part_widom() -> dict:
    import jax

    from jmof.data import coremof
    from jmof.physics import grid as gridm
    from jmof.physics import widom

    dataset = coremof.load("2019-ASR", names=widom_structures(), progress=False)
    rows = []
    for name, crystal in zip(dataset.names, dataset.crystals):
        for guest in ("CH4", "Kr", "Xe"):
            key = jax.random.key(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))
            start = time.perf_counter()
            direct = widom.henry_coefficient(crystal, guest, 298.0, n_insertions=20_000, key=key)
            t_direct = time.perf_counter() - start
            start = time.perf_counter()
            grid = gridm.energy_grid(crystal, guest, spacing=0.3)
            t_grid_build = time.perf_counter() - start
            start = time.perf_counter()
            on_grid = widom.henry_coefficient(
                crystal, guest, 298.0, method="grid", grid=grid, n_insertions=20_000,
                key=jax.random.fold_in(key, 1),
            )  # fmt: skip
            t_grid = time.perf_counter() - start
            err = math.hypot(direct.henry_err, on_grid.henry_err)
            rows.append(
                {
                    "name": name,
                    "n_atoms": crystal.n_atoms,
                    "guest": guest,
                    "K_H_direct": direct.henry,
                    "K_H_direct_err": direct.henry_err,
                    "K_H_grid": on_grid.henry,
                    "K_H_grid_err": on_grid.henry_err,
                    "z": (on_grid.henry - direct.henry) / err if err > 0 else 0.0,
                    "q_st_direct": direct.heat,
                    "q_st_grid": on_grid.heat,
                    "q_st_err": math.hypot(direct.energy_err, on_grid.energy_err),
                    "seconds_direct": t_direct,
                    "seconds_grid_build": t_grid_build,
                    "seconds_grid_insert": t_grid,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    z = np.array([r["z"] for r in rows])
    return {
        "rows": rows,
        "fraction_within_2sigma": float(np.mean(np.abs(z) < 2)),
        "median_abs_z": float(np.median(np.abs(z))),
    }


def part_fit() -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    from jmof.data import coremof
    from jmof.physics import forcefield as ffm
    from jmof.physics import host as hostm
    from jmof.physics import widom

    with jax.enable_x64(True):
        name = widom_structures(1)[0]
        crystal = coremof.load("2019-ASR", names=[name], progress=False).crystals[0]
        ff = ffm.uff()
        reps = hostm.supercell_repeats(crystal.cell, ff.cutoff)
        centres = jax.random.uniform(jax.random.key(0), (4000, 3), dtype=jnp.float64)
        eps_true = float(ff.epsilon[6]) * 1.3

        def lnk(eps_c):
            return widom.log_henry(
                crystal, ff.replace(epsilon=ff.epsilon.at[6].set(eps_c)), "CH4", 298.0,
                centres, repeats=reps,
            )  # fmt: skip

        target = lnk(eps_true)
        loss_grad = jax.jit(jax.value_and_grad(lambda p: (lnk(p[0] * 52.84) - target) ** 2))
        params = jnp.array([float(ff.epsilon[6]) / 52.84])  # ε in units of UFF's 52.84 K
        opt = optax.adam(0.05)
        state = opt.init(params)
        history = []
        for _ in range(200):
            loss, grad = loss_grad(params)
            history.append(float(loss))
            if loss < 1e-10:
                break
            updates, state = opt.update(grad, state)
            params = optax.apply_updates(params, updates)
        return {
            "structure": name,
            "epsilon_C_start_K": float(ff.epsilon[6]),
            "epsilon_C_target_K": eps_true,
            "epsilon_C_fitted_K": float(params[0] * 52.84),
            "steps": len(history),
            "final_loss": history[-1],
            "ln_KH_target": float(target),
        }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="griday,widom,fit")
    args = parser.parse_args()
    out_path = RESULTS / "widom.json"
    out = json.loads(out_path.read_text()) if out_path.exists() else {}
    for part in args.parts.split(","):
        out[part] = {"griday": part_griday, "widom": part_widom, "fit": part_fit}[part]()
        out["machine"] = machine()
        save("widom", out)
    print(json.dumps({k: v for k, v in out.items() if k != "widom"}, indent=1)[:3000])


if __name__ == "__main__":
    main()
