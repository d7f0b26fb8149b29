#!/usr/bin/env bash
# Probes the API against its OpenAPI document: Schemathesis, from docs/openapi.json, against
# `outdial dev` (the whole system on this machine), with every check, positive and negative
# data, a fixed seed and a bounded number of examples per operation (a few minutes on two
# cores). Any failure fails the script. Installs its pinned Schemathesis into the checkout's
# .venv when missing, as scripts/setup.sh installs just.
#
#   scripts/probe-api.sh          OUTDIAL_PROBE_SEED and OUTDIAL_PROBE_EXAMPLES change the run
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

SCHEMATHESIS_VERSION=4.32.5
seed=${OUTDIAL_PROBE_SEED:-20301}
examples=${OUTDIAL_PROBE_EXAMPLES:-40}

if ! .venv/bin/schemathesis --version 2>/dev/null | grep -qx "schemathesis, version $SCHEMATHESIS_VERSION"; then
  echo "probe-api: installing schemathesis $SCHEMATHESIS_VERSION into .venv" >&2
  [ -x .venv/bin/pip ] || python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --quiet --locked -p outdial-cli

# The stack runs in a folder of its own: `outdial dev` writes .outdial/ where it starts, and
# another stack of this checkout may be running.
work=$(mktemp -d)
token="probe-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
(cd "$work" && OUTDIAL_API_TOKEN="$token" exec "$root/target/debug/outdial" dev --port 0 --console-port 0 >dev.out 2>dev.err) &
dev=$!
stop() {
  kill -TERM "$dev" 2>/dev/null || true
  wait "$dev" 2>/dev/null || true
  rm -rf "$work"
}
trap stop EXIT

api=""
for _ in $(seq 1 240); do
  api=$(sed -n 's/^api: //p' "$work/dev.out" 2>/dev/null || true)
  [ -n "$api" ] && break
  if ! kill -0 "$dev" 2>/dev/null; then
    echo "probe-api: outdial dev stopped before it started:" >&2
    cat "$work/dev.err" >&2
    exit 1
  fi
  sleep 0.5
done
if [ -z "$api" ]; then
  echo "probe-api: outdial dev printed no api endpoint in 120 s" >&2
  exit 1
fi

# A valid request may be answered 422: the document's 422s (`no-contact-accepted`,
# `do-not-call`, `destination-refused`, `idempotency-key-reused`) refuse well-formed requests
# for what no schema can know: the do-not-call list's contents, each contact row's checks,
# the countries the account calls, the keys used before. A 400 (`invalid-request`) for a
# valid request stays a failure.
cat >"$work/schemathesis.toml" <<'TOML'
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
TOML

report="$root/target/probe-api"
mkdir -p "$report"
started=$(date +%s)
status=0
# Run from the stack's folder: Schemathesis keeps a .schemathesis/ folder where it runs.
# The health checks left off judge the data generator, not the API: `too_slow` is a
# wall-clock limit that a shared two-core machine fails at random, and `filter_too_much`
# counts the examples the generator threw away. One worker: with two, Hypothesis parses
# lambdas' sources on both threads at once, which CPython 3.11's AST constructor can fail
# ("AST constructor recursion depth mismatch", python/cpython#106905); the run takes as long
# (about 160 s) on two cores either way, the stack being the bottleneck.
(cd "$work" && SCHEMATHESIS_HOOKS=probe_api_hooks PYTHONPATH="$root/scripts" \
  "$root/.venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$root/docs/openapi.json" \
  --url "$api" \
  -H "Authorization: Bearer $token" \
  --checks all \
  --mode all \
  --max-examples "$examples" \
  --seed "$seed" \
  --workers 1 \
  --suppress-health-check filter_too_much,too_slow \
  --generation-database none \
  --no-color \
  --report ndjson --report-ndjson-path "$report/events.ndjson") || status=$?
echo "probe-api: $(( $(date +%s) - started )) s against $api (seed $seed, $examples examples per operation); events in target/probe-api/events.ndjson" >&2
exit "$status"
