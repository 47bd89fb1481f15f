#!/usr/bin/env bash
# The GPU speed check of issue 6 in one call of the device machine. It needs the same wheels as
# experiments/device/sevennet_gpu.sh (see its header for how to build .whl/ here), carried with
# the call: device run with carry [".whl"], timeout ~300 s:
#   bash experiments/device/physics_gpu.sh
# Writes $OUT/physics_speed_gpu.json (bench_physics_speed.py --device gpu) and the log; compare
# with experiments/results/physics_speed_cpu.json.
set -u
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false MPLBACKEND=Agg
ROOT=$PWD
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
  "$ROOT"/.whl/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site:$ROOT:$ROOT/experiments
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
timeout 240 python3 experiments/bench_physics_speed.py --device gpu \
  --out "$OUT/physics_speed_gpu.json" > "$OUT/physics_speed.log" 2>&1
grep -v -i warn "$OUT/physics_speed.log" | tail -4
