// Writes the stack's CloudFormation template, synthesized as the template tests synthesize it
// (test/synth.ts: the same buildApp with cdk-nag, without building the Rust binaries), to the
// file named on the command line. Needs no AWS account or network: the template is
// environment-agnostic. scripts/lint-template.sh runs cfn-lint and checkov on it.
//
// Context values may follow the file, as `cdk synth -c` takes them, to write the template of
// another configuration (e.g. with the webhook) for the same checks:
//
//   node --import tsx bin/template.ts <file> [outdial:<name>=<value> ...]

import { writeFileSync } from 'node:fs';
import { synth } from '../test/synth';

const usage = 'usage: node --import tsx bin/template.ts <file> [outdial:<name>=<value> ...]';
const [file, ...pairs] = process.argv.slice(2);
if (file === undefined) {
  console.error(usage);
  process.exit(2);
}
const context: Record<string, string> = {};
for (const pair of pairs) {
  const eq = pair.indexOf('=');
  if (eq <= 0) {
    console.error(`${usage}\nnot a context value: ${JSON.stringify(pair)}`);
    process.exit(2);
  }
  context[pair.slice(0, eq)] = pair.slice(eq + 1);
}
writeFileSync(file, `${JSON.stringify(synth(context).json, null, 1)}\n`);
