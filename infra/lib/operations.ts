// What an operator watches: one alarm per way the call path can silently go wrong, every alarm
// on one topic, and a dashboard whose first graph is calls per minute by status.
//
// The `Outdial` metrics are CloudWatch embedded-metric-format lines the functions print:
// timers emits `Dialed`, `DialThrottled`, `CallsLost` and `OverdueSeconds` (how late the
// earliest watchdog entry is when a dispatcher reads it; waiting calls queued for their paced
// dial are in a separate lane and do not count), the stream function `CallTransitions` by
// `Status` and `NumbersQuarantined` (one for each caller ID it takes out of rotation for its
// answer, decline or rejection figures; docs/caller-id.md).

import { Duration, Stack } from 'aws-cdk-lib';
import type * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

export const NAMESPACE = 'Outdial';

/** Thresholds, with the reason for each. */
export const THRESHOLDS = {
  /** The SMA re-sends an event after 5 s; a p99 over 1 s means the hot path is a fifth of the
   * way there. */
  smaP99Ms: 1000,
  /** The dispatcher reads its watchdog lane continuously, ahead of paced dials, and runs every
   * minute: a watchdog entry two minutes late is a live call stuck past its deadline. A backlog
   * of waiting calls is in the dial lane and does not count. */
  overdueSeconds: 120,
  /** Counters lagging the table by five minutes. */
  streamIteratorAgeMs: 5 * 60 * 1000,
} as const;

export interface OperationsProps {
  readonly functions: { readonly sma: lambda.IFunction; readonly timers: lambda.IFunction; readonly api: lambda.IFunction; readonly stream: lambda.IFunction };
  readonly streamFailures: sqs.IQueue;
  /** The webhook's dead-letter queue; absent without `outdial:webhookUrl`. */
  readonly webhookFailures?: sqs.IQueue;
  readonly httpApi: apigw.HttpApi;
  readonly table: dynamodb.ITable;
  readonly alarmTopic: sns.ITopic;
}

const outdial = (metricName: string, statistic: string, period: Duration, dimensionsMap?: Record<string, string>) =>
  new cloudwatch.Metric({ namespace: NAMESPACE, metricName, statistic, period, dimensionsMap });

const MINUTE = Duration.minutes(1);
const FIVE_MINUTES = Duration.minutes(5);

export class Operations extends Construct {
  readonly alarms: cloudwatch.Alarm[] = [];
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: OperationsProps) {
    super(scope, id);
    const { functions, alarmTopic } = props;
    const action = new actions.SnsAction(alarmTopic);
    const stack = Stack.of(this);
    // Named `<stack>-<alarm>` so a notification says what fired: `Outdial-SmaDurationP99`.
    const alarm = (alarmId: string, alarmProps: Omit<cloudwatch.AlarmProps, 'alarmName'>) => {
      const a = new cloudwatch.Alarm(this, alarmId, { ...alarmProps, alarmName: `${stack.stackName}-${alarmId}` });
      a.addAlarmAction(action);
      a.addOkAction(action);
      this.alarms.push(a);
      return a;
    };

    // Every function: any error or throttle. A throttled SMA invocation is an event the SMA
    // has to re-send; a throttled dispatcher is dialing that waits.
    for (const [name, fn] of Object.entries(functions)) {
      const title = name.charAt(0).toUpperCase() + name.slice(1);
      alarm(`${title}Errors`, {
        alarmDescription: `outdial-${name}: the function returned errors`,
        metric: fn.metricErrors({ period: FIVE_MINUTES, statistic: 'Sum' }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      alarm(`${title}Throttles`, {
        alarmDescription: `outdial-${name}: invocations were throttled`,
        metric: fn.metricThrottles({ period: FIVE_MINUTES, statistic: 'Sum' }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }

    alarm('SmaDurationP99', {
      alarmDescription: `outdial-sma: p99 duration over ${THRESHOLDS.smaP99Ms} ms (the SMA re-sends after 5 s)`,
      metric: functions.sma.metricDuration({ period: FIVE_MINUTES, statistic: 'p99' }),
      threshold: THRESHOLDS.smaP99Ms,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    alarm('StreamFailuresNotEmpty', {
      alarmDescription: 'outdial-stream: a stream batch failed every retry and was set aside (counters miss it until it is replayed)',
      metric: props.streamFailures.metricApproximateNumberOfMessagesVisible({ period: MINUTE, statistic: 'Maximum' }),
      threshold: 0,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    // EventBridge sets an event aside only after it gave up on it: 24 h of retries, or at once
    // for an answer it does not retry (most 4xx). The receiver has missed it.
    if (props.webhookFailures !== undefined) {
      alarm('WebhookFailuresNotEmpty', {
        alarmDescription: 'outdial webhook: an outcome event could not be delivered (24 h of retries, or an answer EventBridge does not retry) and was set aside in the webhook dead-letter queue',
        metric: props.webhookFailures.metricApproximateNumberOfMessagesVisible({ period: MINUTE, statistic: 'Maximum' }),
        threshold: 0,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }

    // One datapoint per dispatcher run, about one a minute: 3 of 5 minutes rides out a minute
    // without a run ending in it.
    alarm('CallsOverdue', {
      alarmDescription: `outdial-timers: the earliest watchdog entry more than ${THRESHOLDS.overdueSeconds} s late in 3 of 5 minutes: live calls are stuck past their deadline and no dispatcher is getting to them (waiting calls queued for their paced dial do not count)`,
      metric: outdial('OverdueSeconds', 'Maximum', MINUTE),
      threshold: THRESHOLDS.overdueSeconds,
      evaluationPeriods: 5,
      datapointsToAlarm: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    alarm('DialThrottled', {
      alarmDescription: 'outdial-timers: CreateSipMediaApplicationCall throttled in each of 3 five-minute periods: OUTDIAL_ACCOUNT_CPS (outdial:accountCps) is above the account quota',
      metric: outdial('DialThrottled', 'Sum', FIVE_MINUTES),
      threshold: 1,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    alarm('CallsLost', {
      alarmDescription: 'outdial-timers: a watchdog found calls the SMA never reported the end of (status LOST)',
      metric: outdial('CallsLost', 'Sum', FIVE_MINUTES),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    alarm('DispatcherNotRunning', {
      alarmDescription: 'outdial-timers: not invoked for 3 minutes (the schedule runs it every minute): nothing dials and no watchdog fires',
      metric: functions.timers.metricInvocations({ period: MINUTE, statistic: 'Sum' }),
      threshold: 1,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });

    const iteratorAge = new cloudwatch.Metric({
      namespace: 'AWS/Lambda',
      metricName: 'IteratorAge',
      dimensionsMap: { FunctionName: functions.stream.functionName },
      statistic: 'Maximum',
      period: MINUTE,
    });
    alarm('StreamIteratorAge', {
      alarmDescription: 'outdial-stream: counters lag the table by more than 5 minutes',
      metric: iteratorAge,
      threshold: THRESHOLDS.streamIteratorAgeMs,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    // A quarantined caller ID dials no more until the operator restores it: each one is worth
    // a look (what the carriers or the callees did to it), and a pool can run dry.
    alarm('NumbersQuarantined', {
      alarmDescription: 'outdial-stream: a caller ID was quarantined (rejected as unwanted, rarely answered, often declined or often hung up on); it is not dialed from until restored with POST /numbers/{e164}/restore (docs/caller-id.md)',
      metric: outdial('NumbersQuarantined', 'Sum', FIVE_MINUTES),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    alarm('Api5xx', {
      alarmDescription: 'outdial-api: the HTTP API answered 5xx (the API answers expected failures with 4xx problem details)',
      metric: props.httpApi.metricServerError({ period: FIVE_MINUTES, statistic: 'Sum' }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    // ---- Dashboard ------------------------------------------------------------------------
    const byStatus = new cloudwatch.MathExpression({
      expression: `SEARCH('{${NAMESPACE},Status} MetricName="CallTransitions"', 'Sum', 60)`,
      label: '',
      period: MINUTE,
      usingMetrics: {},
    });
    const fnMetric = (fn: lambda.IFunction, label: string, metricName: string, statistic: string) =>
      fn.metric(metricName, { period: MINUTE, statistic, label });

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      // Dashboard names are unique in the whole account, alarm names only per Region.
      dashboardName: `${stack.stackName}-${stack.region}`,
      defaultInterval: Duration.hours(3),
      widgets: [
        [
          new cloudwatch.GraphWidget({
            title: 'Calls per minute by status (calls entering each status)',
            left: [byStatus],
            width: 12,
            height: 7,
          }),
          new cloudwatch.GraphWidget({
            title: 'Dialing per minute',
            left: [
              outdial('Dialed', 'Sum', MINUTE).with({ label: 'dialed' }),
              outdial('DialThrottled', 'Sum', MINUTE).with({ label: 'throttled' }),
              outdial('CallsLost', 'Sum', MINUTE).with({ label: 'lost' }),
            ],
            right: [outdial('OverdueSeconds', 'Maximum', MINUTE).with({ label: 'earliest watchdog entry, s late' })],
            width: 12,
            height: 7,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'SMA handler duration (ms)',
            left: [
              fnMetric(functions.sma, 'p50', 'Duration', 'p50'),
              fnMetric(functions.sma, 'p99', 'Duration', 'p99'),
              fnMetric(functions.sma, 'max', 'Duration', 'Maximum'),
            ],
            leftAnnotations: [{ value: THRESHOLDS.smaP99Ms, label: 'p99 alarm' }],
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'Errors and throttles',
            left: Object.entries(functions).flatMap(([name, fn]) => [
              fnMetric(fn, `${name} errors`, 'Errors', 'Sum'),
              fnMetric(fn, `${name} throttles`, 'Throttles', 'Sum'),
            ]),
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'Concurrent executions',
            left: Object.entries(functions).map(([name, fn]) => fnMetric(fn, name, 'ConcurrentExecutions', 'Maximum')),
            width: 8,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Stream: iterator age (ms) and set-aside batches',
            left: [iteratorAge.with({ label: 'iterator age' })],
            right: [props.streamFailures.metricApproximateNumberOfMessagesVisible({ period: MINUTE, statistic: 'Maximum', label: 'failure queue' })],
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'HTTP API',
            left: [
              props.httpApi.metricCount({ period: MINUTE, label: 'requests' }),
              props.httpApi.metricClientError({ period: MINUTE, label: '4xx' }),
              props.httpApi.metricServerError({ period: MINUTE, label: '5xx' }),
            ],
            right: [props.httpApi.metricLatency({ period: MINUTE, statistic: 'p99', label: 'latency p99 (ms)' })],
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'Table: consumed capacity per minute',
            left: [
              props.table.metricConsumedWriteCapacityUnits({ period: MINUTE, statistic: 'Sum', label: 'write units' }),
              props.table.metricConsumedReadCapacityUnits({ period: MINUTE, statistic: 'Sum', label: 'read units' }),
            ],
            width: 8,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Caller IDs quarantined (per 5 minutes)',
            left: [outdial('NumbersQuarantined', 'Sum', FIVE_MINUTES).with({ label: 'quarantined' })],
            leftAnnotations: [{ value: 1, label: 'alarm' }],
            width: props.webhookFailures === undefined ? 24 : 12,
            height: 4,
          }),
          ...(props.webhookFailures === undefined ? [] : [new cloudwatch.GraphWidget({
            title: 'Webhook: undelivered outcome events',
            left: [props.webhookFailures.metricApproximateNumberOfMessagesVisible({ period: MINUTE, statistic: 'Maximum', label: 'dead-letter queue' })],
            width: 12,
            height: 4,
          })]),
        ],
        [
          new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 24, height: 4 }),
        ],
      ],
    });
  }
}
