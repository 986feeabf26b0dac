#!/usr/bin/env bash
# RustSec advisories for Cargo.lock (issue 9, item 6), with cargo-audit
# (`cargo install cargo-audit`, or any cargo-audit binary as $CARGO_AUDIT).
#
#   scripts/audit.sh                 # fetches the advisory DB from GitHub
#   scripts/audit.sh --db PATH       # a local checkout of rustsec/advisory-db, no network
#
# Ignored advisories, each checked against this crate (review them when the
# lock file or the MSRV changes):
# * RUSTSEC-2023-0071 (rsa, Marvin timing attack on private-key operations;
#   no fixed release): rsa 0.10 comes with the `saml` feature through
#   bergshamra, which this crate uses to *verify* signatures (public key
#   only); rsa 0.9 is a dev-dependency (the example's development STS and the
#   tests sign with keys made at start).
set -euo pipefail
cd "$(dirname "$0")/.."
audit=${CARGO_AUDIT:-cargo-audit}
db=()
if [[ ${1:-} == --db ]]; then db=(--db "$2" --no-fetch); fi
exec "$audit" audit "${db[@]}" --file Cargo.lock --deny warnings \
    --ignore RUSTSEC-2023-0071
