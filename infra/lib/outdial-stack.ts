// The whole of outdial in one stack: the table, the four Rust functions, the HTTP API, the SIP
// media application, the dispatcher's schedule, the stream consumer, the bucket the PSTN audio
// service records greetings into, the event bus outcome events go to (and the webhook that
// forwards them, when configured), and what an operator watches. Each function's role lists
// exactly what its binary calls (docs/deploy.md has the table); nothing gets a managed policy
// or a `*` where a resource can be named.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ArnFormat, CfnOutput, type CfnResource, Duration, RemovalPolicy, SecretValue, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as chime from 'aws-cdk-lib/aws-chime';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { RustFunction } from 'cargo-lambda-cdk';
import type { Construct } from 'constructs';
import { formatCallerIdPools, type OutdialConfig } from './config';
import { Operations } from './operations';
import { buildTable, loadSchema, type TableSchema } from './table';

/** The Cargo workspace: every function is one of its binaries. */
export const WORKSPACE_MANIFEST = join(__dirname, '..', '..', 'Cargo.toml');

/**
 * Each function's memory, timeout and reserved concurrency: `infra/functions.json`, with why
 * each value is what it is. One file, because the Rust tests read it too (`include_str!`) and
 * check each function's longest path against its `timeoutSeconds`.
 */
export const FUNCTIONS_PATH = join(__dirname, '..', 'functions.json');

/** The four functions, as `functions.json` names them. */
export const FUNCTION_NAMES = ['sma', 'timers', 'api', 'stream'] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

/** One function's sizing, as `functions.json` holds it. */
export interface FunctionSizing {
  readonly memoryMb: number;
  readonly timeoutSeconds: number;
  readonly reservedConcurrency?: number;
  /** Why: the reasoning behind the numbers, for whoever changes them. */
  readonly why: string;
}

/**
 * Reads and checks `functions.json`: exactly the four functions, each with whole numbers in
 * Lambda's ranges and a reason. Throws naming the file and the field.
 */
export function parseFunctions(text: string): Record<FunctionName, FunctionSizing> {
  const fail = (what: string): never => { throw new Error(`infra/functions.json: ${what}`); };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return fail(`not JSON (${(e as Error).message})`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return fail('must be an object');
  const names = Object.keys(raw).sort();
  if (JSON.stringify(names) !== JSON.stringify([...FUNCTION_NAMES].sort())) {
    fail(`must name exactly ${FUNCTION_NAMES.join(', ')}, names ${names.join(', ') || 'none'}`);
  }
  const whole = (v: unknown, what: string, min: number, max: number): number =>
    Number.isInteger(v) && (v as number) >= min && (v as number) <= max ? v as number : fail(`${what} must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  const entries = FUNCTION_NAMES.map((name): [FunctionName, FunctionSizing] => {
    const f = (raw as Record<string, unknown>)[name] as Record<string, unknown>;
    if (f === null || typeof f !== 'object') fail(`${name} must be an object`);
    // Only the dispatcher's reservation is fixed here; the SMA's is `outdial:smaReservedConcurrency`.
    const reserved = name === 'timers';
    const fields = ['memoryMb', 'timeoutSeconds', 'why', ...(reserved ? ['reservedConcurrency'] : [])];
    const extra = Object.keys(f).filter((k) => !fields.includes(k));
    if (extra.length > 0) fail(`${name} has fields the stack does not use: ${extra.join(', ')}`);
    if (typeof f.why !== 'string' || f.why.trim() === '') fail(`${name}.why must say why`);
    return [name, {
      // Lambda's limits: 128 MB to 10,240 MB, 1 s to 900 s.
      memoryMb: whole(f.memoryMb, `${name}.memoryMb`, 128, 10240),
      timeoutSeconds: whole(f.timeoutSeconds, `${name}.timeoutSeconds`, 1, 900),
      ...(reserved ? { reservedConcurrency: whole(f.reservedConcurrency, `${name}.reservedConcurrency`, 1, 10000) } : {}),
      why: f.why as string,
    }];
  });
  return Object.fromEntries(entries) as Record<FunctionName, FunctionSizing>;
}

const FUNCTIONS = parseFunctions(readFileSync(FUNCTIONS_PATH, 'utf8'));
const sizing = (f: FunctionSizing) => ({ memoryMb: f.memoryMb, timeout: Duration.seconds(f.timeoutSeconds) });

/**
 * Sizes and limits, from `functions.json` (whose `why`s explain each). Lambda gives CPU in
 * proportion to memory (a full vCPU at 1,769 MB), so memory here buys CPU, not room: every
 * binary runs in a few tens of MB.
 */
export const SIZING = {
  sma: sizing(FUNCTIONS.sma),
  timers: {
    ...sizing(FUNCTIONS.timers),
    reservedConcurrency: FUNCTIONS.timers.reservedConcurrency!, // required by parseFunctions
  },
  api: sizing(FUNCTIONS.api),
  stream: sizing(FUNCTIONS.stream),
} as const;

/** The stream consumer's event source mapping. */
export const STREAM_MAPPING = {
  batchSize: 100,
  /** Records of one shard must be applied in order for the exactly-once counters. */
  parallelizationFactor: 1,
  /** A poison record is retried this often (bisected down to itself) before it is set aside in
   * the failure queue and the shard moves on. */
  retryAttempts: 10,
  /** Well inside the stream's 24 h retention: a record set aside can still be read again from
   * the stream for hours after the failure-queue alarm. */
  maxRecordAge: Duration.hours(6),
  /** The handler keeps its exactly-once counters with a watermark per stream shard, and Lambda
   * names the shard (`shardId`) only in tumbling-window events: without a window the handler
   * refuses every batch. It answers each invocation with `{"batchItemFailures": [...],
   * "state": {}}` (the TimeWindowEventResponse shape, which carries partial batch failures) and
   * keeps no state in the window. The window does not hold records back: each batch is still
   * delivered as it arrives, and the window's end adds one final invocation per shard, possibly
   * empty. 900 s, the longest Lambda allows, makes those final invocations rarest. */
  tumblingWindow: Duration.seconds(900),
} as const;

/** How the timers function is started. Both the schedule and the API invoke it asynchronously. */
export const DISPATCHER = {
  /** What the schedule sends. The function tells scheduled runs, which wait for the previous
   * run's leases, from the API's on-demand runs, which send `{"source":"outdial.api"}` and do
   * not wait. */
  scheduleInput: { source: 'outdial.schedule' },
  /** A start queued longer than this (throttled at the reserved concurrency) is dropped, and a
   * failed run is not retried: the next scheduled run does the same work within a minute. 60 s
   * is the least Lambda and EventBridge Scheduler accept. */
  maxEventAge: Duration.seconds(60),
} as const;

/**
 * The greetings bucket: where the PSTN audio service puts what it records of a callee's first
 * seconds when the SMA function answers `CALL_ANSWERED` with a `RecordAudio` (answering-machine
 * detection). Nothing reads the recordings back.
 */
export const GREETINGS = {
  /** The SMA handler's `RecordingDestination.Prefix` is `greetings/<campaign id>/`: the service
   * may write under this prefix and nowhere else. */
  prefix: 'greetings/',
  /** Every object expires this long after it is written, and an upload left unfinished is
   * aborted as soon. */
  expiration: Duration.days(1),
  /** The service principal that writes them, and the actions the RecordAudio page of the
   * Amazon Chime SDK guide requires of the bucket policy
   * (https://docs.aws.amazon.com/chime-sdk/latest/dg/record-audio.html). */
  principal: 'voiceconnector.chime.amazonaws.com',
  actions: ['s3:PutObject', 's3:PutObjectAcl'],
} as const;

/**
 * Outcome events: what the stream function publishes to the event bus (`PutEvents`), and how
 * the webhook forwards them. docs/events.md has the events' schema; docs/deploy.md ("Outcome
 * events and the webhook") the receiver's side.
 */
export const OUTCOMES = {
  /** The `Source` of every event the stream function puts. */
  source: 'outdial',
  /** Their `DetailType`s: the webhook rule forwards these and nothing else. */
  detailTypes: ['Call Placed', 'Call Answered', 'Call Ended', 'Campaign Completed'],
  /** The stack's own bus, when `outdial:eventBus` names none: `<stack name>-outcomes`. */
  busNameSuffix: '-outcomes',
  /** The header the webhook's key travels in (an EventBridge connection, API-key authorization). */
  keyHeader: 'x-outdial-key',
  /** EventBridge's most: a failed delivery is retried (with back-off) for up to 185 attempts
   * or 24 hours, whichever comes first, then set aside in the webhook's dead-letter queue. */
  retryAttempts: 185,
  maxEventAge: Duration.hours(24),
  /** How long the dead-letter queue keeps an event: SQS's longest. */
  failureRetention: Duration.days(14),
} as const;

const LOG_RETENTION = logs.RetentionDays.ONE_MONTH;

export interface OutdialStackProps extends StackProps {
  readonly config: OutdialConfig;
  /** The table's definition; the committed `schema/table.json` when not given. */
  readonly schema?: TableSchema;
}

interface FunctionSpec {
  readonly binary: string;
  readonly description: string;
  readonly memoryMb: number;
  readonly timeout: Duration;
  readonly reservedConcurrency?: number;
  readonly environment: Record<string, string>;
}

export class OutdialStack extends Stack {
  readonly key: kms.Key;
  readonly table: dynamodb.Table;
  readonly apiFunction: lambda.Function;
  readonly smaFunction: lambda.Function;
  readonly timersFunction: lambda.Function;
  readonly streamFunction: lambda.Function;
  readonly sipMediaApplication: chime.CfnSipMediaApplication;
  readonly httpApi: apigw.HttpApi;
  readonly streamFailures: sqs.Queue;
  /** The bus the stream function publishes outcome events to: the stack's own, or the one
   * `outdial:eventBus` names. */
  readonly eventBus: events.IEventBus;
  /** The webhook's rule and dead-letter queue: only with `outdial:webhookUrl`. */
  readonly webhookRule?: events.Rule;
  readonly webhookConnection?: events.Connection;
  readonly webhookFailures?: sqs.Queue;
  readonly alarmTopic: sns.Topic;
  /** Absent with `outdial:voicemailDetection=false`. */
  readonly greetingsBucket?: s3.Bucket;

  constructor(scope: Construct, id: string, props: OutdialStackProps) {
    super(scope, id, props);
    const { config } = props;
    const schema = props.schema ?? loadSchema();

    // ---- Data -----------------------------------------------------------------------------
    // Retained with the table: a retained table is unreadable without its key.
    this.key = new kms.Key(this, 'Key', {
      description: 'outdial: the table (items, stream, backups), the alarm topic and the log groups',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // CloudWatch Logs encrypts the stack's log groups (the functions' and the API's access
    // log) with the key. Only for log groups of this account and Region: the encryption
    // context names the log group. Their ARNs exist only once they are created, which needs
    // this statement first, hence `log-group:*`.
    this.key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'CloudWatchLogsEncryptThisAccountsLogGroups',
      principals: [new iam.ServicePrincipal(`logs.${this.region}.amazonaws.com`)],
      actions: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncryptFrom', 'kms:ReEncryptTo', 'kms:GenerateDataKey', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:DescribeKey'],
      resources: ['*'],
      conditions: {
        ArnLike: {
          'kms:EncryptionContext:aws:logs:arn': this.formatArn({
            service: 'logs', resource: 'log-group', resourceName: '*', arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        },
      },
    }));
    this.table = buildTable(this, 'Table', schema, this.key);
    const tableArn = this.table.tableArn;
    // One index of the schema by name: a query grant names the indexes its function queries.
    const indexArn = (name: string) => {
      if (!schema.globalSecondaryIndexes.some((i) => i.name === name)) throw new Error(`schema/table.json has no index ${name}`);
      return `${tableArn}/index/${name}`;
    };

    // ---- Greetings ------------------------------------------------------------------------
    // The callee's first seconds, recorded by the PSTN audio service itself (not by a function
    // of the stack) when the SMA answers CALL_ANSWERED with a RecordAudio. The recording is a
    // side effect of listening for a machine: nothing of outdial reads it, so every object
    // expires after a day, and no role of the stack has any permission on the bucket; its own
    // policy lets the service write under `greetings/` and nothing else. Not built with
    // `outdial:voicemailDetection=false`: the SMA function then has no OUTDIAL_GREETINGS_BUCKET
    // and runs no detection at all.
    //
    // - SSE-S3, not the stack's KMS key. The RecordAudio page asks only for s3:PutObject and
    //   s3:PutObjectAcl for the service, and no page on the PSTN audio service says it can
    //   write to an SSE-KMS bucket or names a key permission for it (the Chime SDK's documented
    //   SSE-KMS support is for media capture pipelines, which write through a role the
    //   customer passes). A key the service cannot use would fail every recording.
    // - Object ownership: bucket owner enforced, ACLs off. It is S3's default for new buckets,
    //   so it is what the RecordAudio example policy is normally applied to; S3 still accepts a
    //   PUT that sets no ACL or `bucket-owner-full-control`, and refuses only other ACLs.
    // - Removal: DESTROY, without autoDeleteObjects, which would add a Node.js custom resource
    //   function and its role to a stack whose functions are the four Rust binaries. Objects
    //   expire a day after they are written (S3 rounds the moment up to the next midnight UTC
    //   and deletes in the background), so within two days or so of the last call the bucket
    //   is empty and CloudFormation can delete it; RETAIN would only leave an empty bucket
    //   behind (the table and its key are retained because they hold data; this holds none
    //   worth keeping).
    // - No server access log and no versioning: acknowledged below, with why.
    if (config.voicemailDetection) {
      this.greetingsBucket = new s3.Bucket(this, 'GreetingsBucket', {
        encryption: s3.BucketEncryption.S3_MANAGED,
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        enforceSSL: true,
        objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        versioned: false,
        lifecycleRules: [{
          id: 'ExpireGreetings',
          expiration: GREETINGS.expiration,
          abortIncompleteMultipartUploadAfter: GREETINGS.expiration,
        }],
        removalPolicy: RemovalPolicy.DESTROY,
      });
      Validations.of(this.greetingsBucket).acknowledge({
        id: 'AwsSolutions-S1',
        reason: 'No server access log: only the PSTN audio service may write here (the bucket policy names it, this account and this SMA), no role of the stack may read, and each object expires after a day. A log bucket would outlive every recording it logs, and would need a bucket of its own.',
      });
      acknowledgeLint(this.greetingsBucket, {
        checkov: [
          { id: 'CKV_AWS_18', comment: 'No server access log: only the PSTN audio service may write here (the bucket policy names it, this account and this SMA), no role of the stack may read, and each object expires after a day.' },
          { id: 'CKV_AWS_21', comment: 'No versioning: each recording is written once under a key of its own and never overwritten, and every object expires after a day; versions would only keep deleted greetings longer.' },
        ],
      });
    }

    // ---- Outcome events -------------------------------------------------------------------
    // The stream function puts an event on this bus for each call placed, answered and ended,
    // and for each campaign completed. By default the stack creates the bus (AWS-owned
    // encryption, no resource policy: only principals of this account that IAM allows can put
    // events on it); `outdial:eventBus` names an existing bus instead (another stack's, a
    // shared one), which the stack neither creates nor changes: it only grants the stream
    // function PutEvents on it and, with a webhook, puts its rule there.
    this.eventBus = config.eventBus === undefined
      ? new events.EventBus(this, 'EventBus', {
        eventBusName: `${this.stackName}${OUTCOMES.busNameSuffix}`,
        description: 'outdial: outcome events (calls placed, answered, ended; campaigns completed)',
      })
      : events.EventBus.fromEventBusName(this, 'EventBus', config.eventBus);

    // ---- Functions ------------------------------------------------------------------------
    const shards = String(config.dispatchShards);
    const tableName = this.table.tableName;

    this.smaFunction = this.rustFunction('SmaFunction', {
      binary: 'outdial-sma',
      description: 'outdial: answers every SIP media application event with an action list',
      ...SIZING.sma,
      reservedConcurrency: config.smaReservedConcurrency > 0 ? config.smaReservedConcurrency : undefined,
      environment: {
        OUTDIAL_TABLE_NAME: tableName,
        OUTDIAL_DISPATCH_SHARDS: shards,
        ...(config.inboundMessage === undefined ? {} : { OUTDIAL_INBOUND_MESSAGE: config.inboundMessage }),
        // Only the name: the handler puts it in RecordAudio's RecordingDestination, and the
        // service writes there. The function's role has no S3 permission.
        ...(this.greetingsBucket === undefined ? {} : { OUTDIAL_GREETINGS_BUCKET: this.greetingsBucket.bucketName }),
      },
    });
    acknowledgeLint(this.smaFunction, {
      checkov: [
        { id: 'CKV_AWS_116', comment: 'Invoked synchronously by the PSTN audio service, which waits for its answer: a dead-letter queue catches only asynchronous invocations.' },
        ...(config.smaReservedConcurrency > 0 ? [] : [{ id: 'CKV_AWS_115', comment: 'Reservation turned off with outdial:smaReservedConcurrency=0, for trying the stack in an account whose concurrency quota cannot spare it (docs/deploy.md); not for real campaigns.' }]),
      ],
    });

    // The SIP media application, with the SMA function as its one endpoint, and the Lambda
    // permissions that let the PSTN audio service (`voiceconnector.chime.amazonaws.com`) invoke
    // that function. docs/deploy.md ("The SMA's invoke permission") has the sources.
    //
    // - Creating the SMA touches the function's resource policy: the create and update handlers
    //   of AWS::Chime::SipMediaApplication need `lambda:GetPolicy` and `lambda:AddPermission`
    //   (the type's CloudFormation registry schema, `handlers.create.permissions`), so the
    //   service reads the policy and can add a statement of its own. Its conditions are not
    //   documented, and CloudFormation would neither scope nor remove it. So a statement of the
    //   stack's exists first, and the SMA depends on it.
    // - The SMA's id, so its ARN, exists only once the SMA does: a statement naming it must come
    //   after the SMA (it references the id), or the two would wait for each other.
    // - AWS documents two forms of `aws:SourceArn` for this principal acting for an SMA:
    //   `arn:aws:chime:<region>:<account>:sma/<id>` (PlayAudio's S3 bucket policy) and
    //   `arn:aws:voiceconnector:<region>:<account>:sma/<id>` (StartBotConversation's Lex
    //   policy), none for invoking Lambda. Lambda's SourceArn cannot wildcard the service, so
    //   each statement comes in both forms: a form the service does not present would refuse
    //   every call.
    //
    // Hence, with `aws:SourceAccount` on all of them:
    //   SmaInvokeFromThisAccount[VoiceConnectorArn]  before the SMA: `...:sma/*`, the SMAs of
    //       this account in this Region, as tight as anything can be before the id exists.
    //   SmaInvokePermission[VoiceConnectorArn]       after the SMA: this SMA's ARN exactly.
    // Lambda allows what any statement allows, so while the first pair exists it is the
    // effective scope; it can go once the SMA exists (docs/deploy.md says how to check).
    const smaPermissionBase = {
      action: 'lambda:InvokeFunction',
      functionName: this.smaFunction.functionArn,
      principal: 'voiceconnector.chime.amazonaws.com',
      sourceAccount: this.account,
    };
    const smaArnOf = (service: string, resourceName: string) => this.formatArn({
      service,
      resource: 'sma',
      resourceName,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
    const SMA_ARN_FORMS = [['chime', ''], ['voiceconnector', 'VoiceConnectorArn']] as const;
    const beforeSma = SMA_ARN_FORMS.map(([service, suffix]) => new lambda.CfnPermission(this, `SmaInvokeFromThisAccount${suffix}`, {
      ...smaPermissionBase,
      sourceArn: smaArnOf(service, '*'),
    }));
    this.sipMediaApplication = new chime.CfnSipMediaApplication(this, 'SipMediaApplication', {
      name: this.stackName,
      awsRegion: this.region,
      endpoints: [{ lambdaArn: this.smaFunction.functionArn }],
    });
    for (const p of beforeSma) this.sipMediaApplication.node.addDependency(p);
    const smaId = this.sipMediaApplication.attrSipMediaApplicationId;
    // The SMA's ARN as IAM and the Chime SDK name it (the roles' Chime grants use it too).
    const smaArn = smaArnOf('chime', smaId);
    for (const [service, suffix] of SMA_ARN_FORMS) {
      new lambda.CfnPermission(this, `SmaInvokePermission${suffix}`, { ...smaPermissionBase, sourceArn: smaArnOf(service, smaId) });
    }

    // The PSTN audio service writes greetings for this SMA, into `greetings/` only: the two
    // actions the RecordAudio page requires, with `aws:SourceAccount` and `aws:SourceArn`.
    // The RecordAudio page's example has no condition; the PlayAudio page, which says the
    // service reads and writes the bucket on the SMA's behalf, narrows the same principal with
    // the `chime` form of the SMA's ARN. As for the invoke permissions, both forms are listed (StringEquals with a
    // list matches either): a form the service does not present would refuse every recording.
    // The SMA's id exists only once the SMA does, so this statement, like the exact-ARN invoke
    // permissions, comes after it; nothing records before a call is answered.
    if (this.greetingsBucket !== undefined) {
      this.greetingsBucket.addToResourcePolicy(new iam.PolicyStatement({
        sid: 'PstnAudioWritesGreetings',
        principals: [new iam.ServicePrincipal(GREETINGS.principal)],
        actions: [...GREETINGS.actions],
        resources: [this.greetingsBucket.arnForObjects(`${GREETINGS.prefix}*`)],
        conditions: {
          StringEquals: {
            'aws:SourceAccount': this.account,
            'aws:SourceArn': SMA_ARN_FORMS.map(([service]) => smaArnOf(service, smaId)),
          },
        },
      }));
    }

    this.timersFunction = this.rustFunction('TimersFunction', {
      binary: 'outdial-timers',
      description: 'outdial: dials due calls at the paced rate, retries, watchdogs',
      ...SIZING.timers,
      environment: {
        OUTDIAL_TABLE_NAME: tableName,
        OUTDIAL_DISPATCH_SHARDS: shards,
        OUTDIAL_SMA_ID: smaId,
        OUTDIAL_ACCOUNT_CPS: String(config.accountCps),
      },
    });
    // Both the schedule and the API invoke asynchronously. A failed run is not retried and a
    // queued one expires after a minute: the next scheduled run does the same work.
    this.timersFunction.configureAsyncInvoke({ retryAttempts: 0, maxEventAge: DISPATCHER.maxEventAge });
    acknowledgeLint(this.timersFunction, {
      checkov: [{ id: 'CKV_AWS_116', comment: 'A failed or expired run is dropped on purpose: the next scheduled run, within a minute, does the same work from the table, so a dead-letter queue would hold nothing to replay. The Errors and DispatcherNotRunning alarms report failures.' }],
    });

    this.apiFunction = this.rustFunction('ApiFunction', {
      binary: 'outdial-api',
      description: 'outdial: the HTTP API (campaigns, calls, do-not-call list)',
      ...SIZING.api,
      environment: {
        OUTDIAL_TABLE_NAME: tableName,
        OUTDIAL_DISPATCH_SHARDS: shards,
        OUTDIAL_SMA_ID: smaId,
        OUTDIAL_TIMERS_FUNCTION: this.timersFunction.functionName,
        // Unset, each request may call its campaign's region and the region it names.
        ...(config.allowedCountries === undefined ? {} : { OUTDIAL_ALLOWED_COUNTRIES: config.allowedCountries.join(',') }),
      },
    });
    acknowledgeLint(this.apiFunction, {
      checkov: [
        { id: 'CKV_AWS_116', comment: 'Invoked synchronously by the HTTP API, which answers the caller with the error: a dead-letter queue catches only asynchronous invocations.' },
        { id: 'CKV_AWS_115', comment: 'No reservation on purpose (docs/deploy.md, Sizing): the HTTP API stage throttles requests (100 per second, burst 200), and a reservation would take concurrency from the SMA function and the rest of the account.' },
      ],
    });

    this.streamFunction = this.rustFunction('StreamFunction', {
      binary: 'outdial-stream',
      description: 'outdial: campaign counters and call event history from the table stream',
      ...SIZING.stream,
      environment: {
        OUTDIAL_TABLE_NAME: tableName,
        // The name, as PutEvents takes it. Unset, the function publishes nothing; the stack
        // always sets it.
        OUTDIAL_EVENT_BUS: this.eventBus.eventBusName,
      },
    });
    acknowledgeLint(this.streamFunction, {
      checkov: [
        { id: 'CKV_AWS_116', comment: 'Invoked only by its DynamoDB stream mapping, whose own on-failure destination (the StreamFailures queue) takes batches that failed every retry: a function dead-letter queue catches only asynchronous invocations.' },
        { id: 'CKV_AWS_115', comment: 'Its concurrency is bounded by the stream mapping: one batch at a time per stream shard (parallelization factor 1).' },
      ],
    });

    // ---- What each function may call ------------------------------------------------------
    // test/permissions.test.ts checks these against every AWS operation the end-to-end suites
    // record, both ways: each recorded operation is allowed, each grant is used.
    const allow = (fn: lambda.Function, sid: string, actions: string[], resources: string[], conditions?: Record<string, unknown>) =>
      fn.addToRolePolicy(new iam.PolicyStatement({ sid, actions, resources, conditions }));
    // DynamoDB reads the table's key on the caller's behalf; the condition keeps the key usable
    // only through DynamoDB.
    const tableKey = (fn: lambda.Function) =>
      allow(fn, 'TableKeyThroughDynamoDB', ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey'], [this.key.keyArn], {
        StringEquals: { 'kms:ViaService': `dynamodb.${this.region}.amazonaws.com` },
      });

    // SMA: the hot path's one conditional write per event, plus reads; an event that arrives
    // without its attributes finds its call by transaction id (the keys-only `byTransaction`
    // index). No Chime permission.
    allow(this.smaFunction, 'CallItems', ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'], [tableArn]);
    allow(this.smaFunction, 'CallByTransaction', ['dynamodb:Query'], [indexArn('byTransaction')]);
    tableKey(this.smaFunction);

    // Timers: claims and leases (transactions are authorized by their Put/Update/Delete parts),
    // due work from the `due` index, a campaign's calls by status (sweeps, parked calls) from
    // `byCampaign`, and the two Voice API calls on this SMA only.
    allow(this.timersFunction, 'TableItems',
      ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'], [tableArn]);
    allow(this.timersFunction, 'TableQueries', ['dynamodb:Query'], [indexArn('due'), indexArn('byCampaign')]);
    // And the base table, for two kinds of partition: a watchdog reads the hang-ups the SMA
    // stored as orphans of a transaction (`PK = ORPHAN#<transaction id>`, the store's
    // `orphans`) to learn how a call the SMA no longer knew ended, and a dial from a caller-ID
    // pool reads the pool (`PK = NUMBERS`). A `dynamodb:LeadingKeys` condition could narrow
    // it further, but the permission test cannot verify a conditional grant (a recording
    // carries no key), so the grant is Query on the table ARN.
    allow(this.timersFunction, 'OrphansByTransaction', ['dynamodb:Query'], [tableArn]);
    tableKey(this.timersFunction);
    allow(this.timersFunction, 'DialAndHangUpOnThisSma',
      ['chime:CreateSipMediaApplicationCall', 'chime:UpdateSipMediaApplicationCall'], [smaArn]);

    // API: campaigns in bulk, calls, the do-not-call list; hangs up through this SMA; starts a
    // dispatcher at once by invoking the timers function (that function only, no versions).
    allow(this.apiFunction, 'TableItems', [
      'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem',
      'dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem', 'dynamodb:ConditionCheckItem',
    ], [tableArn]);
    // Queries: a call with its history, a campaign's overview and a stored answer's parts on the
    // table; a campaign's calls from `byCampaign`; the account's campaigns from `campaigns`
    // (their counters are a BatchGetItem, above).
    allow(this.apiFunction, 'TableQueries', ['dynamodb:Query'], [tableArn, indexArn('byCampaign'), indexArn('campaigns')]);
    tableKey(this.apiFunction);
    allow(this.apiFunction, 'HangUpOnThisSma', ['chime:UpdateSipMediaApplicationCall'], [smaArn]);
    allow(this.apiFunction, 'StartDispatcher', ['lambda:InvokeFunction'], [this.timersFunction.functionArn]);

    // Stream: counters and caller IDs' health counts (conditional updates that return the new
    // item), quarantines (conditional updates) and event-history items (batch writes); before
    // it publishes, it reads a campaign's item (its counters watermark and whether it has
    // completed). It queries nothing. Then it puts outcome events on the one bus, by ARN.
    allow(this.streamFunction, 'TableItems', ['dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:BatchWriteItem'], [tableArn]);
    tableKey(this.streamFunction);
    allow(this.streamFunction, 'PutOutcomeEvents', ['events:PutEvents'], [this.eventBus.eventBusArn]);

    // ---- The stream consumer --------------------------------------------------------------
    this.streamFailures = new sqs.Queue(this, 'StreamFailures', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    acknowledgeLint(this.streamFailures, {
      checkov: [{ id: 'CKV_AWS_27', comment: 'Encrypted at rest with SQS-managed keys (SqsManagedSseEnabled). The messages carry only the shard and sequence-number range of a failed batch; a customer key would have to be usable by the stream function outside DynamoDB, which the table key is not.' }],
    });
    Validations.of(this.streamFailures).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself the dead-letter destination of the stream mapping: it holds the shard and sequence range of batches that failed every retry, for an operator to re-read from the stream.',
    });
    this.streamFunction.addEventSource(new DynamoEventSource(this.table, {
      startingPosition: lambda.StartingPosition.TRIM_HORIZON,
      // Batch size, order, retries, record age and the tumbling window: the handler needs the
      // `shardId` that only tumbling-window events carry, and answers with batchItemFailures
      // and an empty state.
      ...STREAM_MAPPING,
      bisectBatchOnError: true,
      reportBatchItemFailures: true,
      onFailure: new SqsDlq(this.streamFailures),
      // Only call items reach the handler (it skips the others too): the counters and event
      // items it writes would otherwise invoke it again for nothing.
      filters: [
        lambda.FilterCriteria.filter({ dynamodb: { NewImage: { type: { S: lambda.FilterRule.isEqual('call') } } } }),
        lambda.FilterCriteria.filter({ dynamodb: { OldImage: { type: { S: lambda.FilterRule.isEqual('call') } } } }),
      ],
    }));
    Validations.of(this.streamFunction.role!).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'dynamodb:ListStreams (added by the DynamoDB event source) is a list operation with no resource-level permissions; Lambda checks it when it creates the mapping. Every other stream action is on this table\'s stream ARN.',
    });

    // ---- The webhook ----------------------------------------------------------------------
    // With `outdial:webhookUrl`: a rule on the bus sends every outcome event, whole (no input
    // transformer: the receiver gets the EventBridge envelope with `detail`), to an API
    // destination that POSTs it to the URL with the key from Secrets Manager in `x-outdial-key`.
    // - The key: the connection's API-key authorization takes it as a dynamic reference
    //   (`{{resolve:secretsmanager:...}}`) that CloudFormation resolves at deploy; the template
    //   never holds it. EventBridge keeps its copy in a secret of its own (`events!connection/...`).
    //   CloudFormation reads the secret only when it creates or updates the connection: a new
    //   key needs `aws events update-connection` (docs/deploy.md says how).
    // - Delivery is at least once and not in order: the receiver de-duplicates (docs/deploy.md).
    //   A failed delivery is retried for up to 24 h, then set aside in the dead-letter queue,
    //   whose policy lets EventBridge send to it for this rule only (`aws:SourceArn`).
    // - The rule invokes the API destination with a role of its own that EventBridge may assume
    //   for this account only and that may invoke this API destination and nothing else.
    if (config.webhook !== undefined) {
      this.webhookConnection = new events.Connection(this, 'WebhookConnection', {
        description: 'outdial: the webhook\'s key, sent in the x-outdial-key header',
        authorization: events.Authorization.apiKey(OUTCOMES.keyHeader, SecretValue.secretsManager(config.webhook.secret)),
      });
      const destination = new events.ApiDestination(this, 'WebhookDestination', {
        description: 'outdial: POSTs each outcome event to the webhook URL',
        connection: this.webhookConnection,
        endpoint: config.webhook.url,
        httpMethod: events.HttpMethod.POST,
        // `outdial:webhookRate` (default 50): EventBridge holds back what is over it and retries
        // it within `maxEventAge`. A campaign puts about 2.5 outcome events on the bus per call
        // it dials: about 250 a second at 100 calls a second (docs/scale.md).
        rateLimitPerSecond: config.webhook.rateLimitPerSecond,
      });
      this.webhookFailures = new sqs.Queue(this, 'WebhookFailures', {
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        retentionPeriod: OUTCOMES.failureRetention,
      });
      acknowledgeLint(this.webhookFailures, {
        checkov: [{ id: 'CKV_AWS_27', comment: 'Encrypted at rest with SQS-managed keys (SqsManagedSseEnabled). A customer key must let events.amazonaws.com encrypt with it: a statement narrowed to this rule cannot be written on the stack key (the rule names this queue, the queue would name the key: a cycle), so it would open the key that guards the retained table to every EventBridge rule of the account. No role of the stack may read the queue, and its messages are events the webhook receiver is sent anyway.' }],
      });
      Validations.of(this.webhookFailures).acknowledge({
        id: 'AwsSolutions-SQS3',
        reason: 'This queue is itself the dead-letter queue of the webhook rule\'s target: it holds outcome events EventBridge could not deliver within 24 hours, for an operator to read and re-send.',
      });
      const webhookRole = new iam.Role(this, 'WebhookRole', {
        assumedBy: new iam.ServicePrincipal('events.amazonaws.com', {
          conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
        }),
        description: 'outdial: lets the webhook rule invoke the webhook API destination',
      });
      this.webhookRule = new events.Rule(this, 'WebhookRule', {
        description: 'outdial: every outcome event to the webhook',
        eventBus: this.eventBus,
        eventPattern: { source: [OUTCOMES.source], detailType: [...OUTCOMES.detailTypes] },
      });
      // The target adds `events:InvokeApiDestination` on this destination to the role, and the
      // queue policy statement for this rule.
      this.webhookRule.addTarget(new targets.ApiDestination(destination, {
        eventRole: webhookRole,
        deadLetterQueue: this.webhookFailures,
        retryAttempts: OUTCOMES.retryAttempts,
        maxEventAge: OUTCOMES.maxEventAge,
      }));
    }

    // ---- The dispatcher's schedule --------------------------------------------------------
    const schedulerRole = new iam.Role(this, 'SchedulerRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
      }),
      description: 'outdial: lets the dispatcher schedule invoke the timers function',
    });
    schedulerRole.addToPolicy(new iam.PolicyStatement({
      sid: 'InvokeTimers',
      actions: ['lambda:InvokeFunction'],
      resources: [this.timersFunction.functionArn],
    }));
    new scheduler.CfnSchedule(this, 'DispatcherSchedule', {
      description: 'outdial: runs the dispatcher every minute; each run dispatches for up to 62 s',
      scheduleExpression: 'rate(1 minute)',
      flexibleTimeWindow: { mode: 'OFF' },
      state: 'ENABLED',
      target: {
        arn: this.timersFunction.functionArn,
        roleArn: schedulerRole.roleArn,
        // `{"source":"outdial.schedule"}`: a scheduled run waits for the previous run's leases.
        input: JSON.stringify(DISPATCHER.scheduleInput),
        retryPolicy: { maximumRetryAttempts: 0, maximumEventAgeInSeconds: DISPATCHER.maxEventAge.toSeconds() },
      },
    });

    // ---- HTTP API -------------------------------------------------------------------------
    const accessLogs = new logs.LogGroup(this, 'ApiAccessLogs', { retention: LOG_RETENTION, encryptionKey: this.key });
    this.httpApi = new apigw.HttpApi(this, 'HttpApi', {
      description: 'outdial: campaigns, calls and the do-not-call list (SigV4, service execute-api)',
      createDefaultStage: false,
      // One `$default` route: the API function does the routing; IAM authorizes every request.
      defaultAuthorizer: new HttpIamAuthorizer(),
      defaultIntegration: new HttpLambdaIntegration('Api', this.apiFunction),
    });
    const stage = new apigw.HttpStage(this, 'HttpApiStage', {
      httpApi: this.httpApi,
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: 100, burstLimit: 200 },
      accessLogSettings: {
        destination: new apigw.LogGroupLogDestination(accessLogs),
        format: accessLogFormat(),
      },
    });

    // Who may call the API: attach this policy to the people and roles that run campaigns.
    const apiCallers = new iam.ManagedPolicy(this, 'ApiCallerPolicy', {
      description: 'outdial: call the outdial HTTP API (SigV4, service execute-api)',
      statements: [new iam.PolicyStatement({
        sid: 'InvokeOutdialApi',
        actions: ['execute-api:Invoke'],
        resources: [this.httpApi.arnForExecuteApi('*', '/*', '$default')],
      })],
    });
    Validations.of(apiCallers).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<${this.getLogicalId(this.httpApi.node.defaultChild as apigw.CfnApi)}>/$default/*/*]`,
      reason: 'Callers of this one API may use every method and path of its one stage: the API function authorizes nothing finer, and IAM authorization is the whole of its access control.',
    });

    // ---- Operations -----------------------------------------------------------------------
    this.alarmTopic = new sns.Topic(this, 'AlarmTopic', {
      displayName: 'outdial alarms',
      masterKey: this.key,
      enforceSSL: true,
    });
    // CloudWatch publishes alarms to the encrypted topic. Only this account's alarms can: the
    // topic's own policy admits no other publisher.
    this.key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'CloudWatchAlarmsPublishToTheAlarmTopic',
      principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
      actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
      resources: ['*'],
    }));
    if (config.alarmEmail !== undefined) {
      this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(config.alarmEmail));
    }
    const ops = new Operations(this, 'Operations', {
      functions: { sma: this.smaFunction, timers: this.timersFunction, api: this.apiFunction, stream: this.streamFunction },
      streamFailures: this.streamFailures,
      webhookFailures: this.webhookFailures,
      httpApi: this.httpApi,
      table: this.table,
      alarmTopic: this.alarmTopic,
    });

    // ---- Outputs --------------------------------------------------------------------------
    new CfnOutput(this, 'ApiUrl', {
      description: 'The HTTP API: `outdial campaign start --api <ApiUrl>`; requests are signed with SigV4 (service execute-api)',
      value: stage.url,
    });
    new CfnOutput(this, 'ApiCallerPolicyArn', { description: 'Attach to whoever runs campaigns: execute-api:Invoke on this API', value: apiCallers.managedPolicyArn });
    new CfnOutput(this, 'SmaId', { description: 'The SIP media application id', value: smaId });
    new CfnOutput(this, 'SmaArn', { description: 'The SIP media application ARN', value: smaArn });
    new CfnOutput(this, 'TableName', { description: 'The DynamoDB table', value: tableName });
    new CfnOutput(this, 'StreamFailureQueueUrl', { description: 'Stream batches that failed every retry', value: this.streamFailures.queueUrl });
    new CfnOutput(this, 'EventBusName', {
      description: 'The event bus the stream function puts outcome events on (source outdial): the stack\'s own, or outdial:eventBus',
      value: this.eventBus.eventBusName,
    });
    if (this.webhookConnection !== undefined) {
      new CfnOutput(this, 'WebhookConnectionName', {
        description: 'The EventBridge connection holding the webhook key: update it after changing the secret (docs/deploy.md)',
        value: this.webhookConnection.connectionName,
      });
    }
    if (this.webhookFailures !== undefined) {
      new CfnOutput(this, 'WebhookFailureQueueUrl', {
        description: 'Outcome events the webhook could not deliver within 24 hours (outdial:webhookUrl)',
        value: this.webhookFailures.queueUrl,
      });
    }
    new CfnOutput(this, 'AlarmTopicArn', { description: 'Every alarm publishes here: subscribe to it', value: this.alarmTopic.topicArn });
    new CfnOutput(this, 'DashboardName', { description: 'The CloudWatch dashboard', value: ops.dashboard.dashboardName });
    new CfnOutput(this, 'PhoneNumbers', {
      description: 'Numbers ordered for this SMA (product type SipMediaApplicationDialIn), usable as campaign `from`',
      value: config.phoneNumbers.length > 0 ? config.phoneNumbers.join(',') : 'none given (-c outdial:phoneNumbers=...)',
    });
    if (this.greetingsBucket !== undefined) {
      new CfnOutput(this, 'GreetingsBucketName', {
        description: 'Where the PSTN audio service records callees\' greetings for answering-machine detection; each object expires after a day (outdial:voicemailDetection)',
        value: this.greetingsBucket.bucketName,
      });
    }
    new CfnOutput(this, 'CallerIdPools', {
      description: 'Caller-ID pools (outdial:callerIdPools), pool=numbers separated by \';\': register each number with PUT /numbers/{e164} (docs/caller-id.md)',
      value: config.callerIdPools.length > 0 ? formatCallerIdPools(config.callerIdPools) : 'none given (-c outdial:callerIdPools=...)',
    });
  }

  /** One binary of the workspace as an arm64 function with its own role and log group. */
  private rustFunction(id: string, spec: FunctionSpec): lambda.Function {
    const logGroup = new logs.LogGroup(this, `${id}Logs`, {
      retention: LOG_RETENTION,
      removalPolicy: RemovalPolicy.DESTROY,
      encryptionKey: this.key,
    });
    // A role of its own, without AWSLambdaBasicExecutionRole: it writes to its log group only.
    const role = new iam.Role(this, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `outdial: ${spec.binary}`,
    });
    role.addToPolicy(new iam.PolicyStatement({
      sid: 'WriteOwnLogs',
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [logGroup.logGroupArn],
    }));
    const fn = new RustFunction(this, id, {
      manifestPath: WORKSPACE_MANIFEST,
      binaryName: spec.binary,
      runtime: 'provided.al2023',
      architecture: lambda.Architecture.ARM_64,
      description: spec.description,
      memorySize: spec.memoryMb,
      timeout: spec.timeout,
      reservedConcurrentExecutions: spec.reservedConcurrency,
      environment: spec.environment,
      role,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
      // INFO keeps the platform's REPORT line (memory used, init duration): what sizing is
      // checked against.
      systemLogLevelV2: lambda.SystemLogLevel.INFO,
      // Build exactly what Cargo.lock pins, as the tests do.
      bundling: { cargoLambdaFlags: ['--locked'] },
    });
    // Deliberate, for every function (scripts/lint-template.sh; docs/deploy.md lists them).
    // cfn-lint W3005: lambda.Function makes the function depend on its role construct, so that
    // the role's policy is attached before the function exists; the role itself is already
    // ordered by the `Fn::GetAtt` of its ARN, which is all the warning says.
    acknowledgeLint(fn, {
      cfnLint: ['W3005'],
      checkov: [
        { id: 'CKV_AWS_117', comment: 'No VPC: the functions call only AWS APIs (DynamoDB, Chime SDK Voice, Lambda) over TLS with SigV4 and reach nothing private; a VPC would add NAT or endpoints and cold-start time for nothing.' },
        { id: 'CKV_AWS_173', comment: 'The environment holds no secret (table, function, bucket and event bus names, the SMA id, shard count, rate, message text, countries); Lambda encrypts it at rest with its own key.' },
      ],
    });
    return fn;
  }
}

/** A finding of checkov that is deliberate, with why. */
interface Deliberate {
  readonly id: string;
  readonly comment: string;
}

/**
 * Records on the resource behind `scope` the checkov checks and cfn-lint rules that do not
 * apply to it, as the two tools read them from the template's Metadata. cfn-lint's metadata
 * has no field for a reason: the call's comment gives it.
 */
export function acknowledgeLint(scope: Construct, findings: { readonly checkov?: Deliberate[]; readonly cfnLint?: string[] }): void {
  const resource = scope.node.defaultChild as CfnResource;
  if (findings.checkov !== undefined) {
    const skip = [...(resource.getMetadata('checkov')?.skip ?? []), ...findings.checkov];
    resource.addMetadata('checkov', { skip });
  }
  if (findings.cfnLint !== undefined) {
    const ignore = [...(resource.getMetadata('cfn-lint')?.config?.ignore_checks ?? []), ...findings.cfnLint];
    resource.addMetadata('cfn-lint', { config: { ignore_checks: ignore } });
  }
}

/**
 * One JSON line per request; the caller is the signing IAM principal. No bodies, no numbers:
 * the route template (`PUT /dnc/{e164}`) is logged, never the path, which can hold a number.
 */
function accessLogFormat(): AccessLogFormat {
  return AccessLogFormat.custom(JSON.stringify({
    requestId: '$context.requestId',
    time: '$context.requestTimeEpoch',
    caller: '$context.identity.userArn',
    sourceIp: '$context.identity.sourceIp',
    method: '$context.httpMethod',
    routeKey: '$context.routeKey',
    status: '$context.status',
    responseLength: '$context.responseLength',
    latencyMs: '$context.responseLatency',
    integrationLatencyMs: '$context.integrationLatency',
    integrationError: '$context.integrationErrorMessage',
    authorizerError: '$context.authorizer.error',
  }));
}
