#!/usr/bin/env bash
# Stage what benchmarks/gpu.py needs on a GPU machine that has no package registry.
#
# The GPU machine has python3 3.12 with torch, lightning, torchmetrics, tifffile, h5py,
# matplotlib, scipy, pandas, huggingface-hub and more, but not torchgeo, diffusers, kornia,
# smp, rasterio, jsonschema and their own needs. This downloads those wheels (CPython 3.12,
# manylinux x86_64, the versions installed in $PY, i.e. the ones CI tests) and copies the
# benchmark data into $STAGE (default .gpu/, git-ignored).
#
# The wheels alone are about 95 MiB (rasterio and pyogrio each bundle GDAL: 37 and 31
# MiB), over the device's 64 MiB per call for the whole working tree. So they are staged
# in two parts, each with the tree under the limit, for two calls in a row (the second
# within the machine's 30 s warm window, so that the first part's install is still there):
#   1. run: command 'bash benchmarks/gpu_run.sh', carry ['.gpu/1']   (installs part 1)
#   2. run: command 'bash benchmarks/gpu_run.sh', carry ['.gpu/2']   (part 2, then gpu.py)
#
# Environment: PY (default .venv/bin/python), SPECDM_SHARED_DATA (default ../shared/data),
# STAGE (default .gpu), OSCD_CITIES (full-size OSCD cities to carry, comma-separated),
# LIMIT_MIB (default 64).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${SPECDM_SHARED_DATA:-../shared/data}
STAGE=${STAGE:-.gpu}
LIMIT_MIB=${LIMIT_MIB:-64}
# The three smallest cities (15 MiB); all ten (109 MB) do not fit beside the wheels.
OSCD_CITIES=${OSCD_CITIES:-bercy,paris,rennes}

# Imported by torchgeo_specdm and missing from the GPU image (its package list is in the
# device notes); everything else there is used as installed.
PART1=(
  rasterio affine torchgeo diffusers kornia kornia_rs segmentation_models_pytorch
  lightly geopandas jsonschema jsonschema_specifications referencing
  jsonargparse docstring_parser typeshed_client
)
PART2=(pyogrio pyproj shapely rpds_py)

PLATFORMS=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
for n in $(seq 17 39); do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done

download() {  # download DEST NAME...: the wheels of the installed versions of NAME...
  local dest=$1
  shift
  mkdir -p "$dest"
  mapfile -t specs < <("$PY" - "$@" <<'PYEOF'
import importlib.metadata
import sys

for name in sys.argv[1:]:
    print(f'{name}=={importlib.metadata.version(name)}')
PYEOF
  )
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${PLATFORMS[@]}" -d "$dest" "${specs[@]}"
}

rm -rf "$STAGE"
download "$STAGE/1/wheels" "${PART1[@]}"
download "$STAGE/2/wheels" "${PART2[@]}"

# The data: Salinas-A with part 1, the OSCD cities with part 2 (the datamodule finds
# the cities from the label folders).
mkdir -p "$STAGE/1/data/hsi"
cp -r "$DATA/hsi/salinas_a" "$STAGE/1/data/hsi/"
images='Onera Satellite Change Detection dataset - Images'
labels='Onera Satellite Change Detection dataset - Train Labels'
oscd="$STAGE/2/data/oscd_full"
mkdir -p "$oscd/$images" "$oscd/$labels"
for city in ${OSCD_CITIES//,/ }; do
  cp -r "$DATA/oscd_full/$images/$city" "$oscd/$images/"
  cp -r "$DATA/oscd_full/$labels/$city" "$oscd/$labels/"
done
echo "$OSCD_CITIES" >"$oscd/$images/train.txt"

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r du -cb | tail -1 | cut -f1)
status=0
for part in 1 2; do
  wheels=$(du -sb "$STAGE/$part/wheels" | cut -f1)
  data=$(du -sb "$STAGE/$part/data" | cut -f1)
  total=$((tree + wheels + data))
  echo "part $part: $(ls "$STAGE/$part/wheels" | wc -l) wheels $(mib "$wheels"), data $(mib "$data"), tree $(mib "$tree"): $(mib "$total") of $LIMIT_MIB MiB"
  ls "$STAGE/$part/wheels" | sed 's/^/  /'
  if ((total > LIMIT_MIB * 1048576)); then
    echo "error: part $part is over the device's $LIMIT_MIB MiB: carry fewer OSCD cities (OSCD_CITIES)" >&2
    status=1
  fi
done
exit $status
