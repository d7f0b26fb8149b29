// Assertions on the synthesized template of the default configuration. The synth runs cdk-nag's
// AWS Solutions checks: reaching the first assertion means no unacknowledged finding.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { App, Validations } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { buildApp } from '../lib/app';
import { DEFAULTS } from '../lib/config';
import { DISPATCHER, FUNCTIONS_PATH, GREETINGS, OUTCOMES, parseFunctions, SIZING, STREAM_MAPPING } from '../lib/outdial-stack';
import { NAMESPACE, THRESHOLDS } from '../lib/operations';
import {
  actionsOf, allIdentityStatements, functionStatements, logicalId, render, roleStatements, synth, type Statement,
} from './synth';

const s = synth();
const R = s.json.Resources;
const resourcesOf = (type: string) => Object.entries(R).filter(([, r]) => r.Type === type);

const id = {
  table: logicalId(s, 'AWS::DynamoDB::Table', 'Table'),
  key: logicalId(s, 'AWS::KMS::Key', 'Key'),
  sma: logicalId(s, 'AWS::Lambda::Function', 'SmaFunction'),
  timers: logicalId(s, 'AWS::Lambda::Function', 'TimersFunction'),
  api: logicalId(s, 'AWS::Lambda::Function', 'ApiFunction'),
  stream: logicalId(s, 'AWS::Lambda::Function', 'StreamFunction'),
  queue: logicalId(s, 'AWS::SQS::Queue', 'StreamFailures'),
  topic: logicalId(s, 'AWS::SNS::Topic', 'AlarmTopic'),
  greetings: logicalId(s, 'AWS::S3::Bucket', 'GreetingsBucket'),
  bus: logicalId(s, 'AWS::Events::EventBus', 'EventBus'),
};
const SMA_ARN = `arn:\${AWS::Partition}:chime:\${AWS::Region}:\${AWS::AccountId}:sma/\${SipMediaApplication.SipMediaApplicationId}`;
const TABLE_ARN = `\${${id.table}.Arn}`;
const schema = JSON.parse(readFileSync(join(__dirname, '..', '..', 'schema', 'table.json'), 'utf8'));
const INDEX_ARNS: string[] = schema.globalSecondaryIndexes.map((i: { name: string }) => `${TABLE_ARN}/index/${i.name}`);
const INDEX_ARN = (name: string) => {
  const arn = `${TABLE_ARN}/index/${name}`;
  assert.ok(INDEX_ARNS.includes(arn), `schema/table.json has an index ${name}`);
  return arn;
};

/**
 * A `Duration::from_secs(n)` constant of the timers handler's invocation (`invoke.rs`, where a
 * run's length and margin live), in seconds, as the binary has it.
 */
function timersConstant(name: string): number {
  const source = readFileSync(join(__dirname, '..', '..', 'handlers', 'timers', 'src', 'invoke.rs'), 'utf8');
  const m = source.match(new RegExp(`^pub const ${name}: Duration = Duration::from_secs\\((\\d+)\\);$`, 'm'));
  assert.ok(m, `handlers/timers/src/invoke.rs defines ${name} with Duration::from_secs`);
  return Number(m[1]);
}

describe('the table', () => {
  const table = R[id.table];
  const keySchema = (pk: { name: string }, sk?: { name: string }) => [
    { AttributeName: pk.name, KeyType: 'HASH' },
    ...(sk ? [{ AttributeName: sk.name, KeyType: 'RANGE' }] : []),
  ];

  test('has the keys and attribute types of schema/table.json', () => {
    assert.deepEqual(table.Properties.KeySchema, keySchema(schema.partitionKey, schema.sortKey));
    const expected = new Map<string, string>();
    for (const k of [schema.partitionKey, schema.sortKey, ...schema.globalSecondaryIndexes.flatMap((i: any) => [i.partitionKey, i.sortKey].filter(Boolean))]) {
      expected.set(k.name, k.type);
    }
    const actual = new Map<string, string>(table.Properties.AttributeDefinitions.map((a: any) => [a.AttributeName, a.AttributeType]));
    assert.deepEqual(actual, expected);
  });

  test('has exactly the global secondary indexes of schema/table.json', () => {
    const actual = table.Properties.GlobalSecondaryIndexes.map((g: any) => ({
      name: g.IndexName, keys: g.KeySchema, projection: g.Projection.ProjectionType,
    }));
    const expected = schema.globalSecondaryIndexes.map((i: any) => ({
      name: i.name, keys: keySchema(i.partitionKey, i.sortKey), projection: i.projection,
    }));
    assert.deepEqual(actual, expected);
  });

  test('has the stream, TTL, billing, PITR and deletion protection of schema/table.json', () => {
    assert.equal(table.Properties.StreamSpecification.StreamViewType, schema.stream);
    assert.deepEqual(table.Properties.TimeToLiveSpecification, { AttributeName: schema.timeToLiveAttribute, Enabled: true });
    assert.equal(table.Properties.BillingMode, schema.billingMode);
    assert.deepEqual(table.Properties.PointInTimeRecoverySpecification, { PointInTimeRecoveryEnabled: schema.pointInTimeRecovery });
    assert.equal(table.Properties.DeletionProtectionEnabled, schema.deletionProtection);
  });

  test('is encrypted with the stack\'s customer-managed key, which rotates', () => {
    assert.equal(schema.encryption, 'CUSTOMER_MANAGED_KMS');
    assert.deepEqual(table.Properties.SSESpecification, { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: { 'Fn::GetAtt': [id.key, 'Arn'] } });
    assert.equal(R[id.key].Properties.EnableKeyRotation, true);
  });

  test('and its key are retained when the stack goes', () => {
    for (const r of [table, R[id.key]]) {
      assert.equal(r.DeletionPolicy, 'Retain');
      assert.equal(r.UpdateReplacePolicy, 'Retain');
    }
  });
});

describe('the functions', () => {
  const fns = { sma: R[id.sma], timers: R[id.timers], api: R[id.api], stream: R[id.stream] };

  test('are four, each an arm64 provided.al2023 bootstrap', () => {
    assert.equal(resourcesOf('AWS::Lambda::Function').length, 4);
    for (const fn of Object.values(fns)) {
      assert.deepEqual(fn.Properties.Architectures, ['arm64']);
      assert.equal(fn.Properties.Runtime, 'provided.al2023');
      assert.equal(fn.Properties.Handler, 'bootstrap');
    }
  });

  test('are binaries of the Cargo workspace', () => {
    const manifest = readFileSync(join(__dirname, '..', '..', 'Cargo.toml'), 'utf8');
    for (const dir of ['api', 'sma', 'timers', 'stream']) {
      assert.match(manifest, new RegExp(`"handlers/${dir}"`), `handlers/${dir} is a workspace member`);
      const pkg = readFileSync(join(__dirname, '..', '..', 'handlers', dir, 'Cargo.toml'), 'utf8');
      assert.match(pkg, new RegExp(`^name = "outdial-${dir}"$`, 'm'));
    }
  });

  test('have the documented memory and timeouts', () => {
    for (const [name, fn] of Object.entries(fns)) {
      const sizing = SIZING[name as keyof typeof SIZING];
      assert.equal(fn.Properties.MemorySize, sizing.memoryMb, name);
      assert.equal(fn.Properties.Timeout, sizing.timeout.toSeconds(), name);
    }
  });

  test('take memory, timeout and the dispatcher\'s reservation from infra/functions.json', () => {
    const file = JSON.parse(readFileSync(FUNCTIONS_PATH, 'utf8'));
    // The Rust tests read `timeoutSeconds` of these four keys from the same file.
    assert.deepEqual(Object.keys(file).sort(), ['api', 'sma', 'stream', 'timers']);
    for (const [name, fn] of Object.entries(fns)) {
      assert.equal(fn.Properties.MemorySize, file[name].memoryMb, name);
      assert.equal(fn.Properties.Timeout, file[name].timeoutSeconds, name);
      assert.ok(Number.isInteger(file[name].timeoutSeconds), name);
      assert.ok(file[name].why.length > 60, `${name} says why`);
    }
    assert.equal(fns.timers.Properties.ReservedConcurrentExecutions, file.timers.reservedConcurrency);
    assert.deepEqual(Object.fromEntries(Object.entries(file).map(([n, f]: [string, any]) => [n, [f.memoryMb, f.timeoutSeconds]])),
      { sma: [256, 3], timers: [512, 70], api: [1024, 29], stream: [128, 30] });
  });

  test('infra/functions.json is checked: the four functions, whole numbers in Lambda\'s ranges, a reason each', () => {
    const good = JSON.parse(readFileSync(FUNCTIONS_PATH, 'utf8'));
    const edited = (edit: (f: any) => void) => {
      const f = structuredClone(good);
      edit(f);
      return JSON.stringify(f);
    };
    assert.equal(parseFunctions(JSON.stringify(good)).timers.reservedConcurrency, 4);
    for (const [edit, message] of [
      [(f: any) => { delete f.stream; }, /must name exactly sma, timers, api, stream/],
      [(f: any) => { f.dialer = f.timers; }, /must name exactly/],
      [(f: any) => { f.sma.timeoutSeconds = 2.5; }, /sma\.timeoutSeconds must be a whole number from 1 to 900, got 2\.5/],
      [(f: any) => { f.api.timeoutSeconds = '29'; }, /api\.timeoutSeconds must be a whole number/],
      [(f: any) => { f.stream.memoryMb = 64; }, /stream\.memoryMb must be a whole number from 128 to 10240/],
      [(f: any) => { delete f.timers.reservedConcurrency; }, /timers\.reservedConcurrency must be a whole number/],
      [(f: any) => { f.sma.reservedConcurrency = 100; }, /sma has fields the stack does not use: reservedConcurrency/],
      [(f: any) => { f.api.timeout = 29; }, /api has fields the stack does not use: timeout/],
      [(f: any) => { f.api.why = ''; }, /api\.why must say why/],
    ] as const) {
      assert.throws(() => parseFunctions(edited(edit)), message);
    }
    assert.throws(() => parseFunctions('{'), /infra\/functions\.json: not JSON/);
  });

  test('the SMA function ends before the SMA re-sends an event (5 s)', () => {
    assert.ok(fns.sma.Properties.Timeout < 5);
  });

  test('the timers function outlasts one dispatch run (62 s and a 5 s margin)', () => {
    const runFor = timersConstant('RUN_FOR');
    const margin = timersConstant('MARGIN');
    assert.equal(runFor, 62);
    assert.equal(margin, 5);
    assert.equal(fns.timers.Properties.Timeout, 70);
    // The deadline less the margin never cuts a run short of RUN_FOR.
    assert.ok(fns.timers.Properties.Timeout >= runFor + margin);
    // A scheduled run waits for the previous run's leases inside its own run, not beyond it.
    assert.ok(timersConstant('SCHEDULED_LEASE_WAIT') < runFor);
  });

  test('reserve concurrency for the call path only: the SMA and the dispatcher', () => {
    assert.equal(fns.sma.Properties.ReservedConcurrentExecutions, 100);
    assert.equal(fns.timers.Properties.ReservedConcurrentExecutions, SIZING.timers.reservedConcurrency);
    assert.equal(fns.api.Properties.ReservedConcurrentExecutions, undefined);
    assert.equal(fns.stream.Properties.ReservedConcurrentExecutions, undefined);
  });

  test('log as JSON to their own log group, kept 30 days, encrypted with the stack\'s key', () => {
    const groups = new Set<string>();
    for (const fn of Object.values(fns)) {
      const cfg = fn.Properties.LoggingConfig;
      assert.equal(cfg.LogFormat, 'JSON');
      const group = R[cfg.LogGroup.Ref];
      assert.equal(group.Type, 'AWS::Logs::LogGroup');
      assert.equal(group.Properties.RetentionInDays, 30);
      assert.deepEqual(group.Properties.KmsKeyId, { 'Fn::GetAtt': [id.key, 'Arn'] });
      groups.add(cfg.LogGroup.Ref);
    }
    assert.equal(groups.size, 4);
  });

  test('get their environment from the stack and its context only', () => {
    const env = (fn: typeof fns.sma) => Object.fromEntries(Object.entries(fn.Properties.Environment.Variables).map(([k, v]) => [k, render(v)]));
    const table = `\${${id.table}}`;
    const smaId = '${SipMediaApplication.SipMediaApplicationId}';
    assert.deepEqual(env(fns.sma), { OUTDIAL_TABLE_NAME: table, OUTDIAL_DISPATCH_SHARDS: '4', OUTDIAL_GREETINGS_BUCKET: `\${${id.greetings}}` });
    assert.deepEqual(env(fns.timers), { OUTDIAL_TABLE_NAME: table, OUTDIAL_DISPATCH_SHARDS: '4', OUTDIAL_SMA_ID: smaId, OUTDIAL_ACCOUNT_CPS: '5' });
    // No OUTDIAL_ALLOWED_COUNTRIES without `outdial:allowedCountries` (config.test.ts sets it):
    // each request may call its campaign's region and the region it names.
    assert.deepEqual(env(fns.api), { OUTDIAL_TABLE_NAME: table, OUTDIAL_DISPATCH_SHARDS: '4', OUTDIAL_SMA_ID: smaId, OUTDIAL_TIMERS_FUNCTION: `\${${id.timers}}` });
    assert.deepEqual(env(fns.stream), { OUTDIAL_TABLE_NAME: table, OUTDIAL_EVENT_BUS: `\${${id.bus}}` });
  });
});

describe('IAM', () => {
  const all = allIdentityStatements(s);
  const sma = functionStatements(s, 'SmaFunction');
  const timers = functionStatements(s, 'TimersFunction');
  const api = functionStatements(s, 'ApiFunction');
  const stream = functionStatements(s, 'StreamFunction');
  const chime = (st: Statement[]) => st.filter((x) => x.actions.some((a) => a.startsWith('chime:')));
  const KMS = ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey'];
  const LOGS = ['logs:CreateLogStream', 'logs:PutLogEvents'];

  test('grants no wildcard action anywhere', () => {
    for (const st of all) {
      for (const a of st.actions) assert.ok(!a.includes('*'), `wildcard action ${a}`);
      assert.equal(st.effect, 'Allow');
    }
  });

  test('uses a wildcard resource only where documented', () => {
    const wildcards = all.flatMap((st) => st.resources.filter((r) => r.includes('*')).map((r) => `${st.actions.join(',')} on ${r}`));
    assert.deepEqual(wildcards.sort(), [
      // A list operation with no resource-level permission; Lambda checks it for the mapping.
      'dynamodb:ListStreams on *',
      // Every method and path of this one API's one stage (the API caller policy).
      `execute-api:Invoke on arn:\${AWS::Partition}:execute-api:\${AWS::Region}:\${AWS::AccountId}:\${${logicalId(s, 'AWS::ApiGatewayV2::Api', 'HttpApi')}}/$default/*/*`,
    ]);
  });

  test('attaches no managed policy to any role', () => {
    for (const [roleId] of resourcesOf('AWS::IAM::Role')) roleStatements(s, roleId);
  });

  test('the SMA function has no Chime permission at all', () => {
    assert.deepEqual(chime(sma), []);
    assert.deepEqual(actionsOf(sma), ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem', ...KMS, ...LOGS].sort());
    const items = sma.filter((x) => x.actions[0].startsWith('dynamodb:') && !x.actions.includes('dynamodb:Query'));
    assert.deepEqual(items.map((x) => x.resources), [[TABLE_ARN]]);
  });

  test('the SMA function queries the byTransaction index only (an event without its attributes)', () => {
    const query = sma.filter((x) => x.actions.includes('dynamodb:Query'));
    assert.deepEqual(query.map((x) => [x.actions, x.resources]), [[['dynamodb:Query'], [INDEX_ARN('byTransaction')]]]);
  });

  test('the timers function dials and hangs up on this SMA\'s ARN only', () => {
    const st = chime(timers);
    assert.equal(st.length, 1);
    assert.deepEqual(st[0].actions.sort(), ['chime:CreateSipMediaApplicationCall', 'chime:UpdateSipMediaApplicationCall']);
    assert.deepEqual(st[0].resources, [SMA_ARN]);
    assert.deepEqual(actionsOf(timers), [
      'chime:CreateSipMediaApplicationCall', 'chime:UpdateSipMediaApplicationCall',
      'dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem', ...KMS, ...LOGS,
    ].sort());
  });

  test('the API function hangs up on this SMA and invokes only the timers function', () => {
    const st = chime(api);
    assert.equal(st.length, 1);
    assert.deepEqual(st[0].actions, ['chime:UpdateSipMediaApplicationCall']);
    assert.deepEqual(st[0].resources, [SMA_ARN]);
    const invoke = api.filter((x) => x.actions.includes('lambda:InvokeFunction'));
    assert.equal(invoke.length, 1);
    assert.deepEqual(invoke[0].resources, [`\${${id.timers}.Arn}`]);
    assert.deepEqual(actionsOf(api), [
      'chime:UpdateSipMediaApplicationCall', 'lambda:InvokeFunction',
      'dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem', 'dynamodb:ConditionCheckItem', 'dynamodb:DeleteItem',
      'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem', ...KMS, ...LOGS,
    ].sort());
  });

  test('the stream function reads its stream, writes counters and publishes outcome events, no Chime', () => {
    assert.deepEqual(chime(stream), []);
    assert.deepEqual(actionsOf(stream), [
      'dynamodb:BatchWriteItem', 'dynamodb:DescribeStream', 'dynamodb:GetItem', 'dynamodb:GetRecords',
      'dynamodb:GetShardIterator', 'dynamodb:ListStreams', 'dynamodb:UpdateItem', 'events:PutEvents',
      'sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:SendMessage', ...KMS, ...LOGS,
    ].sort());
    const read = stream.find((x) => x.actions.includes('dynamodb:GetRecords'))!;
    assert.deepEqual(read.resources, [`\${${id.table}.StreamArn}`]);
  });

  test('table actions name the table and its indexes, nothing else', () => {
    for (const st of [...sma, ...timers, ...api, ...stream]) {
      const table = st.actions.filter((a) => a.startsWith('dynamodb:') && !['dynamodb:ListStreams', 'dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'].includes(a));
      if (table.length === 0) continue;
      if (table.includes('dynamodb:Query')) {
        // A query statement grants Query alone, on the table or indexes of the schema.
        assert.deepEqual(st.actions, ['dynamodb:Query'], st.sid);
        for (const r of st.resources) assert.ok([TABLE_ARN, ...INDEX_ARNS].includes(r), `${st.sid}: ${r}`);
      } else {
        assert.deepEqual(st.resources, [TABLE_ARN], st.sid);
      }
    }
  });

  test('each function queries only the indexes (and the table) its binary queries', () => {
    const queried = (st: Statement[]) => st.filter((x) => x.actions.includes('dynamodb:Query')).flatMap((x) => x.resources).sort();
    // call_by_transaction.
    assert.deepEqual(queried(sma), [INDEX_ARN('byTransaction')]);
    // due work; a campaign's calls by status (sweeps, parked calls); a transaction's orphaned
    // hang-ups (`PK = ORPHAN#<transaction id>`) on the table.
    assert.deepEqual(queried(timers), [TABLE_ARN, INDEX_ARN('byCampaign'), INDEX_ARN('due')].sort());
    // A call with its history, an overview, a stored answer (the table); a campaign's calls;
    // the account's campaigns.
    assert.deepEqual(queried(api), [TABLE_ARN, INDEX_ARN('byCampaign'), INDEX_ARN('campaigns')].sort());
    // Counters and history are written, never queried.
    assert.deepEqual(queried(stream), []);
  });

  test('the table key is usable only through DynamoDB', () => {
    for (const st of [...sma, ...timers, ...api, ...stream].filter((x) => x.sid === 'TableKeyThroughDynamoDB')) {
      assert.deepEqual(st.resources, [`\${${id.key}.Arn}`]);
      assert.equal(render((st.condition as any).StringEquals['kms:ViaService']), 'dynamodb.${AWS::Region}.amazonaws.com');
    }
  });

  test('each function writes only to its own log group', () => {
    for (const [prefix, st] of [['SmaFunction', sma], ['TimersFunction', timers], ['ApiFunction', api], ['StreamFunction', stream]] as const) {
      const logs = st.filter((x) => x.actions.includes('logs:PutLogEvents'));
      assert.equal(logs.length, 1);
      const group = R[logicalId(s, 'AWS::Lambda::Function', prefix)].Properties.LoggingConfig.LogGroup.Ref;
      assert.deepEqual(logs[0].resources, [`\${${group}.Arn}`]);
    }
  });
});

describe('the SIP media application', () => {
  test('is the native resource with the SMA function as its one endpoint', () => {
    s.template.resourceCountIs('AWS::Chime::SipMediaApplication', 1);
    const sma = R.SipMediaApplication;
    assert.equal(sma.Type, 'AWS::Chime::SipMediaApplication');
    assert.deepEqual(sma.Properties.Endpoints, [{ LambdaArn: { 'Fn::GetAtt': [id.sma, 'Arn'] } }]);
    assert.deepEqual(sma.Properties.AwsRegion, { Ref: 'AWS::Region' });
  });

  const chimePermissions = () => resourcesOf('AWS::Lambda::Permission')
    .filter(([, r]) => r.Properties.Principal === 'voiceconnector.chime.amazonaws.com');
  const invokeSma = {
    Action: 'lambda:InvokeFunction',
    FunctionName: { 'Fn::GetAtt': [id.sma, 'Arn'] },
    Principal: 'voiceconnector.chime.amazonaws.com',
    SourceAccount: { Ref: 'AWS::AccountId' },
  };

  test('may invoke the SMA function, and only it, through four permissions (two ARN forms, before and after the SMA)', () => {
    assert.deepEqual(chimePermissions().map(([permissionId]) => permissionId).sort(), [
      'SmaInvokeFromThisAccount', 'SmaInvokeFromThisAccountVoiceConnectorArn', 'SmaInvokePermission', 'SmaInvokePermissionVoiceConnectorArn',
    ]);
    for (const [permissionId, { Properties }] of chimePermissions()) {
      assert.deepEqual({ ...Properties, SourceArn: undefined }, { ...invokeSma, SourceArn: undefined }, permissionId);
    }
  });

  test('the SMA invoke permission names this SMA\'s ARN (exists after the SMA: it references its id)', () => {
    const sourceArn = (permissionId: string) => R[permissionId].Properties.SourceArn;
    assert.equal(render(sourceArn('SmaInvokePermission')), SMA_ARN);
    assert.equal(render(sourceArn('SmaInvokePermissionVoiceConnectorArn')), SMA_ARN.replace(':chime:', ':voiceconnector:'));
    for (const permissionId of ['SmaInvokePermission', 'SmaInvokePermissionVoiceConnectorArn']) {
      // The id is the SMA resource's attribute, not a value fixed at synth.
      assert.deepEqual(sourceArn(permissionId)['Fn::Join'][1].at(-1), { 'Fn::GetAtt': ['SipMediaApplication', 'SipMediaApplicationId'] });
      // No cycle: the SMA does not wait for it.
      assert.ok(!(R.SipMediaApplication.DependsOn ?? []).includes(permissionId));
    }
  });

  test('before the SMA exists, only SMAs of this account and Region may invoke the function', () => {
    for (const [permissionId, service] of [['SmaInvokeFromThisAccount', 'chime'], ['SmaInvokeFromThisAccountVoiceConnectorArn', 'voiceconnector']]) {
      assert.equal(render(R[permissionId].Properties.SourceArn), `arn:\${AWS::Partition}:${service}:\${AWS::Region}:\${AWS::AccountId}:sma/*`);
      assert.ok(R.SipMediaApplication.DependsOn?.includes(permissionId), permissionId);
    }
  });
});

describe('the greetings bucket (answering-machine detection)', () => {
  const bucket = R[id.greetings];
  const policies = resourcesOf('AWS::S3::BucketPolicy');
  const statements = () => {
    assert.equal(policies.length, 1);
    const [, policy] = policies[0];
    assert.deepEqual(policy.Properties.Bucket, { Ref: id.greetings });
    return policy.Properties.PolicyDocument.Statement as any[];
  };
  const BUCKET_ARN = `\${${id.greetings}.Arn}`;

  test('is the stack\'s one bucket, encrypted with S3-managed keys (SSE-S3)', () => {
    assert.equal(resourcesOf('AWS::S3::Bucket').length, 1);
    assert.deepEqual(bucket.Properties.BucketEncryption, {
      ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
    });
  });

  test('blocks every kind of public access and owns every object, with ACLs off', () => {
    assert.deepEqual(bucket.Properties.PublicAccessBlockConfiguration, {
      BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true,
    });
    assert.deepEqual(bucket.Properties.OwnershipControls, { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] });
    assert.equal(bucket.Properties.AccessControl, undefined);
  });

  test('refuses plain HTTP to the bucket and its objects', () => {
    const deny = statements().filter((st) => st.Effect === 'Deny');
    assert.equal(deny.length, 1);
    assert.deepEqual(deny[0].Condition, { Bool: { 'aws:SecureTransport': 'false' } });
    assert.equal(deny[0].Action, 's3:*');
    assert.deepEqual(deny[0].Resource.map(render).sort(), [BUCKET_ARN, `${BUCKET_ARN}/*`].sort());
  });

  test('expires every object a day after it is written, and aborts unfinished uploads after a day', () => {
    assert.equal(GREETINGS.expiration.toDays(), 1);
    assert.deepEqual(bucket.Properties.LifecycleConfiguration.Rules, [{
      Id: 'ExpireGreetings',
      Status: 'Enabled',
      ExpirationInDays: 1,
      AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
    }]);
    // The rule covers the whole bucket: no prefix or tag narrows it.
    const [rule] = bucket.Properties.LifecycleConfiguration.Rules;
    assert.equal(rule.Prefix, undefined);
    assert.equal(rule.TagFilters, undefined);
  });

  test('lets only the PSTN audio service write, PutObject and PutObjectAcl under greetings/, for this account and this SMA', () => {
    const allow = statements().filter((st) => st.Effect === 'Allow');
    assert.equal(allow.length, 1);
    const [st] = allow;
    assert.equal(st.Sid, 'PstnAudioWritesGreetings');
    assert.deepEqual(st.Principal, { Service: 'voiceconnector.chime.amazonaws.com' });
    assert.deepEqual([st.Action].flat().sort(), ['s3:PutObject', 's3:PutObjectAcl']);
    assert.deepEqual([st.Resource].flat().map(render), [`${BUCKET_ARN}/greetings/*`]);
    assert.equal(GREETINGS.prefix, 'greetings/');
    assert.deepEqual(Object.keys(st.Condition), ['StringEquals']);
    assert.deepEqual(st.Condition.StringEquals['aws:SourceAccount'], { Ref: 'AWS::AccountId' });
    // This SMA, in both forms of its ARN AWS documents for this principal (either matches).
    assert.deepEqual(st.Condition.StringEquals['aws:SourceArn'].map(render).sort(),
      [SMA_ARN, SMA_ARN.replace(':chime:', ':voiceconnector:')].sort());
    assert.deepEqual(Object.keys(st.Condition.StringEquals).sort(), ['aws:SourceAccount', 'aws:SourceArn']);
  });

  test('no role or identity policy of the stack names the bucket or grants any S3 action', () => {
    for (const [rid, r] of Object.entries(R).filter(([, x]) => x.Type.startsWith('AWS::IAM::'))) {
      assert.ok(!JSON.stringify(r).includes(id.greetings), `${rid} names the greetings bucket`);
    }
    const s3 = allIdentityStatements(s).filter((st) => st.actions.some((a) => a.startsWith('s3:')));
    assert.deepEqual(s3, []);
  });

  test('gives its name to the SMA function alone, and to the outputs', () => {
    for (const fnId of [id.timers, id.api, id.stream]) {
      assert.ok(!JSON.stringify(R[fnId].Properties.Environment).includes(id.greetings), fnId);
    }
    assert.deepEqual(R[id.sma].Properties.Environment.Variables.OUTDIAL_GREETINGS_BUCKET, { Ref: id.greetings });
    assert.deepEqual(s.json.Outputs.GreetingsBucketName.Value, { Ref: id.greetings });
  });

  test('goes with the stack, without a custom resource to empty it (its objects expire within a day)', () => {
    assert.equal(bucket.DeletionPolicy, 'Delete');
    assert.equal(bucket.UpdateReplacePolicy, 'Delete');
    assert.deepEqual(Object.values(R).filter((r) => r.Type.startsWith('Custom::')), []);
  });
});

describe('the stream consumer', () => {
  test('keeps shard order, reports partial failures, bisects, retries a bounded number of times', () => {
    s.template.resourceCountIs('AWS::Lambda::EventSourceMapping', 1);
    s.template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: { Ref: id.stream },
      EventSourceArn: { 'Fn::GetAtt': [id.table, 'StreamArn'] },
      StartingPosition: 'TRIM_HORIZON',
      BatchSize: 100,
      ParallelizationFactor: 1,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      BisectBatchOnFunctionError: true,
      MaximumRetryAttempts: STREAM_MAPPING.retryAttempts,
      MaximumRecordAgeInSeconds: STREAM_MAPPING.maxRecordAge.toSeconds(),
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [id.queue, 'Arn'] } } },
      TumblingWindowInSeconds: 900,
    });
    assert.ok(STREAM_MAPPING.retryAttempts > 0 && STREAM_MAPPING.retryAttempts <= 10);
    assert.ok(STREAM_MAPPING.maxRecordAge.toHours() < 24, 'records set aside can still be read from the stream');
  });

  test('sets a 900 s tumbling window, so every batch names its stream shard', () => {
    // The handler's exactly-once watermark is per shard, and Lambda puts `shardId` only in
    // tumbling-window events; the handler refuses a batch without one.
    const [, esm] = resourcesOf('AWS::Lambda::EventSourceMapping')[0];
    assert.equal(esm.Properties.TumblingWindowInSeconds, 900);
    assert.equal(STREAM_MAPPING.tumblingWindow.toSeconds(), 900);
    const handler = readFileSync(join(__dirname, '..', '..', 'handlers', 'stream', 'src', 'lib.rs'), 'utf8');
    assert.match(handler, /\.get\("shardId"\)/, 'the stream handler reads the shard from the event');
    assert.match(handler, /TimeWindowEventResponse/, 'the stream handler answers in the tumbling-window shape');
  });

  test('receives only call items, new or old', () => {
    const [, esm] = resourcesOf('AWS::Lambda::EventSourceMapping')[0];
    const patterns = esm.Properties.FilterCriteria.Filters.map((f: { Pattern: string }) => JSON.parse(f.Pattern));
    assert.deepEqual(patterns, [
      { dynamodb: { NewImage: { type: { S: ['call'] } } } },
      { dynamodb: { OldImage: { type: { S: ['call'] } } } },
    ]);
  });

  test('sets failed batches aside in an encrypted queue that refuses plain HTTP', () => {
    assert.equal(R[id.queue].Properties.SqsManagedSseEnabled, true);
    s.template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [{ Ref: id.queue }],
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
  });
});

describe('outcome events', () => {
  const bus = R[id.bus];
  const BUS_ARN = `\${${id.bus}.Arn}`;
  const putEvents = (st: Statement[]) => st.filter((x) => x.actions.some((a) => a.startsWith('events:')));

  test('go to an event bus the stack creates, named after the stack', () => {
    assert.equal(resourcesOf('AWS::Events::EventBus').length, 1);
    assert.equal(bus.Properties.Name, `Outdial${OUTCOMES.busNameSuffix}`);
    assert.equal(bus.Properties.Name, 'Outdial-outcomes');
    // No resource policy: only principals of this account that IAM allows may put events.
    assert.deepEqual(resourcesOf('AWS::Events::EventBusPolicy'), []);
    assert.deepEqual(s.json.Outputs.EventBusName.Value, { Ref: id.bus });
  });

  test('whose name the stream function gets as OUTDIAL_EVENT_BUS, and no other function', () => {
    assert.deepEqual(R[id.stream].Properties.Environment.Variables.OUTDIAL_EVENT_BUS, { Ref: id.bus });
    for (const fnId of [id.sma, id.timers, id.api]) {
      assert.equal(R[fnId].Properties.Environment.Variables.OUTDIAL_EVENT_BUS, undefined, fnId);
    }
  });

  test('the stream function may put events on that bus\'s ARN only, and no other role may touch EventBridge', () => {
    const st = putEvents(functionStatements(s, 'StreamFunction'));
    assert.deepEqual(st.map((x) => [x.sid, x.actions, x.resources, x.condition]), [['PutOutcomeEvents', ['events:PutEvents'], [BUS_ARN], undefined]]);
    for (const prefix of ['SmaFunction', 'TimersFunction', 'ApiFunction']) assert.deepEqual(putEvents(functionStatements(s, prefix)), [], prefix);
    assert.deepEqual(allIdentityStatements(s).filter((x) => x.actions.some((a) => a.startsWith('events:'))).map((x) => x.sid), ['PutOutcomeEvents']);
  });

  test('the stream function may read items of the table (a campaign\'s watermark and completion), not query it', () => {
    const items = functionStatements(s, 'StreamFunction').filter((x) => x.sid === 'TableItems');
    assert.deepEqual(items.map((x) => [x.actions.sort(), x.resources]), [[['dynamodb:BatchWriteItem', 'dynamodb:GetItem', 'dynamodb:UpdateItem'], [TABLE_ARN]]]);
  });

  test('without outdial:webhookUrl, nothing leaves the bus: no rule, connection, API destination or webhook queue', () => {
    for (const type of ['AWS::Events::Rule', 'AWS::Events::Connection', 'AWS::Events::ApiDestination']) {
      assert.deepEqual(resourcesOf(type), [], type);
    }
    assert.deepEqual(resourcesOf('AWS::SQS::Queue').map(([qid]) => qid), [id.queue]);
    assert.equal(s.json.Outputs.WebhookFailureQueueUrl, undefined);
    assert.equal(s.json.Outputs.WebhookConnectionName, undefined);
    assert.ok(!Object.keys(R).some((rid) => rid.startsWith('Webhook')));
  });
});

describe('outcome events on an existing bus (outdial:eventBus)', () => {
  const shared = synth({ 'outdial:eventBus': 'shared-outcomes' });
  const SHARED_ARN = 'arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/shared-outcomes';

  test('create no bus and tell the stream function that bus\'s name', () => {
    assert.deepEqual(Object.values(shared.json.Resources).filter((r) => r.Type.startsWith('AWS::Events::')), []);
    const fn = shared.json.Resources[logicalId(shared, 'AWS::Lambda::Function', 'StreamFunction')];
    assert.equal(fn.Properties.Environment.Variables.OUTDIAL_EVENT_BUS, 'shared-outcomes');
    assert.equal(shared.json.Outputs.EventBusName.Value, 'shared-outcomes');
  });

  test('grant PutEvents on that bus\'s ARN only', () => {
    const st = functionStatements(shared, 'StreamFunction').filter((x) => x.actions.includes('events:PutEvents'));
    assert.deepEqual(st.map((x) => [x.actions, x.resources]), [[['events:PutEvents'], [SHARED_ARN]]]);
  });

  test('with a webhook, put its rule on that bus', () => {
    const hooked = synth({
      'outdial:eventBus': 'shared-outcomes', 'outdial:webhookUrl': 'https://hooks.example.com/outdial', 'outdial:webhookSecret': 'outdial/webhook-key',
    });
    const rules = Object.values(hooked.json.Resources).filter((r) => r.Type === 'AWS::Events::Rule');
    assert.deepEqual(rules.map((r) => r.Properties.EventBusName), ['shared-outcomes']);
    assert.deepEqual(Object.values(hooked.json.Resources).filter((r) => r.Type === 'AWS::Events::EventBus'), []);
  });
});

describe('the webhook (outdial:webhookUrl, outdial:webhookSecret)', () => {
  const SECRET = 'outdial/webhook-key';
  const WEBHOOK_URL = 'https://hooks.example.com/outdial/events';
  const w = synth({ 'outdial:webhookUrl': WEBHOOK_URL, 'outdial:webhookSecret': SECRET });
  const W = w.json.Resources;
  const of = (type: string) => Object.entries(W).filter(([, r]) => r.Type === type);
  const wid = {
    bus: logicalId(w, 'AWS::Events::EventBus', 'EventBus'),
    connection: logicalId(w, 'AWS::Events::Connection', 'WebhookConnection'),
    destination: logicalId(w, 'AWS::Events::ApiDestination', 'WebhookDestination'),
    rule: logicalId(w, 'AWS::Events::Rule', 'WebhookRule'),
    dlq: logicalId(w, 'AWS::SQS::Queue', 'WebhookFailures'),
    role: logicalId(w, 'AWS::IAM::Role', 'WebhookRole'),
    topic: logicalId(w, 'AWS::SNS::Topic', 'AlarmTopic'),
  };
  const [[, rule]] = of('AWS::Events::Rule');
  const target = rule.Properties.Targets[0];

  test('has one connection with API-key authorization in x-outdial-key, the key a Secrets Manager dynamic reference', () => {
    assert.equal(of('AWS::Events::Connection').length, 1);
    const connection = W[wid.connection].Properties;
    assert.equal(connection.AuthorizationType, 'API_KEY');
    assert.equal(connection.AuthParameters.ApiKeyAuthParameters.ApiKeyName, 'x-outdial-key');
    assert.equal(OUTCOMES.keyHeader, 'x-outdial-key');
    assert.equal(connection.AuthParameters.ApiKeyAuthParameters.ApiKeyValue, `{{resolve:secretsmanager:${SECRET}:SecretString:::}}`);
  });

  test('holds no secret value: the key appears only as the dynamic reference CloudFormation resolves at deploy', () => {
    const text = JSON.stringify(w.json);
    // The secret's name appears once, inside the reference; nothing else resolves a secret.
    assert.equal(text.split(SECRET).length - 1, 1);
    assert.deepEqual(text.match(/\{\{resolve:[^}]*\}\}/g), [`{{resolve:secretsmanager:${SECRET}:SecretString:::}}`]);
    // No secret of the stack's own, no plain-text authorization parameter, no key in the URL.
    assert.deepEqual(of('AWS::SecretsManager::Secret'), []);
    const auth = W[wid.connection].Properties.AuthParameters;
    assert.deepEqual(Object.keys(auth), ['ApiKeyAuthParameters']);
    assert.deepEqual(Object.keys(auth.ApiKeyAuthParameters).sort(), ['ApiKeyName', 'ApiKeyValue']);
    assert.equal(new URL(W[wid.destination].Properties.InvocationEndpoint).password, '');
  });

  test('takes the secret by ARN as well', () => {
    const arn = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:outdial/webhook-key-AbCdEf';
    const byArn = synth({ 'outdial:webhookUrl': WEBHOOK_URL, 'outdial:webhookSecret': arn });
    const [[, connection]] = Object.entries(byArn.json.Resources).filter(([, r]) => r.Type === 'AWS::Events::Connection');
    assert.equal(connection.Properties.AuthParameters.ApiKeyAuthParameters.ApiKeyValue, `{{resolve:secretsmanager:${arn}:SecretString:::}}`);
  });

  test('POSTs to the URL through an API destination on that connection, at most 50 a second by default', () => {
    assert.equal(of('AWS::Events::ApiDestination').length, 1);
    assert.deepEqual(W[wid.destination].Properties, {
      ConnectionArn: { 'Fn::GetAtt': [wid.connection, 'Arn'] },
      Description: W[wid.destination].Properties.Description,
      HttpMethod: 'POST',
      InvocationEndpoint: WEBHOOK_URL,
      InvocationRateLimitPerSecond: 50,
    });
    assert.equal(DEFAULTS.webhookRate, 50);
  });

  test('takes the rate from outdial:webhookRate, and changes nothing else', () => {
    for (const rate of [1, 120, 300]) {
      const r = synth({ 'outdial:webhookUrl': WEBHOOK_URL, 'outdial:webhookSecret': SECRET, 'outdial:webhookRate': String(rate) });
      const destinations = Object.entries(r.json.Resources).filter(([, x]) => x.Type === 'AWS::Events::ApiDestination');
      assert.equal(destinations.length, 1);
      const [[id, destination]] = destinations;
      assert.equal(destination.Properties.InvocationRateLimitPerSecond, rate);
      // The same template as the default's, but for the rate.
      const expected = structuredClone(w.json) as any;
      expected.Resources[id].Properties.InvocationRateLimitPerSecond = rate;
      assert.deepEqual(r.json, expected);
    }
  });

  test('forwards the four outcome detail types of source outdial, from the stack\'s bus', () => {
    assert.equal(of('AWS::Events::Rule').length, 1);
    assert.deepEqual(rule.Properties.EventBusName, { Ref: wid.bus });
    assert.equal(rule.Properties.State, 'ENABLED');
    assert.deepEqual(rule.Properties.EventPattern, {
      source: ['outdial'],
      'detail-type': ['Call Placed', 'Call Answered', 'Call Ended', 'Campaign Completed'],
    });
  });

  test('sends the whole event (no input transformer), retries for up to 24 h, then sets it aside in the dead-letter queue', () => {
    assert.equal(rule.Properties.Targets.length, 1);
    assert.deepEqual(target.Arn, { 'Fn::GetAtt': [wid.destination, 'Arn'] });
    for (const key of ['Input', 'InputPath', 'InputTransformer', 'HttpParameters']) assert.equal(target[key], undefined, key);
    assert.deepEqual(target.RetryPolicy, { MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 86400 });
    assert.equal(OUTCOMES.maxEventAge.toHours(), 24);
    assert.deepEqual(target.DeadLetterConfig, { Arn: { 'Fn::GetAtt': [wid.dlq, 'Arn'] } });
    assert.deepEqual(target.RoleArn, { 'Fn::GetAtt': [wid.role, 'Arn'] });
  });

  test('invokes it with a role EventBridge may assume for this account only, that may invoke this API destination and nothing else', () => {
    const trust = W[wid.role].Properties.AssumeRolePolicyDocument.Statement;
    assert.deepEqual(trust.map((t: any) => [t.Principal.Service, t.Condition]), [
      ['events.amazonaws.com', { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } }],
    ]);
    assert.deepEqual(roleStatements(w, wid.role).map((x) => [x.effect, x.actions, x.resources, x.condition]), [
      ['Allow', ['events:InvokeApiDestination'], [`\${${wid.destination}.Arn}`], undefined],
    ]);
  });

  test('the dead-letter queue is encrypted, refuses plain HTTP, keeps events 14 days, and only this rule may send to it', () => {
    const queue = W[wid.dlq].Properties;
    assert.equal(queue.SqsManagedSseEnabled, true);
    assert.equal(queue.MessageRetentionPeriod, 14 * 24 * 3600);
    const [[, policy], ...more] = of('AWS::SQS::QueuePolicy').filter(([, p]) => p.Properties.Queues[0].Ref === wid.dlq);
    assert.equal(more.length, 0);
    const statements = policy.Properties.PolicyDocument.Statement;
    const deny = statements.filter((st: any) => st.Effect === 'Deny');
    assert.deepEqual(deny.map((st: any) => st.Condition), [{ Bool: { 'aws:SecureTransport': 'false' } }]);
    const allow = statements.filter((st: any) => st.Effect === 'Allow');
    assert.deepEqual(allow.map((st: any) => [st.Principal, st.Action, st.Resource, st.Condition]), [[
      { Service: 'events.amazonaws.com' }, 'sqs:SendMessage', { 'Fn::GetAtt': [wid.dlq, 'Arn'] },
      { ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [wid.rule, 'Arn'] } } },
    ]]);
    assert.deepEqual(w.json.Outputs.WebhookFailureQueueUrl.Value, { Ref: wid.dlq });
    assert.deepEqual(w.json.Outputs.WebhookConnectionName.Value, { Ref: wid.connection });
  });

  test('alarms when the dead-letter queue holds an event, and graphs it', () => {
    const alarms = of('AWS::CloudWatch::Alarm').map(([, r]) => r.Properties).filter((a) => a.AlarmName === 'Outdial-WebhookFailuresNotEmpty');
    assert.equal(alarms.length, 1);
    const [a] = alarms;
    assert.equal(a.Namespace, 'AWS/SQS');
    assert.equal(a.MetricName, 'ApproximateNumberOfMessagesVisible');
    assert.deepEqual(a.Dimensions, [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [wid.dlq, 'QueueName'] } }]);
    assert.equal(a.Threshold, 0);
    assert.equal(a.ComparisonOperator, 'GreaterThanThreshold');
    assert.deepEqual(a.AlarmActions, [{ Ref: wid.topic }]);
    assert.deepEqual(a.OKActions, [{ Ref: wid.topic }]);
    const [[, dashboard]] = of('AWS::CloudWatch::Dashboard');
    const body = render(dashboard.Properties.DashboardBody);
    assert.ok(body.includes('Webhook: undelivered outcome events'));
  });

  test('adds no wildcard resource and no wildcard action', () => {
    for (const st of allIdentityStatements(w)) {
      for (const a of st.actions) assert.ok(!a.includes('*'), `wildcard action ${a}`);
    }
    const wildcards = allIdentityStatements(w).flatMap((st) => st.resources.filter((r) => r.includes('*')));
    assert.equal(wildcards.length, 2, JSON.stringify(wildcards)); // ListStreams and the API caller policy, as without a webhook
  });

  test('acknowledges only the dead-letter queue\'s own findings: cdk-nag SQS3, checkov CKV_AWS_27', () => {
    const nag = w.stack.node.findAll().flatMap((c) => c.node.metadata
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((m) => Object.keys(m.data as Record<string, string>).map((rule) => `${c.node.path} ${rule.replace(/^Annotation::/, '')}`)))
      .filter((x) => x.includes('Webhook'));
    assert.deepEqual(nag, ['Outdial/WebhookFailures AwsSolutions-SQS3']);
    const lint = Object.entries(W).filter(([rid]) => rid.startsWith('Webhook'))
      .flatMap(([rid, r]: [string, any]) => (r.Metadata?.checkov?.skip ?? []).map((k: { id: string }) => `${rid} ${k.id}`));
    assert.deepEqual(lint, [`${wid.dlq} CKV_AWS_27`]);
  });
});

describe('the dispatcher schedule', () => {
  test('invokes the timers function every minute through a role that can do only that', () => {
    const [, schedule] = resourcesOf('AWS::Scheduler::Schedule')[0];
    assert.equal(resourcesOf('AWS::Scheduler::Schedule').length, 1);
    assert.equal(schedule.Properties.ScheduleExpression, 'rate(1 minute)');
    assert.equal(schedule.Properties.State, 'ENABLED');
    assert.deepEqual(schedule.Properties.FlexibleTimeWindow, { Mode: 'OFF' });
    assert.deepEqual(schedule.Properties.Target.Arn, { 'Fn::GetAtt': [id.timers, 'Arn'] });
    assert.deepEqual(schedule.Properties.Target.RetryPolicy, { MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: DISPATCHER.maxEventAge.toSeconds() });
    const roleId = schedule.Properties.Target.RoleArn['Fn::GetAtt'][0];
    const st = roleStatements(s, roleId);
    assert.deepEqual(st.map((x) => [x.actions, x.resources]), [[['lambda:InvokeFunction'], [`\${${id.timers}.Arn}`]]]);
    const trust = R[roleId].Properties.AssumeRolePolicyDocument.Statement;
    assert.deepEqual(trust.map((t: any) => t.Principal.Service), ['scheduler.amazonaws.com']);
  });

  test('tells the function its runs are scheduled ones, which wait for the previous run\'s leases', () => {
    const [, schedule] = resourcesOf('AWS::Scheduler::Schedule')[0];
    assert.equal(schedule.Properties.Target.Input, '{"source":"outdial.schedule"}');
    // The API's runs send another source, and the handler treats every other source as scheduled.
    // Both sources are named once, in core's messages.
    const messages = readFileSync(join(__dirname, '..', '..', 'core', 'src', 'messages.rs'), 'utf8');
    const scheduled = messages.match(/^\s*const SCHEDULE: &'static str = "(.*)";$/m);
    const api = messages.match(/^\s*const API: &'static str = "(.*)";$/m);
    assert.ok(scheduled && api, 'core/src/messages.rs names both run sources');
    assert.equal(JSON.parse(schedule.Properties.Target.Input).source, scheduled[1]);
    assert.notEqual(scheduled[1], api[1]);
  });

  test('runs are not retried and a queued start expires after a minute: the next run does the same work', () => {
    s.template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: id.timers }, MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60,
    });
    const [, schedule] = resourcesOf('AWS::Scheduler::Schedule')[0];
    // Short, but not below a minute: the least Lambda and EventBridge Scheduler accept.
    for (const age of [R[logicalId(s, 'AWS::Lambda::EventInvokeConfig', 'TimersFunction')].Properties.MaximumEventAgeInSeconds,
      schedule.Properties.Target.RetryPolicy.MaximumEventAgeInSeconds]) {
      assert.ok(age >= 60 && age <= 120, `max event age ${age}`);
    }
  });
});

describe('the HTTP API', () => {
  test('authorizes every route with IAM', () => {
    const routes = resourcesOf('AWS::ApiGatewayV2::Route');
    assert.ok(routes.length >= 1);
    for (const [, route] of routes) assert.equal(route.Properties.AuthorizationType, 'AWS_IAM');
  });

  test('sends every route to the API function (payload 2.0)', () => {
    s.template.hasResourceProperties('AWS::ApiGatewayV2::Integration', {
      IntegrationType: 'AWS_PROXY',
      IntegrationUri: { 'Fn::GetAtt': [id.api, 'Arn'] },
      PayloadFormatVersion: '2.0',
    });
    s.template.resourceCountIs('AWS::ApiGatewayV2::Integration', 1);
  });

  test('writes JSON access logs with the caller to a log group with retention', () => {
    const [, stage] = resourcesOf('AWS::ApiGatewayV2::Stage')[0];
    assert.equal(stage.Properties.StageName, '$default');
    const group = R[stage.Properties.AccessLogSettings.DestinationArn['Fn::GetAtt'][0]];
    assert.equal(group.Properties.RetentionInDays, 30);
    assert.deepEqual(group.Properties.KmsKeyId, { 'Fn::GetAtt': [id.key, 'Arn'] });
    const format = JSON.parse(stage.Properties.AccessLogSettings.Format);
    assert.equal(format.requestId, '$context.requestId');
    assert.equal(format.caller, '$context.identity.userArn');
    assert.equal(format.status, '$context.status');
    assert.equal(format.routeKey, '$context.routeKey');
    // The path of `PUT /dnc/{e164}` is a phone number: no variable that holds it is logged.
    assert.ok(!Object.values(format).includes('$context.path'));
  });
});

describe('operations', () => {
  const alarms = resourcesOf('AWS::CloudWatch::Alarm').map(([, r]) => r.Properties);
  const fnAlarm = (fnId: string, metric: string) =>
    alarms.filter((a) => a.Namespace === 'AWS/Lambda' && a.MetricName === metric && a.Dimensions?.[0]?.Value?.Ref === fnId);
  const outdialAlarm = (metric: string) => alarms.filter((a) => a.Namespace === NAMESPACE && a.MetricName === metric);

  test('are the documented alarms, named after the stack', () => {
    assert.deepEqual(alarms.map((a) => a.AlarmName).sort(), [
      'SmaErrors', 'SmaThrottles', 'TimersErrors', 'TimersThrottles', 'ApiErrors', 'ApiThrottles',
      'StreamErrors', 'StreamThrottles', 'SmaDurationP99', 'StreamFailuresNotEmpty', 'CallsOverdue',
      'DialThrottled', 'CallsLost', 'DispatcherNotRunning', 'StreamIteratorAge', 'Api5xx',
      'NumbersQuarantined',
    ].map((n) => `Outdial-${n}`).sort());
  });

  test('alarm on errors and throttles of every function', () => {
    for (const fnId of [id.sma, id.timers, id.api, id.stream]) {
      assert.equal(fnAlarm(fnId, 'Errors').length, 1, `${fnId} errors`);
      assert.equal(fnAlarm(fnId, 'Throttles').length, 1, `${fnId} throttles`);
    }
  });

  test('alarm when the SMA handler\'s p99 duration passes 1 s', () => {
    const [a] = fnAlarm(id.sma, 'Duration');
    assert.equal(a.ExtendedStatistic, 'p99');
    assert.equal(a.Threshold, THRESHOLDS.smaP99Ms);
    assert.equal(a.Threshold, 1000);
    assert.equal(a.ComparisonOperator, 'GreaterThanThreshold');
  });

  test('alarm when the stream failure queue is not empty', () => {
    const dlq = alarms.filter((a) => a.MetricName === 'ApproximateNumberOfMessagesVisible');
    assert.equal(dlq.length, 1);
    assert.deepEqual(dlq[0].Dimensions, [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [id.queue, 'QueueName'] } }]);
    assert.equal(dlq[0].Threshold, 0);
    assert.equal(dlq[0].ComparisonOperator, 'GreaterThanThreshold');
  });

  test('alarm on calls stuck past their watchdog, dial throttling and lost calls', () => {
    const [overdue] = outdialAlarm('OverdueSeconds');
    assert.equal(overdue.Statistic, 'Maximum');
    assert.equal(overdue.Threshold, THRESHOLDS.overdueSeconds);
    assert.equal(overdue.Threshold, 120);
    assert.equal(overdue.ComparisonOperator, 'GreaterThanThreshold');
    assert.equal(overdue.EvaluationPeriods, 5);
    assert.equal(overdue.DatapointsToAlarm, 3);
    assert.equal(outdialAlarm('DialThrottled').length, 1);
    assert.equal(outdialAlarm('CallsLost').length, 1);
  });

  test('alarm when the stream function quarantines a caller ID, notifying the alarm topic', () => {
    const [a, ...more] = outdialAlarm('NumbersQuarantined');
    assert.equal(more.length, 0);
    assert.equal(a.Namespace, 'Outdial');
    assert.equal(a.Dimensions, undefined);
    assert.equal(a.Statistic, 'Sum');
    assert.equal(a.Period, 300);
    assert.equal(a.Threshold, 1);
    assert.equal(a.ComparisonOperator, 'GreaterThanOrEqualToThreshold');
    assert.equal(a.EvaluationPeriods, 1);
    assert.equal(a.TreatMissingData, 'notBreaching');
    assert.deepEqual(a.AlarmActions, [{ Ref: id.topic }]);
    assert.deepEqual(a.OKActions, [{ Ref: id.topic }]);
  });

  test('alarm when the dispatcher stops running', () => {
    const [a] = fnAlarm(id.timers, 'Invocations');
    assert.equal(a.ComparisonOperator, 'LessThanThreshold');
    assert.equal(a.TreatMissingData, 'breaching');
  });

  test('every alarm notifies the encrypted alarm topic, on alarm and on recovery', () => {
    for (const a of alarms) {
      assert.deepEqual(a.AlarmActions, [{ Ref: id.topic }]);
      assert.deepEqual(a.OKActions, [{ Ref: id.topic }]);
    }
    assert.deepEqual(R[id.topic].Properties.KmsMasterKeyId, { 'Fn::GetAtt': [id.key, 'Arn'] });
  });

  test('CloudWatch may use the key to publish to the encrypted topic', () => {
    const statements = R[id.key].Properties.KeyPolicy.Statement;
    const cloudwatch = statements.filter((st: any) => st.Principal?.Service === 'cloudwatch.amazonaws.com');
    assert.equal(cloudwatch.length, 1);
    assert.deepEqual(cloudwatch[0].Action, ['kms:Decrypt', 'kms:GenerateDataKey']);
  });

  test('CloudWatch Logs may use the key for this account\'s log groups in this Region only', () => {
    const statements = R[id.key].Properties.KeyPolicy.Statement;
    const logs = statements.filter((st: any) => render(st.Principal?.Service) === 'logs.${AWS::Region}.amazonaws.com');
    assert.equal(logs.length, 1);
    assert.ok(logs[0].Action.every((a: string) => a.startsWith('kms:') && !a.includes('*')));
    assert.equal(render(logs[0].Condition.ArnLike['kms:EncryptionContext:aws:logs:arn']),
      'arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*');
    // Every log group of the stack is encrypted with it.
    for (const [groupId, group] of resourcesOf('AWS::Logs::LogGroup')) {
      assert.deepEqual(group.Properties.KmsKeyId, { 'Fn::GetAtt': [id.key, 'Arn'] }, groupId);
    }
  });

  test('the dashboard graphs calls per minute by status', () => {
    const [, dashboard] = resourcesOf('AWS::CloudWatch::Dashboard')[0];
    const body = render(dashboard.Properties.DashboardBody);
    assert.ok(body.includes(`SEARCH('{${NAMESPACE},Status} MetricName=\\"CallTransitions\\"', 'Sum', 60)`), body.slice(0, 400));
    assert.ok(body.includes('Calls per minute by status'));
  });

  test('the dashboard graphs quarantined caller IDs and shows their alarm', () => {
    const [, dashboard] = resourcesOf('AWS::CloudWatch::Dashboard')[0];
    const body = JSON.parse(render(dashboard.Properties.DashboardBody));
    const metrics = body.widgets.flatMap((w: any) => w.properties.metrics ?? []);
    assert.ok(metrics.some((m: unknown[]) => m[0] === NAMESPACE && m[1] === 'NumbersQuarantined'), JSON.stringify(metrics));
    const statuses = body.widgets.filter((w: any) => w.type === 'alarm').flatMap((w: any) => w.properties.alarms.map(render));
    assert.ok(statuses.some((arn: string) => arn.includes('NumbersQuarantined')), JSON.stringify(statuses));
  });

  test('outputs the API URL, the SMA id, the table name and the event bus', () => {
    const out = s.json.Outputs;
    assert.equal(render(out.ApiUrl.Value), `https://\${${logicalId(s, 'AWS::ApiGatewayV2::Api', 'HttpApi')}}.execute-api.\${AWS::Region}.\${AWS::URLSuffix}/`);
    assert.deepEqual(out.SmaId.Value, { 'Fn::GetAtt': ['SipMediaApplication', 'SipMediaApplicationId'] });
    assert.deepEqual(out.TableName.Value, { Ref: id.table });
    assert.equal(render(out.SmaArn.Value), SMA_ARN);
    assert.deepEqual(out.EventBusName.Value, { Ref: id.bus });
  });
});

describe('cfn-lint and checkov (scripts/lint-template.sh)', () => {
  // Every finding acknowledged in the template's Metadata, by resource (docs/deploy.md lists them).
  const acknowledged = Object.entries(R).flatMap(([rid, r]: [string, any]) => [
    ...(r.Metadata?.checkov?.skip ?? []).map((k: { id: string; comment: string }) => ({ rid, id: k.id, comment: k.comment })),
    ...(r.Metadata?.['cfn-lint']?.config?.ignore_checks ?? []).map((k: string) => ({ rid, id: k, comment: undefined })),
  ]);

  test('acknowledge exactly the documented findings, each checkov one with a reason', () => {
    const fnIds = [id.sma, id.timers, id.api, id.stream];
    assert.deepEqual(acknowledged.map((a) => `${a.rid} ${a.id}`).sort(), [
      ...fnIds.flatMap((f) => [`${f} W3005`, `${f} CKV_AWS_116`, `${f} CKV_AWS_117`, `${f} CKV_AWS_173`]),
      `${id.api} CKV_AWS_115`, `${id.stream} CKV_AWS_115`,
      `${id.queue} CKV_AWS_27`,
      `${id.greetings} CKV_AWS_18`, `${id.greetings} CKV_AWS_21`,
    ].sort());
    for (const a of acknowledged.filter((x) => x.id.startsWith('CKV_'))) {
      assert.ok(typeof a.comment === 'string' && a.comment.length > 60, `${a.rid} ${a.id}: ${a.comment}`);
    }
  });
});

describe('cdk-nag', () => {
  // Every acknowledged finding, with where it is and why (docs/deploy.md lists them too).
  const acknowledged = s.stack.node.findAll().flatMap((c) =>
    c.node.metadata
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((m) => Object.entries(m.data as Record<string, string>).map(([rule, reason]) => ({
        path: c.node.path, id: rule.replace(/^Annotation::/, ''), reason,
      }))));

  test('acknowledges exactly the documented findings, each with a reason', () => {
    assert.deepEqual(acknowledged.map((a) => `${a.path} ${a.id}`).sort(), [
      `Outdial/ApiCallerPolicy AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<${logicalId(s, 'AWS::ApiGatewayV2::Api', 'HttpApi')}>/$default/*/*]`,
      'Outdial/GreetingsBucket AwsSolutions-S1',
      'Outdial/StreamFailures AwsSolutions-SQS3',
      'Outdial/StreamFunctionRole AwsSolutions-IAM5[Resource::*]',
    ]);
    for (const a of acknowledged) assert.ok(typeof a.reason === 'string' && a.reason.length > 60, `${a.id}: ${a.reason}`);
  });

  test('fails the synth on a finding nobody acknowledged', (t) => {
    t.mock.method(console, 'error', () => {}); // the expected report, printed by the synth
    const outdir = mkdtempSync(join(tmpdir(), 'outdial-nag-'));
    try {
      const app = new App({ outdir });
      app.node.setContext('aws:cdk:bundling-stacks', []);
      const stack = buildApp(app);
      new sqs.Queue(stack, 'Unchecked', { encryption: sqs.QueueEncryption.UNENCRYPTED });
      assert.throws(() => app.synth(), /Validation failed/);
      const report = JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8'));
      const rules = report.pluginReports.flatMap((p: any) => p.violations.map((v: any) => v.ruleName)).sort();
      assert.deepEqual(rules, ['AwsSolutions-SQS2', 'AwsSolutions-SQS3', 'AwsSolutions-SQS4']);
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});
