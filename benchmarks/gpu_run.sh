#!/usr/bin/env bash
# On the GPU machine: install the wheels and data that benchmarks/gpu_wheels.sh staged,
# then run benchmarks/gpu.py. Each call installs the parts it carries (.gpu/1, .gpu/2)
# into /tmp/specdm-gpu, which lasts while the machine stays warm; once every package is
# there, it runs the benchmark and writes gpu.json, gpu.md and gpu_log.txt to $OUT
# (the device's return folder) or benchmarks/results. Arguments go to gpu.py.
set -uo pipefail
cd "$(dirname "$0")/.."
STAGE=${STAGE:-.gpu}
BASE=${BASE:-/tmp/specdm-gpu}
RESULTS=${OUT:-benchmarks/results}
mkdir -p "$BASE/site" "$BASE/data" "$BASE/installed" "$RESULTS"
shopt -s nullglob
wheels=()
for wheel in "$STAGE"/*/wheels/*.whl; do  # each wheel once, also when a part is carried again
  [ -e "$BASE/installed/$(basename "$wheel")" ] || wheels+=("$wheel")
done
if ((${#wheels[@]})); then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$BASE/site" "${wheels[@]}" || exit 1
  for wheel in "${wheels[@]}"; do touch "$BASE/installed/$(basename "$wheel")"; done
fi
for data in "$STAGE"/*/data; do cp -r "$data"/. "$BASE/data/"; done
export PYTHONPATH="$BASE/site:$PWD" SPECDM_SHARED_DATA="$BASE/data" PYTHONUNBUFFERED=1
missing=$(python3 - <<'PYEOF'
import importlib.util

names = ['torchgeo', 'diffusers', 'kornia', 'segmentation_models_pytorch', 'rasterio',
         'pyogrio', 'pyproj', 'shapely', 'geopandas', 'jsonschema', 'jsonargparse']
print(' '.join(name for name in names if importlib.util.find_spec(name) is None))
PYEOF
)
if [ -n "$missing" ]; then
  echo "installed what was carried; still missing: $missing"
  echo "run again at once carrying the next part of $STAGE (see benchmarks/gpu_wheels.sh)"
  exit 3
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
timeout 540 python3 benchmarks/gpu.py --out "$RESULTS" "$@" 2>&1 | tee "$RESULTS/gpu_log.txt"
