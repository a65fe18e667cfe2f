#!/usr/bin/env bash
# vmail load harness (benches/load/main.rs): builds release vmail and drives it
# with sipp (SIP) and the harness's own RTP generator on 127.0.0.1.
#   bash benches/load.sh            # --quick: small steps, a few minutes
#   bash benches/load.sh --full     # the whole measurement
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v sipp >/dev/null 2>&1; then
  echo "load.sh: sipp is missing (Debian package sip-tester; bash scripts/test.sh installs it)" >&2
  exit 1
fi
cargo build --release --bin vmail
if [ "$#" -eq 0 ]; then
  set -- --quick
fi
exec cargo bench --bench load -- "$@"
