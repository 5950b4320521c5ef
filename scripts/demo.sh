#!/usr/bin/env bash
# demo.sh - the README's main job: install ikev2d (as scripts/test.sh does), then run
# `ikev2d demo`: two daemons on loopback bring up an IKE SA with a CHILD_SA and print
# both SA tables, then move A from 127.0.0.1 to 127.0.0.3 and back with MOBIKE through
# its REST API (same SPIs, new endpoint on both sides). Extra arguments go to
# `ikev2d demo` (see `ikev2d demo --help`; `--no-handover` skips the move).
# Exit code: ikev2d demo's (0 ok, 1 the demo failed, 2 usage).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

setup_out=$(bash scripts/setup-debian.sh) || { echo "demo.sh: setup-debian.sh failed" >&2; exit 1; }
PY=$(printf '%s\n' "$setup_out" | sed -n 's/^python: //p' | tail -n 1)
[ -n "$PY" ] || { echo "demo.sh: setup-debian.sh named no interpreter" >&2; exit 1; }
export PATH="$(dirname "$PY"):$PATH"

exec ikev2d demo "$@"
