#!/usr/bin/env bash
# The test command: installs missing system packages, builds everything in release mode (the numerical tests are
# fast there), runs every test, and checks the shipped recipes as CI does. The tensorboard Python package is
# installed when missing and pip is there, for the test that reads event files back with TensorBoard.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-tensorboard
swift build -c release --build-tests
swift test -c release --skip-build
.build/release/gpt-plan check recipes/*.toml
