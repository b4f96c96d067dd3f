#!/usr/bin/env bash
# gpt-train against PyTorch (nanoGPT's model) in fp32 and bf16 on configurations (a), (b), (c), in interleaved
# rounds on one machine (docs/benchmarks.md, "fp32 and bf16 against PyTorch"):
#
#   scripts/bench-precision.sh            (2 rounds; ROUNDS=3 for more, STEPS=10 timed steps per configuration,
#                                          CONFIGS="a" for some of a b c, BF16_PRODUCTS="auto native" to time
#                                          bf16 products both as gpt-train would run them here and natively)
#
# Needs PyTorch (`pip install torch`; a CPU wheel where pip's find-links has one). Prints the CPU and its bf16
# capability first, then one line per measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release >/dev/null
grep -m1 'model name' /proc/cpuinfo
echo "bf16 instructions: $(grep -o -w -E 'avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
.build/release/gpt-bench ceiling
configs="${CONFIGS:-a b c}"
export STEPS="${STEPS:-10}"
for round in $(seq "${ROUNDS:-2}"); do
    for config in $configs; do
        .build/release/gpt-bench train --config "$config" --steps "$STEPS" --precision fp32 2>&1 \
            | grep -E 'tokens/s' | sed "s/^/round $round gpt-train fp32 $config:/"
    done
    for products in ${BF16_PRODUCTS:-auto}; do
        for config in $configs; do
            .build/release/gpt-bench train --config "$config" --steps "$STEPS" --precision bf16 \
                --bf16-products "$products" 2>&1 \
                | grep -E 'products|tokens/s' | sed "s/^/round $round gpt-train bf16 ($products) $config:/"
        done
    done
    python3 scripts/pytorch/nanogpt_speed.py $configs | sed "s/^/round $round PyTorch fp32: /"
    python3 scripts/pytorch/nanogpt_speed.py --bf16 $configs | sed "s/^/round $round PyTorch bf16 autocast: /"
done
