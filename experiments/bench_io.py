"""CIF → Crystal throughput over CoRE MOF 2019-ASR, and why structures fail validation.

    python experiments/bench_io.py [--repeats 3] [--limit N] [--peer-sample 1000]

Reads every extracted CIF with ``jmof.read`` in one process (``repeats`` passes; the figure is
the median structures/s), and pymatgen's ``Structure.from_file`` on a sample in the same run as
the peer. Writes the table of failure reasons with counts.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import Counter

import numpy as np
from _common import save


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--peer-sample", type=int, default=1000)
    args = parser.parse_args()

    from pymatgen.core import Structure

    from jmof.data import coremof
    from jmof.data.dataset import failure_category
    from jmof.structure import StructureError, read

    cif_dir = coremof.extract("2019-ASR")
    names = coremof.list_names("2019-ASR")[: args.limit]
    paths = [cif_dir / f"{n}.cif" for n in names]

    def jmof_pass():
        ok, reasons = 0, []
        start = time.perf_counter()
        for path in paths:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    read(path)
                ok += 1
            except StructureError as err:
                reasons.append((path.stem, str(err).split(f"{path.name}: ", 1)[-1]))
        return time.perf_counter() - start, ok, reasons

    runs = []
    for r in range(args.repeats):
        seconds, ok, reasons = jmof_pass()
        runs.append(seconds)
        print(
            f"pass {r}: {len(paths)} files in {seconds:.1f} s "
            f"({len(paths) / seconds:.1f}/s), {ok} valid"
        )
    median = float(np.median(runs))

    rng = np.random.default_rng(0)
    sample = [
        paths[k] for k in rng.choice(len(paths), min(args.peer_sample, len(paths)), replace=False)
    ]

    def timed(fn):
        start = time.perf_counter()
        for path in sample:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fn(path)
            except Exception:
                pass
        return time.perf_counter() - start

    peer_s = timed(Structure.from_file)
    ours_s = timed(read)
    table = Counter(failure_category(r) for _, r in reasons).most_common()
    print(
        f"median {len(paths) / median:.1f} structures/s; sample of {len(sample)}: "
        f"jmof {len(sample) / ours_s:.1f}/s, "
        f"pymatgen Structure.from_file {len(sample) / peer_s:.1f}/s"
    )
    for reason, count in table:
        print(f"{count:6d}  {reason}")
    severity = overlap_severity([r for _, r in reasons])
    print("overlap failures by d / d_min:", severity)
    save(
        "io",
        {
            "overlap_severity": severity,
            "n_files": len(paths),
            "passes_s": runs,
            "median_s": median,
            "structures_per_s": len(paths) / median,
            "valid": ok,
            "failed": len(reasons),
            "peer_sample": len(sample),
            "jmof_sample_per_s": len(sample) / ours_s,
            "pymatgen_sample_per_s": len(sample) / peer_s,
            "failure_table": table,
            "failures": reasons,
        },
    )


def overlap_severity(reasons: list[str]) -> dict[str, int]:
    """Count overlap failures by how far below the minimum they are: d / d_min in bins."""
    import re

    ratios = []
    for reason in reasons:
        match = re.search(r"are ([\d.]+) Å apart.*?minimum for \S+ is ([\d.]+) Å", reason)
        if match:
            ratios.append(float(match.group(1)) / float(match.group(2)))
    edges = [0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0]
    counts = np.histogram(ratios, bins=edges)[0]
    return {f"{a:.1f}-{b:.1f}": int(c) for a, b, c in zip(edges[:-1], edges[1:], counts)}


if __name__ == "__main__":
    main()
