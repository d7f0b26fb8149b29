#!/usr/bin/env bash
# The console's browser suite (tests/browser): Debian's Chromium, driven by Playwright, against
# `outdial dev` from this checkout's debug build. Screenshots go to target/console-screenshots.
#
#   scripts/browser-test.sh            build the CLI, then run the suite
#   OUTDIAL_BIN=... CHROMIUM=...       another binary or browser
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh browser
if [ -z "${OUTDIAL_BIN:-}" ]; then
  cargo build --locked --quiet -p outdial-cli
fi
export SCREENSHOTS="${SCREENSHOTS:-$PWD/target/console-screenshots}"
rm -rf "$SCREENSHOTS"
npm test --prefix tests/browser --silent
echo "browser-test: screenshots in $SCREENSHOTS"
