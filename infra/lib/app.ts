// The app: one stack, configured from context, checked by cdk-nag's AWS Solutions rules at
// every synth. A finding that is not acknowledged (with its reason, next to the resource) fails
// the synth, in `just synth`, `just deploy` and the tests alike.

import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { readConfig } from './config';
import { OutdialStack } from './outdial-stack';

export const STACK_NAME = 'Outdial';

/** Adds the stack and the checks to `app`. */
export function buildApp(app: App): OutdialStack {
  const stack = new OutdialStack(app, STACK_NAME, {
    description: 'outdial: durable outbound calls on the Amazon Chime SDK PSTN audio service',
    config: readConfig(app.node),
    // Region and account come from the deploying credentials (`cdk deploy`); the template
    // itself is environment-agnostic.
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return stack;
}
