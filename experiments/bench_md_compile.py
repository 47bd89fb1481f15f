"""What a ``jmof.md.run_*`` call costs before its first step, with and without XLA's persistent
compilation cache (``jmof.data.enable_compilation_cache``).

    python experiments/bench_md_compile.py [--calls 3]

Each ``run_nve`` call builds its integrator and traces and compiles its chunk afresh. The
script makes ``--calls`` calls of 10 steps (0.5 fs) on MIL-53(Al) (the first frame of
``experiments/data/mil53-sevennet-0.extxyz``, replicated to 304 atoms) with the MACE student of
the accuracy benchmark, in three fresh processes: without the cache; with an empty cache folder;
with the cache that the second process filled (a resumed job). Ten steps take about 0.1 s, so
the times are what a call costs before it runs. Writes ``experiments/results/md_compile.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import machine, save

HERE = Path(__file__).parent
MODEL = HERE / "runs" / "potential-mil53-md-mace-c32-nu3"
FRAMES = HERE / "data" / "mil53-sevennet-0.extxyz"

_CHILD = """
import json, sys, time
import jax
if sys.argv[1] == "cache":
    from jmof.data import enable_compilation_cache
    enable_compilation_cache()
import ase.io
import potentials
from jmof import md
from jmof.structure import Crystal
model = potentials.load(sys.argv[2])
crystal = Crystal.from_ase(ase.io.read(sys.argv[3], 0))
system = md.system(model.config.build().apply, model.params, crystal, cutoff=model.config.cutoff)
times = []
for _ in range(int(sys.argv[4])):
    start = time.perf_counter()
    md.run_nve(system, steps=10, dt_fs=0.5, temperature_K=300, log_every=10, progress=False)
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def calls(mode: str, n: int, cache_dir: str) -> list[float]:
    env = dict(os.environ, JMOF_CACHE=cache_dir)
    out = subprocess.run([sys.executable, "-c", _CHILD, mode, str(MODEL), str(FRAMES), str(n)],
                         env=env, check=True, capture_output=True, text=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache_dir:
        rows = {
            "no cache": calls("none", args.calls, cache_dir),
            "empty cache": calls("cache", args.calls, cache_dir),
            "cache filled by an earlier process": calls("cache", args.calls, cache_dir),
        }
    for name, times in rows.items():
        print(f"{name:36s} " + "  ".join(f"{t:6.2f} s" for t in times))
    save("md_compile", {"machine": machine(), "model": str(MODEL.name), "atoms": 304,
                        "seconds_per_call": rows})  # fmt: skip


if __name__ == "__main__":
    main()
