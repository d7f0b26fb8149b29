// The whole of outdial in one stack: the table, the four Rust functions, the HTTP API, the SIP
// media application, the dispatcher's schedule, the stream consumer, and what an operator
// watches. Each function's role lists exactly what its binary calls (docs/deploy.md has the
// table); nothing gets a managed policy or a `*` where a resource can be named.

import { join } from 'node:path';
import { ArnFormat, CfnOutput, Duration, RemovalPolicy, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as chime from 'aws-cdk-lib/aws-chime';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { RustFunction } from 'cargo-lambda-cdk';
import type { Construct } from 'constructs';
import type { OutdialConfig } from './config';
import { Operations } from './operations';
import { buildTable, loadSchema, type TableSchema } from './table';

/** The Cargo workspace: every function is one of its binaries. */
export const WORKSPACE_MANIFEST = join(__dirname, '..', '..', 'Cargo.toml');

/**
 * Sizes and limits, one place. Lambda gives CPU in proportion to memory (a full vCPU at
 * 1,769 MB), so memory here buys CPU, not room: every binary runs in a few tens of MB.
 */
export const SIZING = {
  /** The SMA answers inside one DynamoDB round trip; its CPU work is tens of microseconds
   * (DESIGN §9), so the smallest size serves it. The timeout sits above the store's hot-path
   * deadline (2.5 s: two attempts of 1 s plus connect) and below the SMA's 5 s re-send, so an
   * invocation always ends before the SMA sends the same event again. */
  sma: { memoryMb: 128, timeout: Duration.seconds(3) },
  /** One invocation dispatches every shard for up to 58 s (`RUN_FOR` in handlers/timers) and
   * stops 5 s before its deadline (`MARGIN`); the 70 s timeout leaves that margin and more. A
   * scheduled run first waits up to 10 s for the previous run to hand its shards over
   * (`SCHEDULED_LEASE_WAIT`), so consecutive runs overlap by a few seconds and dialing never
   * pauses for long. At 100 calls per second per shard it signs and sends hundreds of requests
   * a second, which needs a third of a vCPU, not the twelfth that 128 MB gives. The reserved
   * concurrency covers the schedule's overlapping runs (two at a hand-over) plus the API's
   * on-demand runs, and caps the dispatcher there. */
  timers: { memoryMb: 512, timeout: Duration.seconds(70), reservedConcurrency: 4 },
  /** `POST /campaigns` parses and writes up to 100,000 contacts in one request: CPU for the
   * parsing and the batch writes, inside the HTTP API's 30 s integration limit. */
  api: { memoryMb: 1024, timeout: Duration.seconds(29) },
  /** A batch of up to 100 stream records: one counter update per call transition and the
   * event-history writes, I/O-bound. */
  stream: { memoryMb: 128, timeout: Duration.seconds(30) },
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
  readonly alarmTopic: sns.Topic;

  constructor(scope: Construct, id: string, props: OutdialStackProps) {
    super(scope, id, props);
    const { config } = props;
    const schema = props.schema ?? loadSchema();

    // ---- Data -----------------------------------------------------------------------------
    // Retained with the table: a retained table is unreadable without its key.
    this.key = new kms.Key(this, 'Key', {
      description: 'outdial: the table (items, stream, backups) and the alarm topic',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.table = buildTable(this, 'Table', schema, this.key);
    const tableArn = this.table.tableArn;
    // One index of the schema by name: a query grant names the indexes its function queries.
    const indexArn = (name: string) => {
      if (!schema.globalSecondaryIndexes.some((i) => i.name === name)) throw new Error(`schema/table.json has no index ${name}`);
      return `${tableArn}/index/${name}`;
    };

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
      },
    });

    // The SIP media application, with the SMA function as its one endpoint. The permission
    // exists before the SMA does; `aws:SourceAccount` keeps another account's SMA from invoking
    // the function (a condition on the SMA's own ARN would be a dependency cycle).
    const smaPermission = new lambda.CfnPermission(this, 'SmaInvokePermission', {
      action: 'lambda:InvokeFunction',
      functionName: this.smaFunction.functionArn,
      principal: 'voiceconnector.chime.amazonaws.com',
      sourceAccount: this.account,
    });
    this.sipMediaApplication = new chime.CfnSipMediaApplication(this, 'SipMediaApplication', {
      name: this.stackName,
      awsRegion: this.region,
      endpoints: [{ lambdaArn: this.smaFunction.functionArn }],
    });
    this.sipMediaApplication.node.addDependency(smaPermission);
    const smaId = this.sipMediaApplication.attrSipMediaApplicationId;
    const smaArn = this.formatArn({
      service: 'chime',
      resource: 'sma',
      resourceName: smaId,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });

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

    this.apiFunction = this.rustFunction('ApiFunction', {
      binary: 'outdial-api',
      description: 'outdial: the HTTP API (campaigns, calls, do-not-call list)',
      ...SIZING.api,
      environment: {
        OUTDIAL_TABLE_NAME: tableName,
        OUTDIAL_DISPATCH_SHARDS: shards,
        OUTDIAL_SMA_ID: smaId,
        OUTDIAL_TIMERS_FUNCTION: this.timersFunction.functionName,
      },
    });

    this.streamFunction = this.rustFunction('StreamFunction', {
      binary: 'outdial-stream',
      description: 'outdial: campaign counters and call event history from the table stream',
      ...SIZING.stream,
      environment: { OUTDIAL_TABLE_NAME: tableName },
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
    // `byCampaign` (never the base table), and the two Voice API calls on this SMA only.
    allow(this.timersFunction, 'TableItems',
      ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'], [tableArn]);
    allow(this.timersFunction, 'TableQueries', ['dynamodb:Query'], [indexArn('due'), indexArn('byCampaign')]);
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
    // table; a campaign's calls from `byCampaign`.
    allow(this.apiFunction, 'TableQueries', ['dynamodb:Query'], [tableArn, indexArn('byCampaign')]);
    tableKey(this.apiFunction);
    allow(this.apiFunction, 'HangUpOnThisSma', ['chime:UpdateSipMediaApplicationCall'], [smaArn]);
    allow(this.apiFunction, 'StartDispatcher', ['lambda:InvokeFunction'], [this.timersFunction.functionArn]);

    // Stream: counters (conditional updates that return the new item) and event-history items
    // (batch writes); it reads and queries nothing.
    allow(this.streamFunction, 'TableItems', ['dynamodb:UpdateItem', 'dynamodb:BatchWriteItem'], [tableArn]);
    tableKey(this.streamFunction);

    // ---- The stream consumer --------------------------------------------------------------
    this.streamFailures = new sqs.Queue(this, 'StreamFailures', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
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
      description: 'outdial: runs the dispatcher every minute; each run dispatches for up to 58 s',
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
    const accessLogs = new logs.LogGroup(this, 'ApiAccessLogs', { retention: LOG_RETENTION });
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
    new CfnOutput(this, 'AlarmTopicArn', { description: 'Every alarm publishes here: subscribe to it', value: this.alarmTopic.topicArn });
    new CfnOutput(this, 'DashboardName', { description: 'The CloudWatch dashboard', value: ops.dashboard.dashboardName });
    new CfnOutput(this, 'PhoneNumbers', {
      description: 'Numbers ordered for this SMA (product type SipMediaApplicationDialIn), usable as campaign `from`',
      value: config.phoneNumbers.length > 0 ? config.phoneNumbers.join(',') : 'none given (-c outdial:phoneNumbers=...)',
    });
  }

  /** One binary of the workspace as an arm64 function with its own role and log group. */
  private rustFunction(id: string, spec: FunctionSpec): lambda.Function {
    const logGroup = new logs.LogGroup(this, `${id}Logs`, {
      retention: LOG_RETENTION,
      removalPolicy: RemovalPolicy.DESTROY,
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
    return new RustFunction(this, id, {
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
