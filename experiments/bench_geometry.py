"""Geometric descriptors of jmof against Zeo++ (pyzeo, same run) and the CoRE MOF CSV (issue 6).

    python experiments/bench_geometry.py [--n 500] [--max-atoms 400] [--budget-minutes M]
    python experiments/bench_geometry.py --redo-jmof      # recompute jmof's columns only
    python experiments/bench_geometry.py --timing 60      # both timed again on the first 60
    python experiments/bench_geometry.py --summarize

Structures: the valid CoRE MOF 2019-ASR structures with at most ``--max-atoms`` atoms, ordered by
a hash of the name, first ``--n``. For each, in a resumable loop (rows appended to
``experiments/results/geometry_rows.jsonl``; the same command continues):

- jmof: ``jmof.physics.geometry.geometry`` — CCDC radii, probe 1.86 Å for ASA and AV_VF,
  distance grid 0.2 Å; LCD, PLD, LFPD, ASA (m²/g), probe-centre accessible void fraction
  (probe 1.86 Å) and geometric void fraction (probe 0).
- Zeo++ 0.2 via pyzeo (``experiments/_zeo.py`` in a child process, since Zeo++ exits the process
  on some Voronoi failures): default CCDC radii, high accuracy, probe and channel radius 1.86 Å,
  2,000 surface samples per atom; volumes with 50,000 samples.
- The CoRE MOF CSV (Zeo++, as computed by the CoRE MOF authors; their radii and settings are not
  in the package, and the CSV's ASA matches none of the probe radii tried here).

``--summarize`` writes ``experiments/results/geometry.json`` (median and 95th-percentile absolute
relative error per property against each reference, timings) and a parity plot.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, machine, save

HERE = Path(__file__).parent
ROWS = RESULTS / "geometry_rows.jsonl"
PROPS = ("lcd", "pld", "lfpd", "asa_m2_g", "av_vf", "gvf")
CORE = {"lcd": "LCD", "pld": "PLD", "lfpd": "LFPD", "asa_m2_g": "ASA_m2_g", "gvf": "AV_VF"}


def selection(n: int, max_atoms: int) -> list[str]:
    from jmof.data import coremof

    dataset = coremof.load("2019-ASR", max_atoms=max_atoms, progress=False)
    names = sorted(dataset.names, key=lambda s: hashlib.sha256(s.encode()).hexdigest())
    return names[:n]


def zeo(path: Path, probe: float = 1.86) -> dict:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, str(HERE / "_zeo.py"), str(path), str(probe), "2000", "50000"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if out.returncode != 0:
        return {"error": (out.stderr or out.stdout)[-300:].strip()}
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["seconds"] = time.perf_counter() - start
    return result


def ours(crystal) -> dict:
    from jmof.physics import geometry

    start = time.perf_counter()
    g = geometry.geometry(crystal, 1.86, helium=False)
    return {k: getattr(g, k) for k in (*PROPS, "density")} | {
        "seconds": time.perf_counter() - start
    }


def run(n: int, max_atoms: int, budget_minutes: float | None) -> None:
    import jmof
    from jmof.data import coremof

    cif_dir = coremof.extract("2019-ASR", progress=False)
    props = coremof.properties("2019-ASR")
    done = set()
    if ROWS.exists():
        done = {json.loads(line)["name"] for line in ROWS.read_text().splitlines() if line}
    names = [s for s in selection(n, max_atoms) if s not in done]
    print(f"{len(done)} done, {len(names)} to go")
    deadline = time.time() + 60 * budget_minutes if budget_minutes else None
    RESULTS.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        if deadline and time.time() > deadline:
            print("budget reached; run the same command to continue")
            return
        path = Path(cif_dir) / f"{name}.cif"
        crystal = jmof.read(path)
        row = {
            "name": name,
            "n_atoms": crystal.n_atoms,
            "jmof": ours(crystal),
            "zeo": zeo(path),
            "core": {k: props[name][v] for k, v in CORE.items()},
        }
        with open(ROWS, "a") as f:
            f.write(json.dumps(row) + "\n")
        j, z = row["jmof"], row["zeo"]
        print(
            f"[{len(done) + k + 1}] {name} {crystal.n_atoms} atoms: jmof {j['seconds']:.1f} s, "
            f"zeo {z.get('seconds', float('nan')):.1f} s; PLD {j['pld']:.3f} / {z.get('pld')} / "
            f"{row['core']['pld']}",
            flush=True,
        )


def redo_jmof() -> None:
    import jmof
    from jmof.data import coremof

    cif_dir = coremof.extract("2019-ASR", progress=False)
    rows = [json.loads(line) for line in ROWS.read_text().splitlines() if line]
    for k, row in enumerate(rows):
        row["jmof"] = ours(jmof.read(Path(cif_dir) / f"{row['name']}.cif"))
        print(f"[{k + 1}/{len(rows)}] {row['name']}: PLD {row['jmof']['pld']:.3f}", flush=True)
    tmp = ROWS.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(ROWS)


def timing(n: int, max_atoms: int) -> None:
    """jmof and Zeo++ timed again, one after the other in this run, on the first ``n`` structures
    of the selection (for a timing on a quiet machine after a change of speed only): medians to
    ``experiments/results/geometry_timing.json``, with the largest change of a jmof value
    against the stored rows."""
    import jmof
    from jmof.data import coremof

    cif_dir = coremof.extract("2019-ASR", progress=False)
    stored = {}
    if ROWS.exists():
        for line in ROWS.read_text().splitlines():
            row = json.loads(line)
            stored[row["name"]] = row["jmof"]
    rows, changed = [], 0.0
    for k, name in enumerate(selection(n, max_atoms)):
        path = Path(cif_dir) / f"{name}.cif"
        crystal = jmof.read(path)
        j, z = ours(crystal), zeo(path)
        rows.append({"name": name, "n_atoms": crystal.n_atoms, "jmof_s": j["seconds"],
                     "zeo_s": z.get("seconds")})  # fmt: skip
        if name in stored:
            changed = max(changed, *(abs(j[p] - stored[name][p]) for p in PROPS))
        print(f"[{k + 1}/{n}] {name} {crystal.n_atoms} atoms: jmof {j['seconds']:.2f} s, "
              f"Zeo++ {z.get('seconds', float('nan')):.2f} s", flush=True)  # fmt: skip
    jmof_s = [r["jmof_s"] for r in rows]
    zeo_s = [r["zeo_s"] for r in rows if r["zeo_s"] is not None]
    save("geometry_timing", {
        "n_structures": len(rows),
        "n_atoms_median": float(np.median([r["n_atoms"] for r in rows])),
        "jmof_median_s": float(np.median(jmof_s)),
        "zeo_median_s": float(np.median(zeo_s)),
        "jmof_total_s": float(np.sum(jmof_s)),
        "zeo_total_s": float(np.sum(zeo_s)),
        "max_change_vs_stored_rows": changed,
        "rows": rows,
    })  # fmt: skip


def summarize() -> None:
    rows = [json.loads(line) for line in ROWS.read_text().splitlines() if line]
    ok = [r for r in rows if "error" not in r["zeo"]]
    out = {"n_structures": len(rows), "zeo_failures": len(rows) - len(ok), "machine": machine()}

    def errors(a, b):
        a, b = np.asarray(a, float), np.asarray(b, float)
        mask = np.abs(b) > 1e-9  # relative error undefined at 0 (closed pores): counted apart
        rel = np.abs(a[mask] - b[mask]) / np.abs(b[mask])
        both_zero = np.sum((~mask) & (np.abs(a) < 1e-9))
        return {
            "n": int(mask.sum()),
            "median_rel": float(np.median(rel)) if len(rel) else None,
            "p95_rel": float(np.percentile(rel, 95)) if len(rel) else None,
            "zero_reference": int((~mask).sum()),
            "zero_both": int(both_zero),
        }

    for ref in ("zeo", "core"):
        out[f"vs_{ref}"] = {}
        for prop in PROPS:
            pairs = [(r["jmof"][prop], r[ref][prop]) for r in ok if prop in r[ref]]
            if pairs:
                a, b = zip(*pairs)
                out[f"vs_{ref}"][prop] = errors(a, b)
    pairs = [(r["zeo"][p], r["core"][p]) for r in ok for p in ("lcd",)]
    out["zeo_vs_core"] = {
        p: errors([r["zeo"][p] for r in ok], [r["core"][p] for r in ok])
        for p in ("lcd", "pld", "lfpd", "asa_m2_g", "gvf")
    }
    out["seconds"] = {
        "jmof_median": float(np.median([r["jmof"]["seconds"] for r in rows])),
        "zeo_median": float(np.median([r["zeo"]["seconds"] for r in ok])),
        "n_atoms_median": float(np.median([r["n_atoms"] for r in rows])),
    }
    save("geometry", out)
    print(json.dumps(out, indent=1))
    plot(ok)


def plot(rows) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(20, 4))
    labels = {"lcd": "LCD (Å)", "pld": "PLD (Å)", "lfpd": "LFPD (Å)", "asa_m2_g": "ASA (m²/g)",
              "gvf": "void fraction (probe 0)"}  # fmt: skip
    for ax, (prop, label) in zip(axes, labels.items()):
        x = [r["zeo"][prop] for r in rows]
        ax.scatter(x, [r["jmof"][prop] for r in rows], s=6, label="jmof")
        ax.scatter(x, [r["core"][prop] for r in rows], s=6, alpha=0.5, label="CoRE CSV")
        lim = [0, max(x) * 1.05 if x else 1]
        ax.plot(lim, lim, "k--", lw=0.8)
        ax.set_xlabel(f"Zeo++ (pyzeo) {label}")
        ax.set_ylabel(label)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "geometry_parity.png", dpi=120)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--max-atoms", type=int, default=400)
    parser.add_argument("--budget-minutes", type=float, default=None)
    parser.add_argument("--summarize", action="store_true")
    parser.add_argument("--redo-jmof", action="store_true")
    parser.add_argument("--timing", type=int, default=None, metavar="N")
    args = parser.parse_args()
    if args.timing:
        timing(args.timing, args.max_atoms)
    elif args.redo_jmof:
        redo_jmof()
    elif args.summarize:
        summarize()
    else:
        run(args.n, args.max_atoms, args.budget_minutes)


if __name__ == "__main__":
    main()
