// Writes the stack's CloudFormation template, synthesized as the template tests synthesize it
// (test/synth.ts: the same buildApp with cdk-nag, without building the Rust binaries), to the
// file named on the command line. Needs no AWS account or network: the template is
// environment-agnostic. scripts/lint-template.sh runs cfn-lint and checkov on it.
//
//   node --import tsx bin/template.ts <file>

import { writeFileSync } from 'node:fs';
import { synth } from '../test/synth';

const [file] = process.argv.slice(2);
if (file === undefined || process.argv.length !== 3) {
  console.error('usage: node --import tsx bin/template.ts <file>');
  process.exit(2);
}
writeFileSync(file, `${JSON.stringify(synth().json, null, 1)}\n`);
