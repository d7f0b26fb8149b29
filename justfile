# outdial's one entry point. On a fresh machine run recipes through `./run <recipe>`, which
# installs just, DynamoDB Local and infra's node packages first.

set shell := ["bash", "-euo", "pipefail", "-c"]

fixtures := env_var_or_default("OUTDIAL_FIXTURES", justfile_directory() / "../shared/fixtures/sma")

# List the recipes.
default:
    @just --list

# Install what the other recipes need (idempotent).
setup:
    scripts/setup.sh

# Some of the AWS documentation's examples are not JSON at all: they are reported invalid,
# which is expected, so only a crash or a usage error fails this recipe.
#
# Validate the AWS documentation's SMA examples against the PSTN audio contract.
check-fixtures:
    cargo run --quiet -p outdial-cli -- check {{fixtures}} || [ $? -eq 1 ]

# Formatting, lints, the Rust suites (DynamoDB Local started once per test binary) and the
# CDK app's template tests.
#
# Run every test (what CI runs).
test: setup
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --locked -- -D warnings
    cargo test --workspace --locked
    if [ -f infra/package.json ]; then npm test --prefix infra; fi

# The SMA handler's work per event (store faked), the release binary's start-up to its first
# answered event, its stripped size, and the dispatcher's dial rate at 10, 50 and 100 calls per
# second through the PSTN simulator.
#
# Run the benchmarks.
bench:
    cargo bench -p outdial-sma --bench handler
    cargo build --release -p outdial-sma
    OUTDIAL_SMA_BIN="{{justfile_directory()}}/target/release/outdial-sma" cargo bench -p outdial-sma --bench startup
    @echo "outdial-sma release binary: $(stat -c %s target/release/outdial-sma) bytes (stripped)"
    cargo build --release -p outdial-cli
    for cps in 10 50 100; do target/release/outdial bench dial --cps $cps --seconds 30 --json | tail -n 1; done

# Format the code.
fmt:
    cargo fmt --all

# Synthesize the CloudFormation template, building the four Lambda binaries for arm64.
synth:
    scripts/setup.sh lambda
    cd infra && PATH="{{justfile_directory()}}/.venv/bin:$PATH" npx cdk synth --quiet

# Pass the phone numbers the SIP media application answers, comma separated.
#
# Deploy to the current AWS credentials' account and region: `just deploy +15555550100`.
deploy numbers="":
    scripts/setup.sh lambda
    cd infra && PATH="{{justfile_directory()}}/.venv/bin:$PATH" npx cdk deploy -c outdial:phoneNumbers={{numbers}}
