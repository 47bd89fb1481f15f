"""A dataset report: what was loaded, what was left out and why, sizes, graphs and padding."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np

from jmof.data.batching import GraphLoader, padding_report
from jmof.data.dataset import Dataset


def dataset_summary(dataset: Dataset) -> dict:
    """Counts, atoms-per-cell statistics and the failure table of a dataset."""
    n_atoms = dataset.n_atoms if len(dataset) else np.zeros(1, int)
    return {
        "source": dataset.source,
        "structures": len(dataset),
        "failures": len(dataset.failures),
        "failure_table": dataset.failure_table(),
        "atoms_median": int(np.median(n_atoms)),
        "atoms_mean": round(float(n_atoms.mean()), 1),
        "atoms_max": int(n_atoms.max()),
        "targets": sorted(dataset.targets),
    }


def write_report(
    dataset: Dataset, out_dir: Path, *, cutoff: float = 5.0, batch_nodes: int = 4096
) -> dict:
    """Write ``report.md``, ``report.json``, ``failures.csv`` and ``dataset.png`` to ``out_dir``.

    Builds the radius graph of every structure (neighbour statistics) and plans one epoch of
    padded batches (padding overhead, compiled shapes).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = dataset_summary(dataset)

    start = time.perf_counter()
    loader = GraphLoader(dataset, cutoff=cutoff, batch_nodes=batch_nodes, progress=True)
    n_node, n_edge = loader.n_node, loader.n_edge
    graph_seconds = time.perf_counter() - start
    padding = padding_report(loader)
    summary.update(
        cutoff_A=cutoff,
        graph_build_s=round(graph_seconds, 2),
        neighbours_per_atom_mean=round(float(n_edge.sum() / max(n_node.sum(), 1)), 2),
        edges_total=int(n_edge.sum()),
        batch_nodes=batch_nodes,
        padding=padding,
    )
    with open(out_dir / "failures.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "reason"])
        writer.writerows((x.name, x.reason) for x in dataset.failures)
    (out_dir / "report.json").write_text(json.dumps(summary, indent=1))
    _plot(dataset, n_node, n_edge, out_dir / "dataset.png")
    (out_dir / "report.md").write_text(_markdown(summary))
    return summary


def _markdown(s: dict) -> str:
    lines = [
        f"# Dataset report: {s['source']}",
        "",
        f"- structures loaded: **{s['structures']}**; left out: **{s['failures']}** "
        "(listed one by one in `failures.csv`)",
        f"- atoms per cell: median {s['atoms_median']}, mean {s['atoms_mean']}, "
        f"max {s['atoms_max']}",
        f"- radius graphs at {s['cutoff_A']} Å: {s['edges_total']} edges, "
        f"{s['neighbours_per_atom_mean']} neighbours per atom, built in {s['graph_build_s']} s",
        f"- batches of {s['batch_nodes']} nodes: {s['padding']['batches']} per epoch, "
        f"padding overhead {s['padding']['node_overhead']:.3f}× nodes and "
        f"{s['padding']['edge_overhead']:.3f}× edges, "
        f"{s['padding']['distinct_shapes']} distinct compiled shapes",
        f"- targets: {', '.join(s['targets']) or 'none'}",
        "",
        "![dataset](dataset.png)",
        "",
        "## Left out, by reason",
        "",
        "| reason | count |",
        "|---|---:|",
        *(f"| {reason} | {count} |" for reason, count in s["failure_table"]),
        "",
    ]
    return "\n".join(lines)


def _plot(dataset: Dataset, n_node: np.ndarray, n_edge: np.ndarray, path: Path) -> None:
    from jmof.plotting import pyplot

    plt = pyplot()

    fig, axes = plt.subplots(2, 2, figsize=(10, 8))
    ax = axes[0, 0]
    ax.hist(
        n_node, bins=np.logspace(np.log10(max(n_node.min(), 1)), np.log10(n_node.max() + 1), 40)
    )
    ax.set(xscale="log", xlabel="atoms per cell", ylabel="structures", title="size")
    ax = axes[0, 1]
    ax.hist([c.density for c in dataset.crystals], bins=50)
    ax.set(xlabel="density / g cm$^{-3}$", ylabel="structures", title="density (jmof)")
    ax = axes[1, 0]
    if {"LCD", "PLD"} <= set(dataset.targets):
        ax.scatter(dataset.targets["PLD"], dataset.targets["LCD"], s=2, alpha=0.4)
        ax.set(xlabel="PLD / Å (Zeo++)", ylabel="LCD / Å (Zeo++)", title="pore diameters")
    else:
        ax.set_axis_off()
    ax = axes[1, 1]
    ax.hist(n_edge / np.maximum(n_node, 1), bins=50)
    ax.set(xlabel="neighbours per atom", ylabel="structures", title="graph degree")
    fig.suptitle(f"{dataset.source}: {len(dataset)} structures")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
