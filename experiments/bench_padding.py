"""Padding overhead and distinct compiled shapes of one epoch over CoRE MOF 2019-ASR.

    python experiments/bench_padding.py [--cutoffs 5 8] [--batch-nodes 2048 4096]

Every structure that passes validation is included (no size filter). Overhead is padded / real
nodes and edges summed over the epoch; shapes are the distinct (n_node, n_edge, n_graph).
"""

from __future__ import annotations

import argparse
import time

from _common import save


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cutoffs", type=float, nargs="+", default=[5.0, 8.0])
    parser.add_argument("--batch-nodes", type=int, nargs="+", default=[2048, 4096, 8192])
    parser.add_argument("--max-atoms", type=int, default=None)
    args = parser.parse_args()

    from jmof.data import GraphLoader, coremof, padding_report

    dataset = coremof.load("2019-ASR", max_atoms=args.max_atoms)
    print(
        f"{len(dataset)} structures, {int(dataset.n_atoms.sum())} atoms, "
        f"max {dataset.n_atoms.max()}"
    )
    rows = []
    for cutoff in args.cutoffs:
        start = time.perf_counter()
        loader = GraphLoader(dataset, cutoff=cutoff, keep_graphs=False, progress=True)
        _ = loader.n_edge
        scan_s = time.perf_counter() - start
        for batch_nodes in args.batch_nodes:
            loader.batch_nodes = batch_nodes
            for epoch in (0, 1):
                report = padding_report(loader, epoch)
                row = {
                    "cutoff_A": cutoff,
                    "batch_nodes": batch_nodes,
                    "epoch": epoch,
                    "scan_s": round(scan_s, 1),
                    "edges": int(loader.n_edge.sum()),
                    **report,
                }
                rows.append(row)
                print(row)
    save("padding", {"max_atoms": args.max_atoms, "rows": rows})


if __name__ == "__main__":
    main()
