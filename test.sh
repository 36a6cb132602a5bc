#!/usr/bin/env bash
# The README's test command: installs what the tests need (scripts/deps.sh), then runs the
# whole workspace's tests. Arguments go to `cargo test`, e.g. `./test.sh -p kernels`.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/deps.sh
cargo test --workspace --release "$@"
