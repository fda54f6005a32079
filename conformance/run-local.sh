#!/usr/bin/env bash
# Start our broker on the embedded store with the suite's @contexts preloaded, run the ETSI
# conformance suite against it (through the shared harness's run.sh, ../shared/conformance/run.sh
# beside the repository, or $RUNNER), stop the broker.
#
#   conformance/run-local.sh [AREA ...]      e.g. CommonBehaviours jsonldContext
#
# Environment: SUITE (suite checkout, default ../conformance/suite beside the repo), RUNNER (run.sh
# of the shared conformance harness), PORT (1026), PYTHON (.venv/bin/python of the repo), plus
# anything run.sh reads (RUN_TIMEOUT, EXCLUDE_TAGS, ...).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
export SUITE="${SUITE:-$(cd "$REPO/.." && pwd)/conformance/suite}"
RUNNER="${RUNNER:-$(cd "$REPO/.." && pwd)/shared/conformance/run.sh}"
PORT="${PORT:-1026}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
[ -d "$SUITE/resources/jsonld-contexts" ] || { echo "no suite checkout at SUITE=$SUITE" >&2; exit 2; }

DATA="$(mktemp -d)"
LOG="${BROKER_LOG:-$DATA/broker.log}"
(cd "$REPO" && CONTEXT_PRELOAD="$HERE/preload.json" SQLITE_PATH="$DATA/store.sqlite3" AGENTS=false \
    PORT="$PORT" LOG_FORMAT=text exec "$PYTHON" -m broker) >"$LOG" 2>&1 &
BROKER=$!
trap 'kill "$BROKER" 2>/dev/null; wait "$BROKER" 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
    kill -0 "$BROKER" 2>/dev/null || { cat "$LOG" >&2; exit 2; }
    sleep 0.2
done
echo "broker pid $BROKER on :$PORT (log $LOG)" >&2
BROKER_URL="http://127.0.0.1:$PORT" EXCLUDE_TAGS="${EXCLUDE_TAGS:-sub-mqtt-notification}" bash "$RUNNER" "$@"
