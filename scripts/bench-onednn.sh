#!/usr/bin/env bash
# oneDNN's fp32 and bf16 matmul rates on this machine (docs/benchmarks.md: which library runs fp32 and why), then
# oneDNN's fp32 against OpenBLAS's sgemm, one thread each, on (b)'s products.
#   scripts/bench-onednn.sh            (OMP_NUM_THREADS=1 for one thread in the first part)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
out=$(mktemp)
gcc -O2 scripts/onednn/matmul_bench.c -o "$out" -ldnnl -fopenmp
grep -m1 'model name' /proc/cpuinfo
OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}" "$out"
gcc -O2 scripts/onednn/fp32_vs_openblas.c -o "$out" -I/usr/include/x86_64-linux-gnu/openblas-pthread -ldnnl -lopenblas
# OpenBLAS with the kernels gpt-train picks (it may override the environment's choice: docs/benchmarks.md).
swift build -c release >/dev/null
core=$(.build/release/gpt-bench ceiling --json | grep -o '"blas_core":"[^"]*"' | cut -d'"' -f4)
echo "one thread each, on (b)'s products (OpenBLAS $core kernels):"
OMP_NUM_THREADS=1 OPENBLAS_CORETYPE="$core" "$out"
rm -f "$out"
