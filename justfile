# outdial's one entry point. On a fresh machine run recipes through `./run <recipe>`, which
# installs just, DynamoDB Local and infra's node packages first.

set shell := ["bash", "-euo", "pipefail", "-c"]

fixtures := env_var_or_default("OUTDIAL_FIXTURES", justfile_directory() / "fixtures/sma")

# List the recipes.
default:
    @just --list

# Install what the other recipes need (idempotent).
setup:
    scripts/setup.sh

# Some fixtures are invalid on purpose (not JSON, or over a limit): they are reported invalid,
# which is expected, so only a crash or a usage error fails this recipe.
#
# Validate the SMA fixtures (fixtures/sma) against the PSTN audio contract.
check-fixtures:
    cargo run --quiet -p outdial-cli -- check {{fixtures}} || [ $? -eq 1 ]

# The whole system on one machine (DynamoDB Local, the four functions behind a local Lambda
# Invoke API and HTTP API, the schedule, the PSTN simulator) on a sample campaign: its live
# progress, then its report. `just demo --contacts 1000`, `just demo --json`.
#
# Run the demo.
demo *args:
    cargo run --quiet --locked -p outdial-cli -- demo {{args}}

# Prints the endpoints and a curl line; Ctrl-C stops it. `just dev --data .outdial/data`
# keeps DynamoDB Local's tables between runs.
#
# Run the whole system locally in the foreground.
dev *args:
    cargo run --quiet --locked -p outdial-cli -- dev {{args}}

# Formatting, lints, the Rust suites (DynamoDB Local started once per test binary) and the
# CDK app's template tests.
#
# Run every test (what CI runs).
test: setup
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --locked -- -D warnings
    @# The suites record each function's AWS operations here; the permission test in infra
    @# checks them against the template, so what an earlier run recorded must not count.
    rm -rf target/aws-operations
    cargo test --workspace --locked
    scripts/probe-api.sh
    if [ -f infra/package.json ]; then npm test --prefix infra; fi
    scripts/lint-template.sh
    scripts/browser-test.sh

# Installs Chromium from Debian's packages when it is missing. Screenshots of each page go to
# target/console-screenshots.
#
# The console in headless Chromium against `outdial dev`: start, pause, resume, a call's timeline, do-not-call.
browser-test:
    scripts/browser-test.sh

# The SMA handler's work per event (store faked), the release binary's start-up to its first
# answered event, its stripped size, its CPU time and latency per event through a Runtime API
# (and at 128/256/512 MB's share of a CPU), the dispatcher's dial rate at 10, 50 and 100 calls per
# second through the PSTN simulator, a 100,000-contact campaign through the API beside a raw
# BatchWriteItem loop, the results export of 10,000 and 100,000 contacts (time, peak memory),
# a call's cost in each service (DynamoDB units, Lambda invocations and duration, events),
# a 20,000-contact campaign at 100 calls a second to its end (latency per tenth, memory),
# the contact caps' DynamoDB cost per placed call against none,
# answering-machine detection scored against the simulator's truth, the demo's figures, and the
# console's campaign page over 5 minutes in headless Chromium (updates a second, memory).
#
# Run the benchmarks.
bench:
    cargo bench --locked -p outdial-sma --bench handler
    cargo build --locked --release -p outdial-sma
    @# The bench profile writes to target/release too and would replace the binary under test.
    mkdir -p target/shipped && cp target/release/outdial-sma target/shipped/outdial-sma
    OUTDIAL_SMA_BIN="{{justfile_directory()}}/target/shipped/outdial-sma" cargo bench --locked -p outdial-sma --bench startup
    @echo "outdial-sma release binary: $(stat -c %s target/shipped/outdial-sma) bytes (stripped)"
    cargo build --locked --release -p outdial-cli
    @# The shipped binary's CPU per event through a Runtime API, and at 128/256/512 MB's CPU
    @# share where a CPU cgroup can be made (root).
    target/release/outdial bench cpu --calls 1000 --sma-bin target/shipped/outdial-sma --json | tail -n 1
    for cps in 10 50 100; do target/release/outdial bench dial --cps $cps --seconds 30 --json | tail -n 1; done
    target/release/outdial bench dial --pool 3 --cps 50 --seconds 30 --json | tail -n 1
    target/release/outdial bench events --calls 2000 --json | tail -n 1
    target/release/outdial bench ingest --contacts 100000 --json | tail -n 1
    target/release/outdial bench export --contacts 100000 --json | tail -n 1
    @# The unit costs docs/scale.md works from.
    target/release/outdial bench cost --calls 1000 --cps 20 --json | tail -n 1
    @# One large campaign to its end: rates, latency per tenth, memory at start and end.
    target/release/outdial bench soak --contacts 20000 --cps 100 --json | tail -n 1
    @# At 60 the machine is not the limit: the whole stack's two shards keep the rate.
    target/release/outdial bench soak --contacts 3000 --cps 60 --json | tail -n 1
    target/release/outdial bench caps --calls 1000 --json | tail -n 1
    target/release/outdial bench amd --calls 2000 --json | tail -n 1
    @# The figures docs/voicemail.md quotes: 2,000 calls leave the tails to the draw.
    target/release/outdial bench amd --calls 10000 --json | tail -n 1
    target/release/outdial demo --contacts 1000 --json | tail -n 1
    target/release/outdial bench chaos --json
    just bench-console

# The campaign page open in headless Chromium on a running campaign: after 5 minutes (the
# chart's window, full), 5 more measured: updates a second, the JavaScript heap after garbage
# collection and the DOM's size, first to last.
#
# Measure the console's live updates and memory.
bench-console seconds="300":
    scripts/setup.sh browser
    cargo build --locked --release -p outdial-cli
    OUTDIAL_BIN="{{justfile_directory()}}/target/release/outdial" node tests/browser/soak.mjs --seconds {{seconds}} --warmup 300 --cps 5

# Format the code.
fmt:
    cargo fmt --all

# `cdk synth` runs cdk-nag's AWS Solutions checks: an unacknowledged finding fails it. The
# four functions are built for arm64 by cargo-lambda (from .venv) on the way.
#
# Synthesize the CloudFormation template, building the four Lambda binaries for arm64.
synth:
    scripts/setup.sh lambda
    cd infra && PATH="{{justfile_directory()}}/.venv/bin:$PATH" npx cdk synth --quiet

# Context settings go after the numbers, each passed to cdk as it was given, e.g.
# `just deploy +15555550100 -c outdial:alarmEmail=ops@example.com` (docs/deploy.md lists them).
# cdk asks before it widens any permission.
#
# Deploy to the current AWS credentials' account and region: `just deploy +15555550100`.
[positional-arguments]
deploy numbers="" *context:
    scripts/setup.sh lambda
    cd infra && PATH="{{justfile_directory()}}/.venv/bin:$PATH" npx cdk deploy -c "outdial:phoneNumbers=$1" "${@:2}"
