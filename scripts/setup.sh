#!/usr/bin/env bash
# Installs the Debian packages the toolkit builds against when they are missing: OpenBLAS, HDF5, pkg-config,
# Open MPI (for data-parallel runs across processes), oneDNN (bf16 matrix products), and (for the demo) pip. Swift itself must be installed (swift.org toolchain, 6.0 or newer).
#   --with-pip          also python3-pip (Debian)
#   --with-tensorboard  also the tensorboard Python package (pip, about 180 MB with its dependencies), for
#                       `tensorboard --logdir runs` and the test that reads event files back with it; where pip is
#                       missing or refuses, says so and goes on (that test then skips)
#   --with-interchange  also torch (CPU build), transformers, tokenizers, safetensors and numpy (pip), the
#                       references the Hugging Face export/import tests compare with (docs/interchange.md); where pip
#                       is missing or refuses, says so and goes on (those tests then skip)
#   --with-megatron-core  also megatron-core 0.16.1 (pip, a 17 MB wheel, a few seconds; it needs torch, and is
#                       installed only where torch is, e.g. after --with-interchange), for the tests that read the
#                       Megatron-LM export back with megatron-core's own code (they skip without)
set -euo pipefail

packages=(libopenblas-dev libhdf5-dev libopenmpi-dev openmpi-bin libdnnl-dev pkg-config)
with_tensorboard=false
with_interchange=false
with_megatron_core=false
for option in "$@"; do
    case "$option" in
        --with-pip) packages+=(python3-pip) ;;
        --with-tensorboard) with_tensorboard=true ;;
        --with-interchange) with_interchange=true ;;
        --with-megatron-core) with_megatron_core=true ;;
        *) echo "setup: unknown option $option (known: --with-pip, --with-tensorboard, --with-interchange, --with-megatron-core)" >&2; exit 2 ;;
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

# pip_install WHAT-FOR PACKAGE...: installs with pip where python3 has it; never fails the setup.
pip_install() {
    local what="$1"; shift
    if ! command -v python3 >/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
        echo "setup: no python3 with pip; not installing $* ($what will skip)" >&2
        return 0
    fi
    echo "setup: installing the Python packages $*" >&2
    local pip=(python3 -m pip install --quiet --disable-pip-version-check "$@")
    # Debian's own python3 refuses system-wide pip installs (PEP 668); then install for this user.
    "${pip[@]}" >/dev/null 2>&1 || "${pip[@]}" --user --break-system-packages >/dev/null 2>&1 \
        || echo "setup: pip could not install $* ($what will skip)" >&2
}

if $with_tensorboard && ! python3 -c "import tensorboard" >/dev/null 2>&1; then
    pip_install "the TensorBoard reader test" tensorboard
fi
if $with_interchange && ! python3 -c "import torch, transformers, tokenizers, safetensors, numpy" >/dev/null 2>&1; then
    # torch's CPU build only: a plain `pip install torch` pulls about 3 GB of CUDA wheels.
    pip_install "the Hugging Face interchange tests" "torch==2.13.0+cpu" transformers tokenizers safetensors numpy
fi

if $with_megatron_core && ! python3 -c "import megatron.core" >/dev/null 2>&1; then
    if python3 -c "import torch" >/dev/null 2>&1; then
        pip_install "the Megatron-LM export's megatron-core tests" megatron-core==0.16.1
    else
        # megatron-core needs torch; PyPI's default torch is the CUDA build (gigabytes): --with-interchange installs the CPU one.
        echo "setup: megatron-core needs torch, which is not installed (--with-interchange installs it); its tests will skip" >&2
    fi
fi
