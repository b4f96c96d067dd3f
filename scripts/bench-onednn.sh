#!/usr/bin/env bash
# oneDNN's fp32 and bf16 matmul rates on this machine (docs/benchmarks.md: which library runs fp32 and why).
#   scripts/bench-onednn.sh            (OMP_NUM_THREADS=1 for one thread)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
out=$(mktemp)
gcc -O2 scripts/onednn/matmul_bench.c -o "$out" -ldnnl -fopenmp
grep -m1 'model name' /proc/cpuinfo
OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}" "$out"
rm -f "$out"
