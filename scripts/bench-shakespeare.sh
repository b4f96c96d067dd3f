#!/usr/bin/env bash
# nanoGPT's CPU configuration on tiny Shakespeare (recipes/shakespeare-char.toml), timed end to end.
#
#   scripts/bench-shakespeare.sh [PATH/TO/input.txt]      (default: ../shared/data/tinyshakespeare/input.txt)
#   SEEDS="1337 1 2 3 4" scripts/bench-shakespeare.sh     (one run per seed)
#   PRECISION=bf16 scripts/bench-shakespeare.sh           (training.precision; fp32 by default)
#
# Each run prints its wall time and its validation loss (200 batches, at step 2000).
set -euo pipefail
cd "$(dirname "$0")/.."
source_text="${1:-../shared/data/tinyshakespeare/input.txt}"
[[ -f "$source_text" ]] || { echo "bench: no tiny Shakespeare at $source_text (give its path)" >&2; exit 2; }
mkdir -p data/tinyshakespeare runs
cp "$source_text" data/tinyshakespeare/input.txt
scripts/setup.sh
swift build -c release >/dev/null
for seed in ${SEEDS:-1337}; do
    recipe=$(mktemp --suffix=.toml)
    sed -e "s/^seed = .*/seed = $seed\nprecision = \"${PRECISION:-fp32}\"/" -e "s|^path = .*|path = \"$PWD/data/tinyshakespeare/input.txt\"|" \
        recipes/shakespeare-char.toml > "$recipe"
    run=runs/bench-shakespeare-${PRECISION:-fp32}-$seed
    rm -rf "$run"
    start=$(date +%s.%N)
    .build/release/gpt-train "$recipe" --out "$run" 2> "$run.log" || { cat "$run.log" >&2; exit 1; }
    end=$(date +%s.%N)
    loss=$(grep -o '"val_loss":[0-9.]*' "$run/metrics.jsonl" | tail -n 1 | cut -d: -f2)
    printf '%s seed %s: %.1f s wall, validation loss %s (200 batches, step 2000)\n' "${PRECISION:-fp32}" "$seed" "$(echo "$end - $start" | bc)" "$loss"
    rm -f "$recipe"
done
