// Every AWS operation the functions make in the end-to-end suites, against what their roles
// allow, both ways. DynamoDB Local checks no IAM: without this a missing grant shows only in
// AWS. The recordings come from `cargo test` (which `just test` runs first) in
// `target/aws-operations/*.jsonl`, or wherever OUTDIAL_AWS_OPERATIONS points.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  allowAlso, arnOf, deniedOperations, describeRecord, GRANT_EXCEPTIONS, readRecordings, recordingsLocation, revoke,
  unusedExceptions, unusedGrants, type OperationRecord,
} from './permissions';
import { synth } from './synth';

const template = synth().json;
const recorded = readRecordings();

const NO_RECORDINGS = `no AWS operations recorded in ${recorded.location}: run cargo test first `
  + '(its end-to-end suites record every AWS operation each function makes there; OUTDIAL_AWS_OPERATIONS overrides the place)';

/**
 * What the binaries call, read from the Rust code (adapters/src/{store,admin,counters,dialer}.rs
 * and each handler's use of them): a fixed sample for the tests that must not depend on the
 * recordings. `Txn` stands for any local table name.
 */
const table = { kind: 'table', table: 'Txn' } as const;
const index = (name: string) => ({ kind: 'index', table: 'Txn', index: name }) as const;
const SAMPLE: OperationRecord[] = [
  // apply_event, campaign, record_orphan, and the call behind call_by_transaction.
  ...['GetItem', 'PutItem', 'UpdateItem'].map((a) => ({ function: 'sma', action: `dynamodb:${a}`, resource: table }) as const),
  { function: 'sma', action: 'dynamodb:Query', resource: index('byTransaction') },
  // Calls, campaigns, leases (Put/Delete), claims (a transaction of two updates).
  ...['GetItem', 'PutItem', 'UpdateItem', 'DeleteItem'].map((a) => ({ function: 'timers', action: `dynamodb:${a}`, resource: table }) as const),
  { function: 'timers', action: 'dynamodb:Query', resource: index('due') },
  { function: 'timers', action: 'dynamodb:Query', resource: index('byCampaign') },
  // orphans: a watchdog queries the base table's `ORPHAN#<transaction id>` partition for the
  // hang-up of a call the SMA no longer knew.
  { function: 'timers', action: 'dynamodb:Query', resource: table },
  { function: 'timers', action: 'chime:CreateSipMediaApplicationCall', resource: { kind: 'sma' } },
  { function: 'timers', action: 'chime:UpdateSipMediaApplicationCall', resource: { kind: 'sma' } },
  // Campaigns in bulk (a transaction with a condition check), idempotency records, the
  // do-not-call list in batches.
  ...['GetItem', 'PutItem', 'UpdateItem', 'DeleteItem', 'BatchGetItem', 'BatchWriteItem', 'ConditionCheckItem']
    .map((a) => ({ function: 'api', action: `dynamodb:${a}`, resource: table }) as const),
  { function: 'api', action: 'dynamodb:Query', resource: table },
  { function: 'api', action: 'dynamodb:Query', resource: index('byCampaign') },
  // The account's campaigns (GET /campaigns), newest first; their counters in a BatchGetItem.
  { function: 'api', action: 'dynamodb:Query', resource: index('campaigns') },
  { function: 'api', action: 'chime:UpdateSipMediaApplicationCall', resource: { kind: 'sma' } },
  { function: 'api', action: 'lambda:InvokeFunction', resource: { kind: 'function', name: 'timers' } },
  // Counters and history; a campaign's watermark and completion, read before publishing;
  // outcome events put on the bus (`outdial-local` stands for any local bus name); then what
  // the event source mapping does with the function's role.
  { function: 'stream', action: 'dynamodb:GetItem', resource: table },
  { function: 'stream', action: 'dynamodb:UpdateItem', resource: table },
  { function: 'stream', action: 'dynamodb:BatchWriteItem', resource: table },
  { function: 'stream', action: 'events:PutEvents', resource: { kind: 'bus', name: 'outdial-local' } },
  ...['DescribeStream', 'GetShardIterator', 'GetRecords'].map((a) => ({ function: 'stream', action: `dynamodb:${a}`, resource: { kind: 'stream', table: 'Txn' } }) as const),
  { function: 'stream', action: 'dynamodb:ListStreams', resource: { kind: 'any' } },
];

/** The recordings when there are any, else the sample: for the tests of the check itself. */
const records = recorded.records.length > 0 ? recorded.records : SAMPLE;
const list = (rs: readonly OperationRecord[]) => rs.map(describeRecord);

describe('the recorded AWS operations', () => {
  test('are each allowed by their function\'s role', () => {
    assert.ok(recorded.records.length > 0, NO_RECORDINGS);
    const denied = deniedOperations(template, recorded.records);
    assert.deepEqual(list(denied), [],
      `recorded in ${recorded.location} but not allowed by the function's role (lib/outdial-stack.ts):\n  ${list(denied).join('\n  ')}`);
  });

  test('use every grant of every function role, but the listed exceptions', () => {
    assert.ok(recorded.records.length > 0, NO_RECORDINGS);
    const unused = unusedGrants(template, recorded.records, GRANT_EXCEPTIONS);
    assert.deepEqual(unused, [],
      `granted but used by no operation recorded in ${recorded.location}: remove the grant, or list it in GRANT_EXCEPTIONS with its reason:\n  `
      + unused.map((g) => `${g.function} ${g.sid ?? ''} ${g.action} on ${g.resource}`).join('\n  '));
  });
});

describe('the permission check', () => {
  test('passes the stack on the sample of what the binaries call', () => {
    assert.deepEqual(list(deniedOperations(template, SAMPLE)), []);
    assert.deepEqual(unusedGrants(template, SAMPLE, GRANT_EXCEPTIONS), []);
  });

  test('every exception excuses a grant of the stack, with a reason', () => {
    assert.deepEqual(unusedExceptions(template, GRANT_EXCEPTIONS), []);
    for (const e of GRANT_EXCEPTIONS) assert.ok(e.reason.length > 20, e.action);
  });

  test('names each resource by its ARN in the template', () => {
    const arn = (r: OperationRecord['resource']) => arnOf(template, 'api', r);
    assert.match(arn(table), /^\$\{Table[0-9A-F]{8}\.Arn\}$/);
    assert.equal(arn(index('due')), `${arn(table)}/index/due`);
    assert.match(arn({ kind: 'stream', table: 'x' }), /^\$\{Table[0-9A-F]{8}\.StreamArn\}$/);
    assert.equal(arn({ kind: 'sma' }), 'arn:${AWS::Partition}:chime:${AWS::Region}:${AWS::AccountId}:sma/${SipMediaApplication.SipMediaApplicationId}');
    assert.match(arn({ kind: 'function', name: 'timers' }), /^\$\{TimersFunction[0-9A-F]{8}\.Arn\}$/);
    assert.match(arn({ kind: 'bus', name: 'outdial-local' }), /^\$\{EventBus[0-9A-F]{8}\.Arn\}$/);
    assert.equal(arn({ kind: 'any' }), '*');
  });

  test('names any recorded bus as the stack\'s one bus: its own, or the existing one outdial:eventBus names', () => {
    const put = (name: string) => ({ function: 'stream', action: 'events:PutEvents', resource: { kind: 'bus', name } }) as const;
    // Whatever the local suites called their bus, it is the bus OUTDIAL_EVENT_BUS names.
    assert.equal(arnOf(template, 'stream', put('outdial-local').resource), arnOf(template, 'stream', put('another-local-bus').resource));
    assert.deepEqual(list(deniedOperations(template, [put('outdial-local'), put('another-local-bus')])), []);
    const shared = synth({ 'outdial:eventBus': 'shared-outcomes' }).json;
    assert.equal(arnOf(shared, 'stream', put('outdial-local').resource),
      'arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/shared-outcomes');
    assert.deepEqual(list(deniedOperations(shared, [put('outdial-local')])), []);
    assert.deepEqual(unusedGrants(shared, SAMPLE, GRANT_EXCEPTIONS), []);
  });

  test('catches the stream function\'s PutEvents taken away, given to another function, or granted on another bus', () => {
    const put = { function: 'stream', action: 'events:PutEvents', resource: { kind: 'bus', name: 'outdial-local' } } as const;
    const busArn = arnOf(template, 'stream', put.resource);
    const without = revoke(template, 'stream', 'events:PutEvents', busArn);
    assert.deepEqual(list(deniedOperations(without, SAMPLE)), ['stream events:PutEvents on bus']);
    // Only the stream function may publish: the same record from the API function is denied.
    assert.deepEqual(list(deniedOperations(template, [{ ...put, function: 'api' }])), ['api events:PutEvents on bus']);
    // A grant on some other bus allows nothing on this one, and is itself unused.
    const otherBus = 'arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default';
    const moved = allowAlso(without, 'stream', ['events:PutEvents'], [otherBus]);
    assert.deepEqual(list(deniedOperations(moved, SAMPLE)), ['stream events:PutEvents on bus']);
    assert.deepEqual(unusedGrants(moved, SAMPLE, GRANT_EXCEPTIONS).map((g) => `${g.function} ${g.action} ${g.resource}`),
      [`stream events:PutEvents ${otherBus}`]);
  });

  test('reports the stream function\'s PutEvents and GetItem grants unused while nothing records them', () => {
    const before = SAMPLE.filter((r) => !(r.function === 'stream' && ['events:PutEvents', 'dynamodb:GetItem'].includes(r.action)));
    assert.deepEqual(unusedGrants(template, before, GRANT_EXCEPTIONS).map((g) => `${g.function} ${g.sid} ${g.action} ${g.resource}`).sort(), [
      `stream PutOutcomeEvents events:PutEvents ${arnOf(template, 'stream', { kind: 'bus', name: 'x' })}`,
      `stream TableItems dynamodb:GetItem ${arnOf(template, 'stream', table)}`,
    ]);
  });

  test('catches the SMA function\'s Query on the byTransaction index taken away', () => {
    const affected = records.filter((r) => r.function === 'sma' && r.action === 'dynamodb:Query'
      && r.resource.kind === 'index' && r.resource.index === 'byTransaction');
    assert.equal(affected.length, 1, 'the operations include the SMA function\'s Query on byTransaction');
    const without = revoke(template, 'sma', 'dynamodb:Query', arnOf(template, 'sma', index('byTransaction')));
    const before = list(deniedOperations(template, records));
    const after = list(deniedOperations(without, records)).filter((r) => !before.includes(r));
    assert.deepEqual(after, list(affected));
  });

  test('catches the timers function\'s chime:CreateSipMediaApplicationCall taken away, and only that', () => {
    const affected = records.filter((r) => r.function === 'timers' && r.action === 'chime:CreateSipMediaApplicationCall');
    assert.equal(affected.length, 1, 'the operations include the timers function\'s CreateSipMediaApplicationCall');
    const without = revoke(template, 'timers', 'chime:CreateSipMediaApplicationCall', arnOf(template, 'timers', { kind: 'sma' }));
    const before = list(deniedOperations(template, records));
    const after = list(deniedOperations(without, records)).filter((r) => !before.includes(r));
    // The statement also granted UpdateSipMediaApplicationCall: that one is still allowed.
    assert.deepEqual(after, list(affected));
  });

  test('catches a grant on the wrong resource: the SMA\'s Query on the table instead of its index', () => {
    const sample = SAMPLE.filter((r) => r.function === 'sma');
    const query = sample.filter((r) => r.action === 'dynamodb:Query');
    const moved = allowAlso(revoke(template, 'sma', 'dynamodb:Query', arnOf(template, 'sma', index('byTransaction'))),
      'sma', ['dynamodb:Query'], [arnOf(template, 'sma', table)]);
    assert.deepEqual(list(deniedOperations(moved, sample)), list(query));
    // And the table grant is itself unused.
    assert.deepEqual(unusedGrants(moved, SAMPLE, GRANT_EXCEPTIONS).map((g) => `${g.function} ${g.action} ${g.resource}`),
      [`sma dynamodb:Query ${arnOf(template, 'sma', table)}`]);
  });

  test('counts a wildcard grant, and no conditional one', () => {
    const sma = SAMPLE.filter((r) => r.function === 'sma');
    const queryArn = arnOf(template, 'sma', index('byTransaction'));
    const bare = revoke(template, 'sma', 'dynamodb:Query', queryArn);
    const wildcard = allowAlso(bare, 'sma', ['dynamodb:Query'], [`${arnOf(template, 'sma', table)}/index/*`]);
    assert.deepEqual(list(deniedOperations(wildcard, sma)), []);
    const actionWildcard = allowAlso(bare, 'sma', ['dynamodb:Q*'], [queryArn]);
    assert.deepEqual(list(deniedOperations(actionWildcard, sma)), []);
    const conditional = structuredClone(allowAlso(bare, 'sma', ['dynamodb:Query'], [queryArn]));
    const extra = Object.values(conditional.Resources).find((r) => r.Properties.PolicyName === 'Extra')!;
    extra.Properties.PolicyDocument.Statement[0].Condition = { Bool: { 'aws:SecureTransport': 'true' } };
    assert.deepEqual(list(deniedOperations(conditional, sma)), list(sma.filter((r) => r.action === 'dynamodb:Query')));
    const denied = allowAlso(template, 'sma', [], []);
    const denyDoc = Object.values(denied.Resources).find((r) => r.Properties.PolicyName === 'Extra')!.Properties.PolicyDocument;
    denyDoc.Statement = [{ Effect: 'Deny', Action: 'dynamodb:Query', Resource: '*' }];
    assert.deepEqual(list(deniedOperations(denied, sma)), list(sma.filter((r) => r.action === 'dynamodb:Query')));
  });

  test('reports the grants no operation uses: one added, one whose only use is gone', () => {
    const withScan = allowAlso(template, 'stream', ['dynamodb:Scan'], [arnOf(template, 'stream', table)]);
    assert.deepEqual(unusedGrants(withScan, SAMPLE, GRANT_EXCEPTIONS).map((g) => `${g.function} ${g.action} ${g.resource}`),
      [`stream dynamodb:Scan ${arnOf(template, 'stream', table)}`]);
    const noDial = SAMPLE.filter((r) => !(r.function === 'timers' && r.action === 'chime:CreateSipMediaApplicationCall'));
    assert.deepEqual(unusedGrants(template, noDial, GRANT_EXCEPTIONS), [{
      function: 'timers', sid: 'DialAndHangUpOnThisSma', action: 'chime:CreateSipMediaApplicationCall', resource: arnOf(template, 'timers', { kind: 'sma' }),
    }]);
    // The same grant used by another function does not count.
    const apiDials = [...noDial, { function: 'api', action: 'chime:CreateSipMediaApplicationCall', resource: { kind: 'sma' } } as const];
    assert.equal(unusedGrants(template, apiDials, GRANT_EXCEPTIONS).length, 1);
    // Without the exceptions, the key, log and failure-queue grants are all reported.
    const services = new Set(unusedGrants(template, SAMPLE, []).map((g) => g.action.split(':')[0]));
    assert.deepEqual([...services].sort(), ['kms', 'logs', 'sqs']);
  });
});

describe('the recordings', () => {
  test('are read from OUTDIAL_AWS_OPERATIONS, else target/aws-operations at the repository root', () => {
    assert.equal(recordingsLocation({ OUTDIAL_AWS_OPERATIONS: '/tmp/ops' }), '/tmp/ops');
    assert.equal(recordingsLocation({}), join(__dirname, '..', '..', 'target', 'aws-operations'));
  });

  test('are every distinct line of every .jsonl file, any table being the one table', () => {
    const dir = mkdtempSync(join(tmpdir(), 'outdial-ops-'));
    try {
      const line = (o: unknown) => JSON.stringify(o);
      writeFileSync(join(dir, 'a.jsonl'), [
        line({ function: 'sma', action: 'dynamodb:Query', resource: { kind: 'index', table: 't1', index: 'byTransaction' } }),
        '',
        line({ function: 'stream', action: 'dynamodb:ListStreams', resource: { kind: 'any' } }),
      ].join('\n') + '\n');
      writeFileSync(join(dir, 'b.jsonl'), [
        line({ function: 'sma', action: 'dynamodb:Query', resource: { kind: 'index', table: 't2', index: 'byTransaction' } }),
        // Two local bus names: one bus, one record.
        line({ function: 'stream', action: 'events:PutEvents', resource: { kind: 'bus', name: 'outdial-local' } }),
        line({ function: 'stream', action: 'events:PutEvents', resource: { kind: 'bus', name: 'outdial-other' } }),
      ].join('\n') + '\n');
      writeFileSync(join(dir, 'notes.txt'), 'not a recording');
      const r = readRecordings(dir);
      assert.equal(r.files.length, 2);
      assert.deepEqual(list(r.records), ['sma dynamodb:Query on index byTransaction', 'stream dynamodb:ListStreams on *', 'stream events:PutEvents on bus']);
      assert.deepEqual(r.records[2].resource, { kind: 'bus', name: 'outdial-local' });
      assert.deepEqual(readRecordings(join(dir, 'b.jsonl')).records.length, 2);
      assert.deepEqual(readRecordings(join(dir, 'missing')).records, []);
      writeFileSync(join(dir, 'c.jsonl'), line({ function: 'dialer', action: 'chime:CreateSipMediaApplicationCall', resource: { kind: 'sma' } }) + '\n');
      assert.throws(() => readRecordings(dir), /c\.jsonl:1: function must be one of sma, timers, api, stream/);
      writeFileSync(join(dir, 'c.jsonl'), line({ function: 'sma', action: 'dynamodb:Query', resource: { kind: 'gsi' } }) + '\n');
      assert.throws(() => readRecordings(dir), /c\.jsonl:1: resource\.kind must be table, index, stream, sma, function, bus or any/);
      writeFileSync(join(dir, 'c.jsonl'), line({ function: 'stream', action: 'events:PutEvents', resource: { kind: 'bus' } }) + '\n');
      assert.throws(() => readRecordings(dir), /c\.jsonl:1: a bus resource names its event bus/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
