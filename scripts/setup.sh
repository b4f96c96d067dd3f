#!/usr/bin/env bash
# Installs the Debian packages the toolkit builds against when they are missing: OpenBLAS, HDF5, pkg-config,
# Open MPI (for data-parallel runs across processes), oneDNN (bf16 matrix products), and (for the demo) pip. Swift itself must be installed (swift.org toolchain, 6.0 or newer).
#   --with-pip          also python3-pip (Debian)
#   --with-tensorboard  also the tensorboard Python package (pip, about 180 MB with its dependencies), for
#                       `tensorboard --logdir runs` and the test that reads event files back with it; where pip is
#                       missing or refuses, says so and goes on (that test then skips)
#   --with-megatron-core  also megatron-core 0.16.1 (pip, a 17 MB wheel, a few seconds; it needs torch, and is
#                       only installed where torch already is), for the test that reads the Megatron-LM export's
#                       indexed dataset back with megatron-core's own reader (it skips without)
set -euo pipefail

packages=(libopenblas-dev libhdf5-dev libopenmpi-dev openmpi-bin libdnnl-dev pkg-config)
with_tensorboard=false
with_megatron_core=false
for option in "$@"; do
    case "$option" in
        --with-pip) packages+=(python3-pip) ;;
        --with-tensorboard) with_tensorboard=true ;;
        --with-megatron-core) with_megatron_core=true ;;
        *) echo "setup: unknown option $option (known: --with-pip, --with-tensorboard, --with-megatron-core)" >&2; exit 2 ;;
    esac
done

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

if $with_tensorboard && ! python3 -c "import tensorboard" >/dev/null 2>&1; then
    if ! command -v python3 >/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
        echo "setup: no python3 with pip; not installing tensorboard (its reader test will skip)" >&2
    else
        echo "setup: installing the tensorboard Python package" >&2
        pip=(python3 -m pip install --quiet --disable-pip-version-check tensorboard)
        # Debian's own python3 refuses system-wide pip installs (PEP 668); then install for this user.
        "${pip[@]}" >/dev/null 2>&1 || "${pip[@]}" --user --break-system-packages >/dev/null 2>&1 \
            || echo "setup: pip could not install tensorboard (its reader test will skip)" >&2
    fi
fi

if $with_megatron_core && ! python3 -c "import megatron.core" >/dev/null 2>&1; then
    if ! command -v python3 >/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
        echo "setup: no python3 with pip; not installing megatron-core (its reader test will skip)" >&2
    elif ! python3 -c "import torch" >/dev/null 2>&1; then
        # PyPI's torch is the CUDA build (gigabytes): not worth it for one reader test.
        echo "setup: megatron-core needs torch, which is not installed; not installing it (its reader test will skip)" >&2
    else
        echo "setup: installing the megatron-core Python package (0.16.1)" >&2
        pip=(python3 -m pip install --quiet --disable-pip-version-check megatron-core==0.16.1)
        "${pip[@]}" >/dev/null 2>&1 || "${pip[@]}" --user --break-system-packages >/dev/null 2>&1 \
            || echo "setup: pip could not install megatron-core (its reader test will skip)" >&2
    fi
fi
