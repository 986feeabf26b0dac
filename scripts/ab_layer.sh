#!/usr/bin/env bash
# In-process A/B of the layer's added cost: a base revision against the
# working tree (scripts/ab_layer/main.rs says how). On a machine whose speed
# drifts, two builds run one after the other differ by more than most
# changes; alternating them in one process does not (A/A reads 1.00-1.01).
#
# Usage: scripts/ab_layer.sh <base-revision>
# Environment: SESSIONS and THREADS (comma-separated lists, default 1 and 1),
# ROUNDS (per run, default 41), RUNS (default 3).
set -euo pipefail

base_rev=${1:?usage: scripts/ab_layer.sh <base-revision>}
repo=$(git rev-parse --show-toplevel)
work=$(mktemp -d)
cleanup() {
    git -C "$repo" worktree remove --force "$work/base" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The base revision, renamed by its version so that both can be linked.
git -C "$repo" worktree add --detach --quiet "$work/base" "$base_rev"
sed -i '0,/^version = .*/s//version = "0.99.0"/' "$work/base/Cargo.toml"

mkdir -p "$work/ab/src"
cp "$repo/scripts/ab_layer/main.rs" "$work/ab/src/main.rs"
cp "$repo/benches/common/mod.rs" "$work/ab/src/common.rs"
cp "$repo/benches/common/paired.rs" "$work/ab/src/paired.rs"
cp "$repo/Cargo.lock" "$work/ab/Cargo.lock"
cat > "$work/ab/Cargo.toml" <<TOML
[package]
name = "tower-cis-ab"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
candidate = { package = "tower-cis", path = "$repo" }
base = { package = "tower-cis", path = "$work/base", version = "0.99" }
bytes = "1"
http = "1"
http-body-util = "0.1"
tokio = { version = "1", features = ["rt"] }
tower-layer = "0.3"
tower-service = "0.3"

[workspace]
TOML

cd "$work/ab"
CARGO_TARGET_DIR="$repo/target/ab" cargo run --release --quiet
