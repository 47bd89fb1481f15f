#!/usr/bin/env bash
# The GPU checks of issue 7 in one call of the device machine (one H200; nothing to download
# there). Prepare here, once per machine, the wheels the device image lacks:
#
#   echo /.whl/ >> .git/info/exclude; mkdir -p .whl
#   for p in e3nn-jax==0.21.0 ase==3.29.0 vesin==0.6.2 braceexpand matscipy jax-md==0.2.29 \
#            jraph ml-collections frozendict; do
#     python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 -d .whl $p; done
#   # sevenn's wheel (43 MB) carries six checkpoints: keep SevenNet-0's only.
#   python3 -m pip download -q --no-deps -d /tmp/sv sevenn==0.13.0
#   (cd /tmp/sv && unzip -q sevenn-*.whl && rm sevenn-*.whl && \
#    find sevenn/pretrained_potentials -mindepth 1 -maxdepth 1 ! -name SevenNet_0__11Jul2024 \
#      -exec rm -rf {} + && zip -qr "$OLDPWD/.whl/sevenn-slim.zip" .)
#
# Then: device run with carry [".whl"], timeout ~570 s:
#   bash experiments/device/sevennet_gpu.sh
# Results land in $OUT: speed_gpu.json (bench_sevennet.py --device gpu), md_gpu.json and
# md_gpu.png (sevennet_md.py --device gpu), and the logs.
set -u
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false MPLBACKEND=Agg
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
ROOT=$PWD
mkdir -p /tmp/site && (cd /tmp/site && unzip -q -o "$ROOT/.whl/sevenn-slim.zip")
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
  "$ROOT"/.whl/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site:$ROOT:$ROOT/experiments
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, flax, e3nn, orbax.checkpoint as o, torch; \
print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'e3nn', e3nn.__version__, \
'orbax', o.__version__, 'torch', torch.__version__)"
timeout 250 python3 experiments/bench_sevennet.py --device gpu --repeats 10 \
  --parts speed,labelling --out "$OUT/speed_gpu.json" > "$OUT/speed.log" 2>&1
grep -v -i warn "$OUT/speed.log" | tail -6
timeout 280 python3 experiments/sevennet_md.py --device gpu --torch-seconds 90 \
  --out "$OUT/md_gpu.json" > "$OUT/md.log" 2>&1
grep -v -i warn "$OUT/md.log" | tail -8
