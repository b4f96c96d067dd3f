#!/usr/bin/env bash
# Installs the Debian packages the toolkit builds against when they are missing: OpenBLAS, HDF5, pkg-config,
# Open MPI (for data-parallel runs across processes), and (for the demo) pip. Swift itself must be installed (swift.org toolchain, 6.0 or newer).
set -euo pipefail

packages=(libopenblas-dev libhdf5-dev libopenmpi-dev openmpi-bin pkg-config)
[[ "${1:-}" == "--with-pip" ]] && packages+=(python3-pip)

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ "$status" == *"install ok installed"* ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "setup: swift is not on PATH; install a Swift 6 toolchain from swift.org" >&2; exit 1; }
