#!/usr/bin/env bash
# The test command: installs missing system packages, builds everything in release mode (the numerical tests are
# fast there), runs every test, checks the shipped recipes as CI does, then runs the kernel, model and tokenizer
# tests again as a debug build under AddressSanitizer (every check on; small shapes), in its own scratch directory.
# The tensorboard Python package is installed when missing and pip is there, for the test that reads event files
# back with TensorBoard; torch (CPU), transformers, tokenizers and safetensors likewise, for the tests that check
# gpt-train export/import against them (docs/interchange.md); megatron-core (where torch is) for the tests that read
# the Megatron-LM export back with megatron-core's own code; Open MPI is installed for the tests that run real
# mpirun jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-tensorboard --with-interchange --with-megatron-core
swift build -c release --build-tests
swift test -c release --skip-build
.build/release/gpt-plan check recipes/*.toml

# AddressSanitizer (and LeakSanitizer, minus XCTest's own lifetime-of-the-process allocations).
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
swift build --sanitize=address --scratch-path .build-asan --build-tests
swift test --sanitize=address --scratch-path .build-asan --skip-build --filter 'KernelTests|GPTTests|TokenizerTests'
