#!/usr/bin/env bash
# Installs what geofuse needs on Debian/Ubuntu, idempotently: GDAL (library, tools, Python
# bindings for the COG validator and gdal_polygonize), python3-yaml (the Kubernetes example's
# test), util-linux (flock, in the cron example), fonts-dejavu-core (the report's figures
# compile its font in), Orfeo ToolBox (reference for the texture comparison test) and
# Chromium (renders report.html headless in a test). Runs apt-get only for packages that are missing; needs root (or sudo)
# only then.
set -euo pipefail

need=(libgdal-dev gdal-bin python3-gdal python3-numpy python3-yaml util-linux fonts-dejavu-core pkg-config gcc)
optional=(otb-bin libotb-apps mesa-vulkan-drivers libvulkan1 python3-venv)
# Installed on its own: Ubuntu ships Chromium as a snap, so this one may be unavailable.
browser=(chromium)

missing() {
  local out=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || out+=("$p")
  done
  echo "${out[@]:-}"
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root to run: $*" >&2; return 1; fi
}

req=$(missing "${need[@]}")
opt=$(missing "${optional[@]}")
web=$(missing "${browser[@]}")
if [ -n "$req$opt$web" ]; then
  as_root apt-get update -qq
fi
if [ -n "$req" ]; then
  echo "setup: installing $req"
  # shellcheck disable=SC2086
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $req >/dev/null
fi
if [ -n "$opt" ]; then
  echo "setup: installing $opt (Orfeo ToolBox for the GLCM comparison, Mesa lavapipe for the wgpu test)"
  # shellcheck disable=SC2086
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $opt >/dev/null \
    || echo "setup: could not install $opt; the OTB and wgpu comparison tests will be skipped" >&2
fi
if [ -n "$web" ] && ! command -v chromium >/dev/null && ! command -v google-chrome >/dev/null; then
  echo "setup: installing $web (renders report.html headless in a test)"
  # shellcheck disable=SC2086
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $web >/dev/null \
    || echo "setup: could not install $web; the report screenshot test will be skipped" >&2
fi

# rustac (PyPI): a STAC API server (the stac-server crate's in-memory backend) that the
# catalogue search tests start on 127.0.0.1. Kept in its own venv under ~/.cache/geofuse.
stac_venv="${HOME}/.cache/geofuse/stac-venv"
if [ ! -x "$stac_venv/bin/rustac" ]; then
  echo "setup: installing rustac into $stac_venv (the STAC API server of the search tests)"
  { python3 -m venv "$stac_venv" && "$stac_venv/bin/pip" install -q "rustac==0.9.18"; } >/dev/null \
    || echo "setup: could not install rustac; the STAC API search tests will be skipped" >&2
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found. Install Rust >= 1.85 with rustup (https://rustup.rs), then rerun." >&2
  exit 1
fi
