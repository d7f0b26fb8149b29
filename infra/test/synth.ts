// Synthesizes the app exactly as `cdk synth` does (same buildApp, cdk-nag included) but without
// building the Rust binaries, and gives the tests the template in a form they can read.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../lib/app';
import type { OutdialStack } from '../lib/outdial-stack';

/** A synthesized template as plain JSON. */
export interface TemplateJson {
  Resources: Record<string, Resource>;
  Outputs: Record<string, { Value: unknown; Description?: string }>;
}

export interface Synthesized {
  readonly app: App;
  readonly stack: OutdialStack;
  readonly template: Template;
  /** The template as plain JSON. */
  readonly json: TemplateJson;
}

/** What the readers below need of a synthesis: its JSON (a real one, or a copy edited by a test). */
export type HasJson = Pick<Synthesized, 'json'>;

export interface Resource {
  readonly Type: string;
  readonly Properties: Record<string, any>;
  readonly DependsOn?: string[];
  readonly DeletionPolicy?: string;
  readonly UpdateReplacePolicy?: string;
}

/** A fresh app with `context`, synthesized; throws what synth throws (cdk-nag findings too). */
export function synth(context: Record<string, string> = {}, customize?: (app: App) => void): Synthesized {
  const outdir = mkdtempSync(join(tmpdir(), 'outdial-cdk-'));
  try {
    const app = new App({ context, outdir });
    // Skip bundling: the tests need the template, not the arm64 binaries.
    app.node.setContext('aws:cdk:bundling-stacks', []);
    const stack = buildApp(app);
    customize?.(app);
    const assembly = app.synth();
    const json = assembly.getStackByName(stack.stackName).template;
    return { app, stack, template: Template.fromJSON(json), json };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

/**
 * Renders a CloudFormation value as text, intrinsics as `${Ref}` / `${Id.Attr}`, so ARNs can be
 * compared as strings: `arn:${AWS::Partition}:chime:...:sma/${SipMediaApplication.SipMediaApplicationId}`.
 */
export function render(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value && typeof value === 'object') {
    const v = value as Record<string, any>;
    if ('Ref' in v) return `\${${v.Ref}}`;
    if ('Fn::GetAtt' in v) return `\${${v['Fn::GetAtt'].join('.')}}`;
    if ('Fn::Join' in v) return (v['Fn::Join'][1] as unknown[]).map(render).join(v['Fn::Join'][0]);
  }
  return JSON.stringify(value);
}

export interface Statement {
  readonly sid?: string;
  readonly effect: string;
  readonly actions: string[];
  readonly resources: string[];
  readonly condition?: unknown;
}

const list = (v: unknown): unknown[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function statements(document: any): Statement[] {
  return list(document?.Statement).map((s: any) => ({
    sid: s.Sid,
    effect: s.Effect,
    actions: list(s.Action).map(render),
    resources: list(s.Resource).map(render),
    condition: s.Condition,
  }));
}

/** The logical id of the one resource of `type` whose id starts with `prefix`. */
export function logicalId(s: HasJson, type: string, prefix: string): string {
  const ids = Object.entries(s.json.Resources)
    .filter(([id, r]) => r.Type === type && id.startsWith(prefix))
    .map(([id]) => id);
  if (ids.length !== 1) throw new Error(`expected one ${type} named ${prefix}*, found ${ids.join(', ') || 'none'}`);
  return ids[0];
}

/** Every statement that applies to the role of the function whose logical id starts with `prefix`. */
export function functionStatements(s: HasJson, prefix: string): Statement[] {
  const fn = s.json.Resources[logicalId(s, 'AWS::Lambda::Function', prefix)];
  return roleStatements(s, fn.Properties.Role['Fn::GetAtt'][0]);
}

/** Every statement attached to the role `roleId`: inline, attached policies, managed policies. */
export function roleStatements(s: HasJson, roleId: string): Statement[] {
  const role = s.json.Resources[roleId];
  const inline = list(role.Properties.Policies).flatMap((p: any) => statements(p.PolicyDocument));
  const attached = Object.values(s.json.Resources)
    .filter((r) => r.Type === 'AWS::IAM::Policy' && list(r.Properties.Roles).some((ref: any) => ref.Ref === roleId))
    .flatMap((r) => statements(r.Properties.PolicyDocument));
  if (list(role.Properties.ManagedPolicyArns).length > 0) {
    throw new Error(`role ${roleId} has managed policies: ${JSON.stringify(role.Properties.ManagedPolicyArns)}`);
  }
  return [...inline, ...attached];
}

/** Every identity-policy statement in the template (roles, policies, managed policies). */
export function allIdentityStatements(s: HasJson): Statement[] {
  return Object.values(s.json.Resources).flatMap((r) => {
    if (r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy') return statements(r.Properties.PolicyDocument);
    if (r.Type === 'AWS::IAM::Role') return list(r.Properties.Policies).flatMap((p: any) => statements(p.PolicyDocument));
    return [];
  });
}

/** The actions of `statements`, sorted, without duplicates. */
export const actionsOf = (st: Statement[]): string[] => [...new Set(st.flatMap((x) => x.actions))].sort();
