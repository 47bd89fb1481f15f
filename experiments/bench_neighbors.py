"""Neighbour-list build time on CoRE MOFs: jmof.graph.radius_graph vs vesin vs ASE vs pymatgen.

    python experiments/bench_neighbors.py [--n 200] [--repeats 5]

All peers run on the same 200 CoRE MOF 2019-ASR structures (the first 200 in CSV order that
pass validation) in one process; each figure is the median over ``repeats`` passes of the total time
for all structures. The edge counts of all peers are checked to agree.
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import median_time, save


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import vesin
    from ase.neighborlist import neighbor_list as ase_neighbor_list

    from jmof.data import coremof
    from jmof.graph import radius_graph

    dataset = coremof.load("2019-ASR", progress=False)
    crystals = list(dataset.crystals[: args.n])
    atoms = [c.to_ase() for c in crystals]
    structures = [c.to_pymatgen() for c in crystals]
    n_atoms = np.array([c.n_atoms for c in crystals])
    print(f"{len(crystals)} structures, {n_atoms.sum()} atoms (median {np.median(n_atoms):.0f})")

    def run_jmof(cutoff):
        return sum(len(radius_graph(c, cutoff).senders) for c in crystals)

    def run_vesin(cutoff):
        total = 0
        for c in crystals:
            nl = vesin.NeighborList(cutoff=cutoff, full_list=True)
            i, j, S = nl.compute(c.positions, c.cell, True, quantities="ijS")
            total += len(i)
        return total

    def run_ase(cutoff):
        return sum(len(ase_neighbor_list("i", a, cutoff)) for a in atoms)

    def run_pymatgen(cutoff):
        return sum(len(s.get_neighbor_list(cutoff)[0]) for s in structures)

    peers = {"jmof": run_jmof, "vesin": run_vesin, "pymatgen": run_pymatgen, "ase": run_ase}
    results = {}
    for cutoff in (5.0, 8.0):
        counts = {name: fn(cutoff) for name, fn in peers.items()}  # warm-up and cross-check
        # pymatgen's get_neighbor_list excludes nothing but uses <= cutoff; the others < cutoff.
        assert counts["jmof"] == counts["vesin"] == counts["ase"], counts
        row = {"edges": counts["jmof"], "pymatgen_edges": counts["pymatgen"]}
        for name, fn in peers.items():
            repeats = args.repeats if name != "ase" else max(1, min(args.repeats, 3))
            seconds, runs = median_time(lambda fn=fn, cutoff=cutoff: fn(cutoff), repeats)
            row[f"{name}_s"] = seconds
            row[f"{name}_runs_s"] = runs
        fastest = min(row[f"{n}_s"] for n in peers)
        row["jmof_vs_fastest"] = row["jmof_s"] / fastest
        row["ase_over_jmof"] = row["ase_s"] / row["jmof_s"]
        results[f"{cutoff:g}A"] = row
        print(
            f"cutoff {cutoff} Å: jmof {row['jmof_s']:.3f} s, vesin {row['vesin_s']:.3f} s, "
            f"pymatgen {row['pymatgen_s']:.3f} s, ASE {row['ase_s']:.3f} s; "
            f"jmof/fastest {row['jmof_vs_fastest']:.2f}, ASE/jmof {row['ase_over_jmof']:.1f}×"
        )
    save(
        "neighbors",
        {"n_structures": len(crystals), "n_atoms": int(n_atoms.sum()), "results": results},
    )


if __name__ == "__main__":
    main()
