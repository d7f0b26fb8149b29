// The stack's inputs: context values reach the template, bad ones stop the synth with the
// setting's name, and the table follows whatever schema/table.json says.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { DEFAULTS, formatCallerIdPools, parseCallerIdPools, parseWebhook, readConfig, WEBHOOK_RATE_MAX } from '../lib/config';
import { OutdialStack } from '../lib/outdial-stack';
import { loadSchema, parseSchema, SCHEMA_PATH } from '../lib/table';
import { functionStatements, logicalId, render, synth } from './synth';

const configOf = (context: Record<string, string>) => readConfig(new App({ context }).node);

describe('context', () => {
  test('has defaults for everything', () => {
    assert.deepEqual(configOf({}), {
      phoneNumbers: [],
      callerIdPools: [],
      dispatchShards: DEFAULTS.dispatchShards,
      accountCps: DEFAULTS.accountCps,
      smaReservedConcurrency: DEFAULTS.smaReservedConcurrency,
      inboundMessage: undefined,
      alarmEmail: undefined,
      allowedCountries: undefined,
      voicemailDetection: DEFAULTS.voicemailDetection,
      eventBus: undefined,
      webhook: undefined,
    });
    assert.equal(DEFAULTS.voicemailDetection, true);
  });

  test('reads voicemail detection as true or false, from the command line or cdk.json', () => {
    assert.equal(configOf({ 'outdial:voicemailDetection': 'false' }).voicemailDetection, false);
    assert.equal(configOf({ 'outdial:voicemailDetection': ' true ' }).voicemailDetection, true);
    assert.equal(configOf({ 'outdial:voicemailDetection': '' }).voicemailDetection, true);
    // cdk.json holds JSON: a real boolean.
    const fromJson = (value: boolean) => readConfig(new App({ context: { 'outdial:voicemailDetection': value } }).node).voicemailDetection;
    assert.equal(fromJson(false), false);
    assert.equal(fromJson(true), true);
  });

  test('reads allowed countries as comma-separated ISO 3166 alpha-2 codes', () => {
    assert.deepEqual(configOf({ 'outdial:allowedCountries': ' US, CA ' }).allowedCountries, ['US', 'CA']);
    assert.equal(configOf({ 'outdial:allowedCountries': ' ' }).allowedCountries, undefined);
  });

  test('reads an existing event bus by name', () => {
    assert.equal(configOf({ 'outdial:eventBus': ' shared-outcomes ' }).eventBus, 'shared-outcomes');
    assert.equal(configOf({ 'outdial:eventBus': 'org/outdial.events_1' }).eventBus, 'org/outdial.events_1');
    assert.equal(configOf({ 'outdial:eventBus': '' }).eventBus, undefined);
  });

  test('reads the webhook as an https URL and a Secrets Manager secret\'s name or ARN, both or neither', () => {
    const secretArn = 'arn:aws:secretsmanager:eu-west-2:123456789012:secret:outdial/webhook-key-AbCdEf';
    assert.deepEqual(configOf({ 'outdial:webhookUrl': ' https://hooks.example.com/outdial?team=ops ', 'outdial:webhookSecret': 'outdial/webhook-key' }).webhook,
      { url: 'https://hooks.example.com/outdial?team=ops', secret: 'outdial/webhook-key', rateLimitPerSecond: 50 });
    assert.deepEqual(configOf({ 'outdial:webhookUrl': 'https://hooks.example.com:8443/x', 'outdial:webhookSecret': secretArn }).webhook,
      { url: 'https://hooks.example.com:8443/x', secret: secretArn, rateLimitPerSecond: 50 });
    assert.equal(configOf({ 'outdial:webhookUrl': ' ', 'outdial:webhookSecret': '' }).webhook, undefined);
    assert.equal(configOf({ 'outdial:webhookUrl': ' ', 'outdial:webhookSecret': '', 'outdial:webhookRate': ' ' }).webhook, undefined);
    assert.equal(parseWebhook(undefined, undefined), undefined);
    assert.equal(parseWebhook(undefined, undefined, undefined), undefined);
  });

  test('reads the webhook rate as an integer from 1 to 300, 50 when unset', () => {
    assert.equal(DEFAULTS.webhookRate, 50);
    assert.equal(WEBHOOK_RATE_MAX, 300);
    const webhook = { 'outdial:webhookUrl': 'https://hooks.example.com/outdial', 'outdial:webhookSecret': 'outdial/webhook-key' };
    const rateOf = (rate?: string) => configOf({ ...webhook, ...(rate === undefined ? {} : { 'outdial:webhookRate': rate }) }).webhook?.rateLimitPerSecond;
    assert.equal(rateOf(), 50);
    assert.equal(rateOf(''), 50);
    assert.equal(rateOf(' 250 '), 250);
    assert.equal(rateOf('1'), 1);
    assert.equal(rateOf('300'), 300);
    // cdk.json holds JSON: a real number.
    assert.equal(readConfig(new App({ context: { ...webhook, 'outdial:webhookRate': 120 } }).node).webhook?.rateLimitPerSecond, 120);
    assert.equal(parseWebhook('https://hooks.example.com/outdial', 'outdial/webhook-key', '75')?.rateLimitPerSecond, 75);
  });

  test('reads phone numbers as comma-separated E.164', () => {
    assert.deepEqual(configOf({ 'outdial:phoneNumbers': ' +15555550100, +442071838750 ' }).phoneNumbers, ['+15555550100', '+442071838750']);
  });

  test('reads caller-ID pools as name=numbers, separated by semicolons, in the order given', () => {
    const config = configOf({
      'outdial:phoneNumbers': '+12125550100,+12125550101,+14155550100,+442071838750',
      'outdial:callerIdPools': ' east = +12125550100, +12125550101 ; west_2=+14155550100; ',
    });
    assert.deepEqual(config.callerIdPools, [
      { pool: 'east', numbers: ['+12125550100', '+12125550101'] },
      { pool: 'west_2', numbers: ['+14155550100'] },
    ]);
    // The ordered numbers stay as they were; a number need not be in a pool.
    assert.deepEqual(config.phoneNumbers, ['+12125550100', '+12125550101', '+14155550100', '+442071838750']);
    assert.equal(formatCallerIdPools(config.callerIdPools), 'east=+12125550100,+12125550101;west_2=+14155550100');
    assert.deepEqual(configOf({ 'outdial:callerIdPools': '  ' }).callerIdPools, []);
    assert.deepEqual(parseCallerIdPools(undefined, ['+12125550100']), []);
    assert.deepEqual(parseCallerIdPools(`${'a'.repeat(64)}=+12125550100`, ['+12125550100']), [{ pool: 'a'.repeat(64), numbers: ['+12125550100'] }]);
  });

  const ordered = '+12125550100,+12125550101,+14155550100';
  for (const [value, message] of [
    ['east', /outdial:callerIdPools must be pools of the form name=\+12125550100,\+12125550101 separated by ';'/],
    ['east+12125550100', /must be pools of the form/],
    ['=+12125550100', /a pool name must be 1 to 64 letters, digits, '-' or '_', got ""/],
    ['east coast=+12125550100', /a pool name must be 1 to 64 letters/],
    ['café=+12125550100', /a pool name must be 1 to 64 letters/],
    [`${'a'.repeat(65)}=+12125550100`, /a pool name must be 1 to 64 letters/],
    ['east=', /the pool east has no numbers/],
    ['east=+12125550100;east=+12125550101', /names the pool east twice/],
    ['east=2125550100', /the pool east must list E\.164 numbers \(\+12125550100\), got "2125550100"/],
    ['east=+12125550100=+12125550101', /the pool east must list E\.164 numbers/],
    ['east=+12125550100,+12125550100', /the pool east lists \+12125550100 twice/],
    ['east=+12125550100;west=+14155550100,+12125550100', /\+12125550100 is in two pools, east and west/],
    ['east=+13055550100', /\+13055550100 \(pool east\) is not in outdial:phoneNumbers/],
  ] as const) {
    test(`refuses outdial:callerIdPools=${value.slice(0, 40)}`, () => {
      assert.throws(() => configOf({ 'outdial:phoneNumbers': ordered, 'outdial:callerIdPools': value }), message);
    });
  }

  test('refuses caller-ID pools when no phone numbers are given', () => {
    assert.throws(() => configOf({ 'outdial:callerIdPools': 'east=+12125550100' }), /is not in outdial:phoneNumbers/);
  });

  for (const [key, value, message] of [
    ['outdial:phoneNumbers', '+15555550100,5555550101', /outdial:phoneNumbers must be comma-separated E\.164/],
    ['outdial:phoneNumbers', '+15555550100,+15555550100', /lists a number twice/],
    ['outdial:dispatchShards', '0', /outdial:dispatchShards must be an integer from 1 to 64/],
    ['outdial:dispatchShards', '2.5', /outdial:dispatchShards/],
    ['outdial:accountCps', 'fast', /outdial:accountCps must be a number/],
    ['outdial:accountCps', '0', /outdial:accountCps/],
    ['outdial:smaReservedConcurrency', '-1', /outdial:smaReservedConcurrency/],
    ['outdial:alarmEmail', 'ops', /outdial:alarmEmail must be an email address/],
    ['outdial:inboundMessage', 'x'.repeat(1001), /at most 1000 characters/],
    ['outdial:allowedCountries', 'us,CA', /outdial:allowedCountries must be comma-separated ISO 3166 alpha-2 codes in upper case/],
    ['outdial:allowedCountries', 'USA', /outdial:allowedCountries must be/],
    ['outdial:allowedCountries', 'US,,CA', /outdial:allowedCountries must be/],
    ['outdial:allowedCountries', 'US;CA', /outdial:allowedCountries must be/],
    ['outdial:allowedCountries', 'US,CA,US', /outdial:allowedCountries lists a country twice/],
    ['outdial:voicemailDetection', 'no', /outdial:voicemailDetection must be true or false, got "no"/],
    ['outdial:voicemailDetection', '0', /outdial:voicemailDetection must be true or false, got "0"/],
    ['outdial:voicemailDetection', 'False', /outdial:voicemailDetection must be true or false, got "False"/],
    ['outdial:voicemailDetection', 'off', /outdial:voicemailDetection must be true or false/],
    ['outdial:eventBus', 'arn:aws:events:us-east-1:123456789012:event-bus/shared', /outdial:eventBus must be the name \(not the ARN\) of an existing EventBridge event bus/],
    ['outdial:eventBus', 'shared bus', /outdial:eventBus must be the name/],
    ['outdial:eventBus', 'b'.repeat(257), /outdial:eventBus must be the name/],
    // A secret without a URL is a half-made webhook, not a choice.
    ['outdial:webhookSecret', 'outdial/webhook-key', /outdial:webhookSecret is set but outdial:webhookUrl is not/],
    // So is a rate: it has nothing to limit, and a good value is refused as a bad one is.
    ['outdial:webhookRate', '100', /outdial:webhookRate is set but outdial:webhookUrl is not: the rate is the webhook's; give outdial:webhookUrl and outdial:webhookSecret with it, or leave it out/],
    ['outdial:webhookRate', 'abc', /outdial:webhookRate is set but outdial:webhookUrl is not/],
  ] as const) {
    test(`refuses ${key}=${value.slice(0, 30)}`, () => {
      assert.throws(() => configOf({ [key]: value }), message);
    });
  }
});

describe('the webhook settings', () => {
  const secret = 'outdial/webhook-key';
  for (const [url, withSecret, message] of [
    ['http://hooks.example.com/outdial', secret, /outdial:webhookUrl must be an https URL: EventBridge API destinations call https endpoints only, got "http:\/\/hooks\.example\.com\/outdial"/],
    ['hooks.example.com/outdial', secret, /outdial:webhookUrl must be an https URL \(https:\/\/hooks\.example\.com\/outdial\), got "hooks\.example\.com\/outdial"/],
    ['ftp://hooks.example.com/', secret, /outdial:webhookUrl must be an https URL/],
    ['https://user:key@hooks.example.com/outdial', secret, /outdial:webhookUrl must not hold a user name or password/],
    [`https://hooks.example.com/${'x'.repeat(2048)}`, secret, /outdial:webhookUrl must be at most 2048 characters/],
    ['https://hooks.example.com/outdial', undefined, /outdial:webhookUrl needs outdial:webhookSecret: the name or ARN of the Secrets Manager secret/],
    ['https://hooks.example.com/outdial', 'my secret', /outdial:webhookSecret must be the name or ARN of a Secrets Manager secret/],
    ['https://hooks.example.com/outdial', '{{resolve:secretsmanager:x}}', /outdial:webhookSecret must be the name or ARN/],
    ['https://hooks.example.com/outdial', 'arn:aws:secretsmanager:us-east-1:123:secret:x', /outdial:webhookSecret must be the name or ARN/],
  ] as const) {
    test(`refuses outdial:webhookUrl=${url.slice(0, 40)} with outdial:webhookSecret=${withSecret ?? '(unset)'}`, () => {
      assert.throws(() => configOf({ 'outdial:webhookUrl': url, ...(withSecret === undefined ? {} : { 'outdial:webhookSecret': withSecret }) }), message);
    });
  }

  for (const rate of ['0', '301', '2.5', 'abc', '-5', '1000', '50/s', 'true']) {
    test(`refuses outdial:webhookRate=${rate}`, () => {
      // The whole message: the setting, the range and the value as given.
      const message = { message: `outdial:webhookRate must be an integer from 1 to 300, got ${JSON.stringify(rate)}` };
      assert.throws(() => configOf({ 'outdial:webhookUrl': 'https://hooks.example.com/outdial', 'outdial:webhookSecret': secret, 'outdial:webhookRate': rate }), message);
    });
  }

  test('a bad webhook stops the synth with the setting\'s name', () => {
    assert.throws(() => synth({ 'outdial:webhookUrl': 'http://hooks.example.com/outdial', 'outdial:webhookSecret': secret }), /outdial:webhookUrl must be an https URL/);
    assert.throws(() => synth({ 'outdial:webhookUrl': 'https://hooks.example.com/outdial' }), /outdial:webhookUrl needs outdial:webhookSecret/);
    assert.throws(() => synth({ 'outdial:webhookUrl': 'https://hooks.example.com/outdial', 'outdial:webhookSecret': secret, 'outdial:webhookRate': '301' }),
      /outdial:webhookRate must be an integer from 1 to 300, got "301"/);
    assert.throws(() => synth({ 'outdial:webhookRate': '100' }), /outdial:webhookRate is set but outdial:webhookUrl is not/);
  });
});

describe('a configured stack', () => {
  const s = synth({
    'outdial:phoneNumbers': '+15555550100,+15555550101',
    'outdial:callerIdPools': 'reminders=+15555550100',
    'outdial:dispatchShards': '8',
    'outdial:accountCps': '20',
    'outdial:smaReservedConcurrency': '0',
    'outdial:alarmEmail': 'ops@example.com',
    'outdial:inboundMessage': 'This number places reminder calls for Example Clinic.',
    'outdial:allowedCountries': 'US,CA,GB',
  });
  const fn = (prefix: string) => s.json.Resources[logicalId(s, 'AWS::Lambda::Function', prefix)].Properties;

  test('passes the shard count to every function that dispatches or reads due work', () => {
    for (const prefix of ['SmaFunction', 'TimersFunction', 'ApiFunction']) {
      assert.equal(fn(prefix).Environment.Variables.OUTDIAL_DISPATCH_SHARDS, '8', prefix);
    }
  });

  test('passes the account rate to the dispatcher', () => {
    assert.equal(fn('TimersFunction').Environment.Variables.OUTDIAL_ACCOUNT_CPS, '20');
  });

  test('passes the call-back message to the SMA function', () => {
    assert.equal(fn('SmaFunction').Environment.Variables.OUTDIAL_INBOUND_MESSAGE, 'This number places reminder calls for Example Clinic.');
  });

  test('passes the allowed countries to the API function only', () => {
    assert.equal(fn('ApiFunction').Environment.Variables.OUTDIAL_ALLOWED_COUNTRIES, 'US,CA,GB');
    for (const prefix of ['SmaFunction', 'TimersFunction', 'StreamFunction']) {
      assert.equal(fn(prefix).Environment.Variables.OUTDIAL_ALLOWED_COUNTRIES, undefined, prefix);
    }
  });

  test('with reserved concurrency 0 reserves none (it never disables the SMA function)', () => {
    assert.equal(fn('SmaFunction').ReservedConcurrentExecutions, undefined);
    // and says so to checkov (CKV_AWS_115: a function without a concurrency limit).
    const skipped = s.json.Resources[logicalId(s, 'AWS::Lambda::Function', 'SmaFunction')] as any;
    assert.ok(skipped.Metadata.checkov.skip.some((k: { id: string }) => k.id === 'CKV_AWS_115'));
  });

  test('lists the phone numbers in the outputs', () => {
    assert.equal(s.json.Outputs.PhoneNumbers.Value, '+15555550100,+15555550101');
  });

  test('lists the caller-ID pools in the outputs, for registering with PUT /numbers/{e164}', () => {
    assert.equal(s.json.Outputs.CallerIdPools.Value, 'reminders=+15555550100');
    assert.match(s.json.Outputs.CallerIdPools.Description as string, /PUT \/numbers\/\{e164\}/);
  });

  test('subscribes the alarm email to the alarm topic', () => {
    s.template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
      TopicArn: { Ref: logicalId(s, 'AWS::SNS::Topic', 'AlarmTopic') },
    });
  });
});

describe('a stack without voicemail detection', () => {
  const s = synth({ 'outdial:voicemailDetection': 'false' });
  const R = s.json.Resources;

  test('has no greetings bucket and no bucket policy', () => {
    assert.deepEqual(Object.values(R).filter((r) => r.Type.startsWith('AWS::S3::')), []);
    assert.equal(s.json.Outputs.GreetingsBucketName, undefined);
  });

  test('gives no function OUTDIAL_GREETINGS_BUCKET, so the SMA handler runs no detection', () => {
    for (const prefix of ['SmaFunction', 'TimersFunction', 'ApiFunction', 'StreamFunction']) {
      assert.equal(R[logicalId(s, 'AWS::Lambda::Function', prefix)].Properties.Environment.Variables.OUTDIAL_GREETINGS_BUCKET, undefined, prefix);
    }
  });

  test('acknowledges no finding of the bucket it does not build', () => {
    assert.ok(!JSON.stringify(s.json).includes('CKV_AWS_18'));
  });
});

test('a bad outdial:voicemailDetection stops the synth with the setting\'s name', () => {
  assert.throws(() => synth({ 'outdial:voicemailDetection': 'yes' }), /outdial:voicemailDetection must be true or false, got "yes"/);
});

describe('schema/table.json', () => {
  const committed = readFileSync(SCHEMA_PATH, 'utf8');

  test('parses', () => {
    assert.equal(loadSchema().globalSecondaryIndexes.length, JSON.parse(committed).globalSecondaryIndexes.length);
  });

  test('may not carry a setting the stack does not build', () => {
    const withExtra = { ...JSON.parse(committed), localSecondaryIndexes: [] };
    assert.throws(() => parseSchema(JSON.stringify(withExtra)), /settings the stack does not build: localSecondaryIndexes/);
    const gsi = JSON.parse(committed);
    gsi.globalSecondaryIndexes[0].nonKeyAttributes = ['x'];
    assert.throws(() => parseSchema(JSON.stringify(gsi)), /globalSecondaryIndexes\[0\] has settings the stack does not build: nonKeyAttributes/);
  });

  test('may not turn off point-in-time recovery or deletion protection', () => {
    assert.throws(() => parseSchema(JSON.stringify({ ...JSON.parse(committed), pointInTimeRecovery: false })), /pointInTimeRecovery must be true/);
    assert.throws(() => parseSchema(JSON.stringify({ ...JSON.parse(committed), deletionProtection: false })), /deletionProtection must be true/);
  });

  test('decides the indexes of the table; a Query permission names the indexes its function queries', () => {
    const raw = JSON.parse(committed);
    raw.globalSecondaryIndexes.push({ name: 'byFrom', partitionKey: { name: 'from', type: 'S' }, projection: 'KEYS_ONLY' });
    const app = new App();
    app.node.setContext('aws:cdk:bundling-stacks', []);
    const stack = new OutdialStack(app, 'Changed', { config: configOf({}), schema: parseSchema(JSON.stringify(raw)) });
    const template = Template.fromStack(stack);
    const table = Object.values(template.findResources('AWS::DynamoDB::Table'))[0];
    assert.ok(table.Properties.GlobalSecondaryIndexes.some((g: { IndexName: string }) => g.IndexName === 'byFrom'));
    // A new index is nobody's to query until a function's grant names it.
    const s = { app, stack, template, json: template.toJSON() as any };
    for (const fn of ['SmaFunction', 'TimersFunction', 'ApiFunction', 'StreamFunction']) {
      const queried = functionStatements(s, fn).filter((x) => x.actions.includes('dynamodb:Query')).flatMap((x) => x.resources);
      assert.ok(!queried.some((r) => render(r).endsWith('/index/byFrom')), fn);
    }
  });

  test('refuses a schema without an index a function queries', () => {
    const raw = JSON.parse(committed);
    raw.globalSecondaryIndexes = raw.globalSecondaryIndexes.filter((i: { name: string }) => i.name !== 'byTransaction');
    const app = new App();
    app.node.setContext('aws:cdk:bundling-stacks', []);
    assert.throws(() => new OutdialStack(app, 'Changed', { config: configOf({}), schema: parseSchema(JSON.stringify(raw)) }),
      /schema\/table\.json has no index byTransaction/);
  });
});
