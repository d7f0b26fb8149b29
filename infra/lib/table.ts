// The table, built from `schema/table.json`: the one definition the Rust store also creates its
// local tables from (`adapters/src/table.rs`). A setting this file does not understand is an
// error, so the schema cannot grow something the stack silently leaves out.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type { Construct } from 'constructs';

export const SCHEMA_PATH = join(__dirname, '..', '..', 'schema', 'table.json');

export interface KeyDef {
  readonly name: string;
  readonly type: 'S' | 'N' | 'B';
}

export interface IndexDef {
  readonly name: string;
  readonly partitionKey: KeyDef;
  readonly sortKey?: KeyDef;
  readonly projection: 'ALL' | 'KEYS_ONLY';
}

export interface TableSchema {
  readonly partitionKey: KeyDef;
  readonly sortKey: KeyDef;
  readonly billingMode: 'PAY_PER_REQUEST';
  readonly stream: 'NEW_AND_OLD_IMAGES' | 'NEW_IMAGE' | 'OLD_IMAGE' | 'KEYS_ONLY';
  readonly timeToLiveAttribute: string;
  readonly pointInTimeRecovery: boolean;
  readonly deletionProtection: boolean;
  readonly encryption: 'CUSTOMER_MANAGED_KMS';
  readonly globalSecondaryIndexes: readonly IndexDef[];
}

const TABLE_KEYS = new Set([
  '$comment', 'partitionKey', 'sortKey', 'billingMode', 'stream', 'timeToLiveAttribute',
  'pointInTimeRecovery', 'deletionProtection', 'encryption', 'globalSecondaryIndexes',
]);
const INDEX_KEYS = new Set(['name', 'partitionKey', 'sortKey', 'projection']);

function fail(what: string): never {
  throw new Error(`schema/table.json: ${what}`);
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], what: string): T {
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  return fail(`${what} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
}

function key(value: unknown, what: string): KeyDef {
  const k = value as Partial<KeyDef> | undefined;
  if (typeof k?.name !== 'string' || k.name === '') fail(`${what}.name is missing`);
  return { name: k.name, type: oneOf(k.type, ['S', 'N', 'B'] as const, `${what}.type`) };
}

function unknownKeys(obj: object, allowed: Set<string>, what: string): void {
  const extra = Object.keys(obj).filter((k) => !allowed.has(k));
  if (extra.length > 0) fail(`${what} has settings the stack does not build: ${extra.join(', ')}`);
}

/** Parses and checks the schema's text. */
export function parseSchema(json: string): TableSchema {
  const raw = JSON.parse(json) as Record<string, unknown>;
  unknownKeys(raw, TABLE_KEYS, 'the table');
  const indexes = raw.globalSecondaryIndexes;
  if (!Array.isArray(indexes)) fail('globalSecondaryIndexes must be a list');
  if (raw.pointInTimeRecovery !== true) fail('pointInTimeRecovery must be true');
  if (raw.deletionProtection !== true) fail('deletionProtection must be true');
  if (typeof raw.timeToLiveAttribute !== 'string' || raw.timeToLiveAttribute === '') fail('timeToLiveAttribute is missing');
  return {
    partitionKey: key(raw.partitionKey, 'partitionKey'),
    sortKey: key(raw.sortKey, 'sortKey'),
    billingMode: oneOf(raw.billingMode, ['PAY_PER_REQUEST'] as const, 'billingMode'),
    stream: oneOf(raw.stream, ['NEW_AND_OLD_IMAGES', 'NEW_IMAGE', 'OLD_IMAGE', 'KEYS_ONLY'] as const, 'stream'),
    timeToLiveAttribute: raw.timeToLiveAttribute,
    pointInTimeRecovery: true,
    deletionProtection: true,
    encryption: oneOf(raw.encryption, ['CUSTOMER_MANAGED_KMS'] as const, 'encryption'),
    globalSecondaryIndexes: indexes.map((i: Record<string, unknown>, n: number) => {
      const what = `globalSecondaryIndexes[${n}]`;
      unknownKeys(i, INDEX_KEYS, what);
      if (typeof i.name !== 'string' || i.name === '') fail(`${what}.name is missing`);
      return {
        name: i.name,
        partitionKey: key(i.partitionKey, `${what}.partitionKey`),
        sortKey: i.sortKey === undefined ? undefined : key(i.sortKey, `${what}.sortKey`),
        projection: oneOf(i.projection, ['ALL', 'KEYS_ONLY'] as const, `${what}.projection`),
      };
    }),
  };
}

/** The committed schema. */
export function loadSchema(): TableSchema {
  return parseSchema(readFileSync(SCHEMA_PATH, 'utf8'));
}

const attributeType = (k: KeyDef): dynamodb.Attribute => ({
  name: k.name,
  type: { S: dynamodb.AttributeType.STRING, N: dynamodb.AttributeType.NUMBER, B: dynamodb.AttributeType.BINARY }[k.type],
});

/**
 * The table as the schema defines it, encrypted with `key`. Retained when the stack is deleted
 * (with deletion protection on, CloudFormation could not delete it anyway): the calls and their
 * history outlive any deployment.
 */
export function buildTable(scope: Construct, id: string, schema: TableSchema, key: kms.IKey): dynamodb.Table {
  const table = new dynamodb.Table(scope, id, {
    partitionKey: attributeType(schema.partitionKey),
    sortKey: attributeType(schema.sortKey),
    billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
    stream: dynamodb.StreamViewType[schema.stream],
    timeToLiveAttribute: schema.timeToLiveAttribute,
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: schema.pointInTimeRecovery },
    deletionProtection: schema.deletionProtection,
    encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
    encryptionKey: key,
    removalPolicy: RemovalPolicy.RETAIN,
  });
  for (const index of schema.globalSecondaryIndexes) {
    table.addGlobalSecondaryIndex({
      indexName: index.name,
      partitionKey: attributeType(index.partitionKey),
      sortKey: index.sortKey === undefined ? undefined : attributeType(index.sortKey),
      projectionType: dynamodb.ProjectionType[index.projection],
    });
  }
  return table;
}
