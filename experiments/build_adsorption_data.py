"""Adsorption and geometry labels for CoRE MOF 2019-ASR (issue 6, item 8).

    python experiments/build_adsorption_data.py [--budget-minutes M] [--insertions 10000]

For every structure that passes validation, in name-hash order (so that a partial build is a
uniform sample): the geometric descriptors of ``jmof.physics.geometry`` (CCDC radii, 1.86 Å probe,
0.2 Å distance grid), and by direct Widom insertion at 298 K (UFF, 12.8 Å, shifted; one pass for
all four guests, ``henry_coefficients``): Henry coefficients, heats of adsorption and their
1σ block errors for CH4, Kr and Xe, the helium void fraction (⟨W⟩ of He), and the CH4 energy
histogram (1 kJ/mol bins from -20 to 0 kJ/mol, fractions of the random insertions: a Monte Carlo
estimate of the grid histogram of Bucior et al.). The average Boltzmann factor is ⟨W⟩ of CH4.

Rows are appended to ``$JMOF_CACHE/adsorption/2019-ASR.csv`` (resumable: the same command
continues; on a machine without that cache it starts from the committed rows) and copied to
``experiments/results/coremof_adsorption.csv`` after each chunk. Each
call appends its throughput (structures, wall time, structures/min), its CPU time (about twice
the wall time when it had both cores; less when it shared them) and peak resident memory to
``experiments/results/adsorption_build.jsonl``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import resource
import shutil
import time
from pathlib import Path

import numpy as np
from _common import RESULTS

GUESTS = ("CH4", "Kr", "Xe", "He")
GEOMETRY = ("density", "lcd", "pld", "lfpd", "asa_m2_g", "asa_m2_cm3", "av_vf", "gvf")
EDGES = np.arange(-20.0, 0.5, 1.0)


def columns() -> list[str]:
    cols = ["name", "n_atoms", *GEOMETRY, "he_vf", "he_vf_err"]
    for g in GUESTS[:3]:
        cols += [f"kh_{g}", f"kh_{g}_err", f"qst_{g}", f"qst_{g}_err"]
    cols += [f"hist_CH4_{int(lo)}" for lo in EDGES[:-1]]
    return [*cols, "seconds"]


def label(crystal, n_insertions: int, key) -> dict:
    from jmof.physics import descriptors, geometry, widom

    start = time.perf_counter()
    geo = geometry.geometry(crystal, 1.86, 0.2, helium=False)
    u = widom.point_insertion_energies(crystal, GUESTS, n_insertions=n_insertions, key=key)
    rho = widom.framework_density(crystal)
    results = {g: widom.henry_from_energies(g, u[:, k], 298.0, rho) for k, g in enumerate(GUESTS)}
    row = {k: getattr(geo, k) for k in GEOMETRY}
    row["he_vf"] = results["He"].boltzmann
    row["he_vf_err"] = results["He"].boltzmann_err
    for g in GUESTS[:3]:
        r = results[g]
        row.update({f"kh_{g}": r.henry, f"kh_{g}_err": r.henry_err, f"qst_{g}": r.heat,
                    f"qst_{g}_err": r.heat_err})  # fmt: skip
    hist, _ = descriptors.energy_histogram(u[:, 0], EDGES[0], EDGES[-1], 1.0)
    row.update({f"hist_CH4_{int(lo)}": float(h) for lo, h in zip(EDGES[:-1], hist)})
    row["seconds"] = time.perf_counter() - start
    return row


def _complete_rows(path: Path) -> list[dict]:
    """The rows of a label CSV that were written whole (a run killed mid-write leaves a
    truncated last row, without its ``seconds``); [] if the file does not exist."""
    if not path.exists():
        return []
    with open(path) as f:
        return [r for r in csv.DictReader(f) if r.get("seconds") not in (None, "")]


def _merge_rows(cache: Path, committed: Path) -> set[str]:
    """Rewrite the cache CSV as its complete rows plus the committed rows it lacks, so that a
    fresh machine (no cache) continues from the committed file instead of starting over and
    then overwriting it. Returns the names done."""
    rows = _complete_rows(cache)
    names = {r["name"] for r in rows}
    rows += [r for r in _complete_rows(committed) if r["name"] not in names]
    with open(cache, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns())
        writer.writeheader()
        writer.writerows(rows)
    return {r["name"] for r in rows}


def main():
    import jax

    from jmof.data import cache_root, coremof, enable_compilation_cache

    parser = argparse.ArgumentParser()
    parser.add_argument("--budget-minutes", type=float, default=None)
    parser.add_argument("--insertions", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=20, help="rows between copies")
    args = parser.parse_args()

    # A new call (the next chunk of the build) starts without recompiling the shapes earlier
    # calls met.
    enable_compilation_cache()
    out = cache_root() / "adsorption" / "2019-ASR.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    done = _merge_rows(out, RESULTS / "coremof_adsorption.csv")
    dataset = coremof.load("2019-ASR", progress=False)
    order = sorted(range(len(dataset.names)),
                   key=lambda k: hashlib.sha256(dataset.names[k].encode()).hexdigest())  # fmt: skip
    todo = [k for k in order if dataset.names[k] not in done]
    print(f"{len(done)} done, {len(todo)} to go", flush=True)
    deadline = time.time() + 60 * args.budget_minutes if args.budget_minutes else None
    started, n_new = time.time(), 0
    with open(out, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns())
        for n, k in enumerate(todo):
            if deadline and time.time() > deadline:
                print("budget reached; run the same command to continue")
                break
            name, crystal = dataset.names[k], dataset.crystals[k]
            seed = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
            row = {"name": name, "n_atoms": crystal.n_atoms}
            row |= label(crystal, args.insertions, jax.random.key(seed))
            writer.writerow({c: (f"{v:.6g}" if isinstance(v, float) else v)
                             for c, v in row.items()})  # fmt: skip
            f.flush()
            n_new += 1
            print(f"[{len(done) + n + 1}] {name} {crystal.n_atoms} atoms {row['seconds']:.1f} s "
                  f"K_H(CH4) {row['kh_CH4']:.3g}", flush=True)  # fmt: skip
            if (n + 1) % args.chunk == 0:
                shutil.copy(out, RESULTS / "coremof_adsorption.csv")
    shutil.copy(out, RESULTS / "coremof_adsorption.csv")
    wall = time.time() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "structures": n_new,
        "wall_s": round(wall, 1),
        "per_min": round(60.0 * n_new / wall, 2) if wall > 0 else None,
        "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2),
        # CPU seconds of this process: near 2 x wall_s when it had both cores to itself.
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "total_done": len(done) + n_new,
    }
    with open(RESULTS / "adsorption_build.jsonl", "a") as log:
        log.write(json.dumps(record) + "\n")
    print(record)


if __name__ == "__main__":
    main()
