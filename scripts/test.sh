#!/usr/bin/env bash
# test.sh - the project's test command (README, .ci/run): set the machine up, run the whole
# suite, lint. Exit code: pytest's ("no tests collected", 5, is a failure too); 1 if pytest
# passed but `ruff check` did not.
#
# Root/interop tests start charon and ikev2d processes and network namespaces; their fixtures
# stop them by PID. As a last line of defence every such process is also recorded under
# $IKEV2D_TEST_TMP/pids and killed (by PID, after checking it is still the same process)
# when this script exits, however pytest ended.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

setup_out=$(bash scripts/setup-debian.sh) || { echo "test.sh: setup-debian.sh failed" >&2; exit 1; }
PY=$(printf '%s\n' "$setup_out" | sed -n 's/^python: //p' | tail -n 1)
[ -n "$PY" ] || { echo "test.sh: setup-debian.sh named no interpreter" >&2; exit 1; }
# the interpreter's bin/ first: `python3`, `ikev2d`, `ruff` are the ones set up above
export PATH="$(dirname "$PY"):$PATH"

export IKEV2D_TEST_TMP
IKEV2D_TEST_TMP=$(mktemp -d /tmp/ikev2d-test.XXXXXX)

reap() {
    local f pid start
    for f in "$IKEV2D_TEST_TMP"/pids/*; do
        [ -f "$f" ] || continue
        pid=$(basename "$f"); start=$(cat "$f")
        # field 22 of /proc/PID/stat = start time; a recycled PID has another one
        if [ -r "/proc/$pid/stat" ] && \
           [ "$(sed 's/^.*) //' "/proc/$pid/stat" | cut -d' ' -f20)" = "$start" ]; then
            echo "test.sh: killing leftover test process $pid: $(tr '\0' ' ' < /proc/$pid/cmdline)" >&2
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$IKEV2D_TEST_TMP"
}
trap reap EXIT

python3 -m pytest -q tests
rc=$?
case $rc in
    0) ;;
    5) echo "test.sh: pytest collected no tests - that is a failure" >&2 ;;
    *) echo "test.sh: pytest exit code $rc" >&2 ;;
esac

python3 -m ruff check .
ruff_rc=$?
if [ $ruff_rc -ne 0 ]; then
    echo "test.sh: ruff check failed ($ruff_rc)" >&2
    [ $rc -eq 0 ] && rc=1
fi
exit $rc
