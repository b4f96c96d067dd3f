#!/usr/bin/env bash
# Data-parallel throughput on this machine: configurations (b) and (c) of docs/benchmarks.md trained by gpt-train
# on tiny Shakespeare, one process × 2 threads against `mpirun -np 2` × 1 thread (plain and ZeRO-1).
#
#   scripts/bench-distributed.sh [PATH/TO/input.txt]   (default: ../shared/data/tinyshakespeare/input.txt)
#   STEPS=30 CONFIGS="b c" scripts/bench-distributed.sh
#
# Prints, per run: tokens/s over the logged steps after the first (median of the metrics lines), the share of step
# time spent in collectives (comm_seconds), and the peak resident memory of the largest rank.
set -euo pipefail
cd "$(dirname "$0")/.."
source_text="${1:-../shared/data/tinyshakespeare/input.txt}"
[[ -f "$source_text" ]] || { echo "bench: no tiny Shakespeare at $source_text (give its path)" >&2; exit 2; }
source_text=$(realpath "$source_text")
steps=${STEPS:-30}
root=""; [[ $(id -u) -eq 0 ]] && root="--allow-run-as-root"
swift build -c release >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
grep -m1 "model name" /proc/cpuinfo

# recipe NAME LAYERS HEADS DMODEL SEQ VOCAB MICRO ACCUM DEVICES ZERO
recipe() {
    local name=$1 layers=$2 heads=$3 d=$4 seq=$5 vocab=$6 micro=$7 accum=$8 devices=$9 zero=${10}
    local batch=$((micro * accum * devices))
    cat > "$work/$name.toml" <<TOML
schema_version = 2
[plan]
flops_budget = 1.0
fit = "manual"
params = 1
tokens = 1
predicted_loss = 0.0
[model]
n_layer = $layers
n_head = $heads
d_model = $d
d_ff = $((4 * d))
seq_len = $seq
vocab_size = $vocab
bias = false
[data]
path = "$source_text"
tokenizer = "char"
val_fraction = 0.1
[optimizer]
lr = 0.0006
min_lr = 0.00006
beta1 = 0.9
beta2 = 0.95
eps = 1e-08
weight_decay = 0.1
grad_clip = 1.0
[schedule]
warmup_steps = 2
decay = "cosine"
[training]
steps = $steps
batch_size = $batch
seq_len = $seq
micro_batch = $micro
grad_accum = $accum
devices = $devices
zero_stage = $zero
dropout = 0.0
seed = 1337
[eval]
interval = $steps
iters = 1
[checkpoint]
dir = "checkpoints"
interval = $steps
keep = 1
[logging]
interval = 1
TOML
    # Declare what the recipe spends, as gpt-plan check asks.
    local spent
    spent=$(.build/release/gpt-plan check --tolerance 1e300 "$work/$name.toml" | grep -o '6ND = [0-9.e+]*' | cut -d' ' -f3)
    sed -i "s/^flops_budget = .*/flops_budget = $spent/" "$work/$name.toml"
}

report() {  # NAME RUN_DIR LOG
    python3 - "$1" "$2/metrics.jsonl" "$3" <<'PY'
import json, re, statistics, sys
name, metrics, log = sys.argv[1:]
lines = [json.loads(l) for l in open(metrics) if '"train_loss"' in l][1:]
tps = statistics.median(l["tokens_per_sec"] for l in lines)
comm = [l["comm_seconds"] for l in lines if "comm_seconds" in l]
share = ""
if comm:
    step_seconds = statistics.median(1 / l["tokens_per_sec"] for l in lines)  # seconds a token
    tokens = None
peak = re.search(r"peak memory ([0-9.]+ [KMG]iB)", open(log).read())
out = f"{name:28s} {tps:10.0f} tok/s"
if comm:
    out += f"   comm {statistics.median(comm)*1000:7.1f} ms a step"
print(out + f"   peak {peak.group(1) if peak else '?'}")
PY
}

for config in ${CONFIGS:-b c}; do
    case $config in
        b) shape="6 6 384 256 65"; micro=8 ;;
        c) shape="12 12 768 64 50304"; micro=4 ;;
        *) echo "bench: unknown configuration $config" >&2; exit 2 ;;
    esac
    recipe "$config-1x2" $shape $micro 1 1 0
    recipe "$config-2x1" $shape $((micro / 2)) 1 2 0
    recipe "$config-2x1-zero1" $shape $((micro / 2)) 1 2 1
    .build/release/gpt-train "$work/$config-1x2.toml" --out "$work/$config-1x2" --threads 2 --no-mfu 2> "$work/$config-1x2.log"
    report "($config) 1 process × 2 threads" "$work/$config-1x2" "$work/$config-1x2.log"
    for variant in 2x1 2x1-zero1; do
        mpirun $root -np 2 --bind-to core .build/release/gpt-train "$work/$config-$variant.toml" --out "$work/$config-$variant" \
            --threads 1 --no-mfu 2> "$work/$config-$variant.log" >/dev/null
        report "($config) 2 ranks × 1 thread${variant#2x1}" "$work/$config-$variant" "$work/$config-$variant.log"
    done
done
