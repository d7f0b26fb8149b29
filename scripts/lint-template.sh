#!/usr/bin/env bash
# Checks the stack's CloudFormation template with cfn-lint and checkov, offline: the template
# is synthesized as the infra tests synthesize it (infra/bin/template.ts: cdk-nag included, the
# Rust binaries not built, no AWS account needed). Any cfn-lint finding or failed checkov check
# fails it. A finding that is deliberate is acknowledged on its resource in
# infra/lib/outdial-stack.ts (`acknowledgeLint`), with the reason; docs/deploy.md lists them.
#
#   scripts/lint-template.sh            scripts/setup.sh installs both tools into .venv
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step is bounded; together at most a few minutes (about 10 s on a laptop).
SYNTH_TIMEOUT=180
LINT_TIMEOUT=120

# The Regions that have the PSTN audio service and CloudFormation's AWS::Chime::SipMediaApplication.
# us-west-2 has the service but not the resource type (cfn-lint E3006): the stack cannot be
# deployed there (docs/deploy.md).
REGIONS=(us-east-1 ca-central-1 eu-central-1 eu-west-2 ap-northeast-1 ap-southeast-1 ap-southeast-2)

for tool in cfn-lint checkov; do
  if [ ! -x ".venv/bin/$tool" ]; then
    echo "lint-template: .venv/bin/$tool is missing: run scripts/setup.sh" >&2
    exit 1
  fi
done
if [ ! -d infra/node_modules ]; then
  echo "lint-template: infra/node_modules is missing: run scripts/setup.sh" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
template="$work/Outdial.template.json"

(cd infra && timeout "$SYNTH_TIMEOUT" node --import tsx bin/template.ts "$template")

status=0
echo "lint-template: cfn-lint ($(.venv/bin/cfn-lint --version)) in ${REGIONS[*]}"
timeout "$LINT_TIMEOUT" .venv/bin/cfn-lint --regions "${REGIONS[@]}" -- "$template" || status=1

# --skip-download: no network (no Prisma Cloud mappings or policies); the checks are built in.
echo "lint-template: checkov $(.venv/bin/checkov --version)"
timeout "$LINT_TIMEOUT" .venv/bin/checkov -f "$template" --framework cloudformation \
  --quiet --compact --skip-download || status=1

if [ "$status" -ne 0 ]; then
  echo "lint-template: findings above; fix them in infra/lib, or acknowledge a deliberate one on its resource (acknowledgeLint) with the reason" >&2
fi
exit "$status"
