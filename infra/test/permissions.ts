// What each function does in AWS, against what its role allows. DynamoDB Local checks no IAM, so
// a missing grant would only show in AWS: while the end-to-end suites run (`cargo test`), the
// local stack records every AWS operation each function makes, as IAM actions, one JSON line per
// distinct (function, action, resource), in `target/aws-operations/*.jsonl`. This module reads
// those lines and compares them with the synthesized template, both ways:
//
//   deniedOperations  recorded operations that no Allow statement of the function's role covers
//   unusedGrants      grants of a role that no recorded operation of its function uses
//
// Both are pure functions of a template (plain JSON, so a test can edit a copy) and records.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { functionStatements, logicalId, render, type HasJson, type Statement, type TemplateJson } from './synth';

/** The four functions, as the records name them, and the logical-id prefixes of the stack's. */
export const FUNCTIONS = {
  sma: 'SmaFunction',
  timers: 'TimersFunction',
  api: 'ApiFunction',
  stream: 'StreamFunction',
} as const;
export type FunctionName = keyof typeof FUNCTIONS;
const isFunctionName = (v: unknown): v is FunctionName => typeof v === 'string' && Object.hasOwn(FUNCTIONS, v);

/**
 * What a recorded operation acts on. Table and bus names are the local tests' own: any table
 * is the stack's one table, any event bus the stack's one bus.
 */
export type RecordedResource =
  | { readonly kind: 'table'; readonly table: string }
  | { readonly kind: 'index'; readonly table: string; readonly index: string }
  | { readonly kind: 'stream'; readonly table: string }
  | { readonly kind: 'sma' }
  /** The event bus outcome events go to (`PutEvents`): the one OUTDIAL_EVENT_BUS names. */
  | { readonly kind: 'bus'; readonly name: string }
  | { readonly kind: 'function'; readonly name: FunctionName }
  | { readonly kind: 'any' };

/** One recorded line: `function` called the IAM action `action` on `resource`. */
export interface OperationRecord {
  readonly function: FunctionName;
  readonly action: string;
  readonly resource: RecordedResource;
}

/** Resources that only grants name (no SDK call of a function does): for exceptions. */
export type GrantResource =
  | RecordedResource
  /** The table's KMS key. */
  | { readonly kind: 'tableKey' }
  /** The function's own log group. */
  | { readonly kind: 'logGroup' }
  /** The on-failure destination of the function's event source mapping. */
  | { readonly kind: 'failureQueue' };

/** A grant no recorded operation needs, on purpose: `action` (IAM wildcards allowed) on `resource`. */
export interface GrantException {
  /** Every function's role when absent. */
  readonly function?: FunctionName;
  readonly action: string;
  readonly resource: GrantResource;
  readonly reason: string;
}

/** One action on one resource pattern, as a role's Allow statement grants it. */
export interface Grant {
  readonly function: FunctionName;
  readonly sid?: string;
  readonly action: string;
  readonly resource: string;
}

// ---- Reading the records ------------------------------------------------------------------

/** Where the recordings are: `OUTDIAL_AWS_OPERATIONS` (a directory of `.jsonl` files, or one file), else `target/aws-operations`. */
export function recordingsLocation(env: NodeJS.ProcessEnv = process.env): string {
  return env.OUTDIAL_AWS_OPERATIONS || join(__dirname, '..', '..', 'target', 'aws-operations');
}

export interface Recordings {
  readonly location: string;
  readonly files: string[];
  /** Every distinct record of every file, in the order first seen. */
  readonly records: OperationRecord[];
}

/** Reads every record at `location`; none (and no error) when nothing is there. Throws on a malformed line, naming it. */
export function readRecordings(location: string = recordingsLocation()): Recordings {
  if (!existsSync(location)) return { location, files: [], records: [] };
  const files = statSync(location).isDirectory()
    ? readdirSync(location).filter((f) => f.endsWith('.jsonl')).sort().map((f) => join(location, f))
    : [location];
  const seen = new Map<string, OperationRecord>();
  for (const file of files) {
    readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      const record = parseRecord(line, `${file}:${i + 1}`);
      const key = recordKey(record);
      if (!seen.has(key)) seen.set(key, record);
    });
  }
  return { location, files, records: [...seen.values()] };
}

/** One line, checked: a line this module does not understand would otherwise pass unchecked. */
export function parseRecord(line: string, where = 'record'): OperationRecord {
  let raw: any;
  try {
    raw = JSON.parse(line);
  } catch (e) {
    throw new Error(`${where}: not JSON (${(e as Error).message}): ${line}`);
  }
  const bad = (what: string): never => { throw new Error(`${where}: ${what}: ${line}`); };
  if (!isFunctionName(raw?.function)) bad(`function must be one of ${Object.keys(FUNCTIONS).join(', ')}`);
  if (typeof raw.action !== 'string' || !/^[a-z0-9-]+:[A-Za-z0-9]+$/.test(raw.action)) bad('action must be an IAM action such as dynamodb:Query');
  const r = raw.resource;
  const str = (v: unknown) => typeof v === 'string' && v !== '';
  let resource: RecordedResource;
  switch (r?.kind) {
    case 'table': case 'stream':
      if (!str(r.table)) bad(`a ${r.kind} resource names its table`);
      resource = { kind: r.kind, table: r.table };
      break;
    case 'index':
      if (!str(r.table) || !str(r.index)) bad('an index resource names its table and index');
      resource = { kind: 'index', table: r.table, index: r.index };
      break;
    case 'function':
      if (!isFunctionName(r.name)) bad(`a function resource names one of ${Object.keys(FUNCTIONS).join(', ')}`);
      resource = { kind: 'function', name: r.name };
      break;
    case 'bus':
      if (!str(r.name)) bad('a bus resource names its event bus');
      resource = { kind: 'bus', name: r.name };
      break;
    case 'sma': case 'any':
      resource = { kind: r.kind };
      break;
    default:
      return bad('resource.kind must be table, index, stream, sma, function, bus or any');
  }
  return { function: raw.function, action: raw.action, resource };
}

/** The record with every table as the stack's one table, every bus as its one bus: what the IAM check can tell apart. */
function recordKey(r: OperationRecord): string {
  return `${r.function} ${r.action} ${JSON.stringify(normal(r.resource))}`;
}
function normal(r: GrantResource): unknown {
  if ('table' in r) return { ...r, table: '' };
  if (r.kind === 'bus') return { ...r, name: '' };
  return r;
}

/** A record, for a message: `sma dynamodb:Query on index byTransaction`. */
export function describeRecord(r: OperationRecord): string {
  const on = r.resource.kind === 'index' ? `index ${r.resource.index}`
    : r.resource.kind === 'function' ? `function ${r.resource.name}`
      : r.resource.kind === 'any' ? '*' : r.resource.kind;
  return `${r.function} ${r.action} on ${on}`;
}

// ---- Resources as the template names them -------------------------------------------------

const one = (template: HasJson, type: string): string => {
  const ids = Object.entries(template.json.Resources).filter(([, r]) => r.Type === type).map(([id]) => id);
  if (ids.length !== 1) throw new Error(`expected one ${type} in the template, found ${ids.join(', ') || 'none'}`);
  return ids[0];
};

/**
 * The stack's one event bus, as the template renders its ARN: the bus the stream function's
 * OUTDIAL_EVENT_BUS names. A `Ref` to the stack's own `AWS::Events::EventBus` is `${Bus.Arn}`;
 * a literal name (`outdial:eventBus`, a bus the stack does not create) is the ARN the stack's
 * `formatArn` renders for it.
 */
function busArn(template: TemplateJson): string {
  const env = template.Resources[logicalId({ json: template }, 'AWS::Lambda::Function', FUNCTIONS.stream)].Properties.Environment?.Variables ?? {};
  const name: unknown = env.OUTDIAL_EVENT_BUS;
  if (name === undefined) return '(no event bus)';
  if (typeof name === 'string') return `arn:\${AWS::Partition}:events:\${AWS::Region}:\${AWS::AccountId}:event-bus/${name}`;
  const ref = (name as { Ref?: string }).Ref;
  if (ref !== undefined && template.Resources[ref]?.Type === 'AWS::Events::EventBus') return `\${${ref}.Arn}`;
  throw new Error(`OUTDIAL_EVENT_BUS of the stream function is neither a name nor the stack's event bus: ${JSON.stringify(name)}`);
}

/**
 * The ARN of `resource` as the template renders it (`render` of synth.ts), for `fn`:
 * `${Table.Arn}`, `${Table.Arn}/index/due`, `${Table.StreamArn}`, the SMA's ARN, `${TimersFunction.Arn}`,
 * `${EventBus.Arn}`, `*`.
 */
export function arnOf(template: TemplateJson, fn: FunctionName, resource: GrantResource): string {
  const t = { json: template };
  switch (resource.kind) {
    case 'table': return `\${${one(t, 'AWS::DynamoDB::Table')}.Arn}`;
    case 'index': return `\${${one(t, 'AWS::DynamoDB::Table')}.Arn}/index/${resource.index}`;
    case 'stream': return `\${${one(t, 'AWS::DynamoDB::Table')}.StreamArn}`;
    // How the stack's formatArn renders it (stack.test.ts checks the SmaArn output against it).
    case 'sma': return `arn:\${AWS::Partition}:chime:\${AWS::Region}:\${AWS::AccountId}:sma/\${${one(t, 'AWS::Chime::SipMediaApplication')}.SipMediaApplicationId}`;
    case 'function': return `\${${logicalId(t, 'AWS::Lambda::Function', FUNCTIONS[resource.name])}.Arn}`;
    case 'bus': return busArn(template);
    case 'any': return '*';
    case 'tableKey': return render(template.Resources[one(t, 'AWS::DynamoDB::Table')].Properties.SSESpecification?.KMSMasterKeyId);
    case 'logGroup': {
      const group = template.Resources[logicalId(t, 'AWS::Lambda::Function', FUNCTIONS[fn])].Properties.LoggingConfig?.LogGroup;
      return group?.Ref === undefined ? '(no log group)' : `\${${group.Ref}.Arn}`;
    }
    case 'failureQueue': {
      const fnId = logicalId(t, 'AWS::Lambda::Function', FUNCTIONS[fn]);
      const mappings = Object.values(template.Resources)
        .filter((r) => r.Type === 'AWS::Lambda::EventSourceMapping' && r.Properties.FunctionName?.Ref === fnId);
      const destination = mappings[0]?.Properties.DestinationConfig?.OnFailure?.Destination;
      return mappings.length === 1 && destination !== undefined ? render(destination) : '(no failure queue)';
    }
  }
}

// ---- The check ----------------------------------------------------------------------------

/** IAM's matching: `*` any run of characters, `?` one; actions ignore case, resources do not. */
function globMatch(pattern: string, text: string, ignoreCase: boolean): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`, ignoreCase ? 'i' : '').test(text);
}
const actionMatches = (pattern: string, action: string) => globMatch(pattern, action, true);
const resourceMatches = (pattern: string, arn: string) => globMatch(pattern, arn, false);
const covers = (st: Statement, action: string, arn: string) =>
  st.actions.some((a) => actionMatches(a, action)) && st.resources.some((r) => resourceMatches(r, arn));

const statementsOf = (template: TemplateJson, fn: FunctionName) => functionStatements({ json: template }, FUNCTIONS[fn]);

/**
 * The records the function's role does not allow: no Allow statement covers the action on the
 * resource's ARN, or a Deny does. A statement with a Condition allows nothing here: a record
 * cannot say whether the condition holds.
 */
export function deniedOperations(template: TemplateJson, records: readonly OperationRecord[]): OperationRecord[] {
  const cache = new Map<FunctionName, Statement[]>();
  const of = (fn: FunctionName) => cache.get(fn) ?? cache.set(fn, statementsOf(template, fn)).get(fn)!;
  return records.filter((r) => {
    const arn = arnOf(template, r.function, r.resource);
    const st = of(r.function);
    const allowed = st.some((s) => s.effect === 'Allow' && s.condition === undefined && covers(s, r.action, arn));
    const denied = st.some((s) => s.effect === 'Deny' && covers(s, r.action, arn));
    return !allowed || denied;
  });
}

/** Every action on every resource pattern the function roles' Allow statements grant. */
export function grantsOf(template: TemplateJson): Grant[] {
  return (Object.keys(FUNCTIONS) as FunctionName[]).flatMap((fn) =>
    statementsOf(template, fn)
      .filter((s) => s.effect === 'Allow')
      .flatMap((s) => s.actions.flatMap((action) => s.resources.map((resource) => ({
        function: fn, ...(s.sid === undefined ? {} : { sid: s.sid }), action, resource,
      })))));
}

/** Whether `exception` excuses `grant`: same function (or any), an action it matches, the same resource. */
export function excuses(template: TemplateJson, exception: GrantException, grant: Grant): boolean {
  return (exception.function === undefined || exception.function === grant.function)
    && actionMatches(exception.action, grant.action)
    && arnOf(template, grant.function, exception.resource) === grant.resource;
}

/**
 * The grants that no record of their function uses (its action matches the grant's, its ARN
 * the grant's resource pattern) and no exception excuses.
 */
export function unusedGrants(template: TemplateJson, records: readonly OperationRecord[], exceptions: readonly GrantException[]): Grant[] {
  return grantsOf(template).filter((g) =>
    !records.some((r) => r.function === g.function && actionMatches(g.action, r.action)
      && resourceMatches(g.resource, arnOf(template, r.function, r.resource)))
    && !exceptions.some((e) => excuses(template, e, g)));
}

/** The exceptions that excuse no grant of `template`: stale, to be removed. */
export function unusedExceptions(template: TemplateJson, exceptions: readonly GrantException[]): GrantException[] {
  const grants = grantsOf(template);
  return exceptions.filter((e) => !grants.some((g) => excuses(template, e, g)));
}

/**
 * Grants no end-to-end test can record, each with why the role holds it. Everything else a
 * role allows must be used by a recorded operation of its function.
 */
export const GRANT_EXCEPTIONS: readonly GrantException[] = [
  {
    action: 'kms:*',
    resource: { kind: 'tableKey' },
    // No function calls KMS: DynamoDB uses the table's key on the caller's behalf (the
    // TableKeyThroughDynamoDB statements, limited by kms:ViaService), and for the stream
    // function Lambda's poller decrypts the encrypted stream (DynamoEventSource's kms:Decrypt
    // and kms:DescribeKey). DynamoDB Local encrypts nothing.
    reason: 'DynamoDB (and the stream poller) use the table key for the function; DynamoDB Local has no KMS',
  },
  {
    action: 'logs:*',
    resource: { kind: 'logGroup' },
    // Lambda writes the function's stdout to its own log group with the execution role; the
    // binaries make no CloudWatch Logs call.
    reason: 'Lambda writes the function\'s logs to its own log group with its role',
  },
  {
    function: 'stream',
    action: 'sqs:*',
    resource: { kind: 'failureQueue' },
    // DynamoEventSource's onFailure: Lambda's event source mapping sends the shard and sequence
    // range of a batch that failed every retry to the failure queue with the function's role.
    // The local stand-in of the mapping keeps no queue.
    reason: 'the event source mapping sends failed batches to the failure queue with the function\'s role',
  },
  {
    function: 'stream',
    action: 'dynamodb:ListStreams',
    resource: { kind: 'any' },
    // DynamoEventSource adds it: Lambda lists the table's streams when it creates the mapping.
    // The local stand-in of the mapping is handed the stream's ARN and lists nothing.
    reason: 'Lambda lists the table\'s streams when it creates the event source mapping',
  },
];

// ---- Editing a copy of a template (for the tests of the check) ----------------------------

const list = (v: unknown): any[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/**
 * A copy of `template` in which `fn`'s role no longer allows `action` on `arn` (as `arnOf`
 * renders it): the resource leaves the statement, or the statement splits in two when it grants
 * other actions too. Throws when no statement grants exactly that.
 */
export function revoke(template: TemplateJson, fn: FunctionName, action: string, arn: string): TemplateJson {
  const copy: TemplateJson = structuredClone(template);
  const roleId = copy.Resources[logicalId({ json: copy }, 'AWS::Lambda::Function', FUNCTIONS[fn])].Properties.Role['Fn::GetAtt'][0];
  const documents = [
    ...list(copy.Resources[roleId].Properties.Policies).map((p) => p.PolicyDocument),
    ...Object.values(copy.Resources)
      .filter((r) => r.Type === 'AWS::IAM::Policy' && list(r.Properties.Roles).some((ref) => ref.Ref === roleId))
      .map((r) => r.Properties.PolicyDocument),
  ];
  let revoked = 0;
  for (const doc of documents) {
    doc.Statement = list(doc.Statement).flatMap((st: any) => {
      const actions = list(st.Action);
      const resources = list(st.Resource);
      if (st.Effect !== 'Allow' || !actions.some((a) => a.toLowerCase() === action.toLowerCase())
        || !resources.some((r) => render(r) === arn)) return [st];
      revoked += 1;
      const others = actions.filter((a) => a.toLowerCase() !== action.toLowerCase());
      const rest = resources.filter((r) => render(r) !== arn);
      const { Sid: _sid, ...unnamed } = st;
      return [
        ...(others.length > 0 ? [{ ...st, Action: others.length === 1 ? others[0] : others }] : []),
        ...(rest.length > 0 ? [{ ...(others.length > 0 ? unnamed : st), Action: action, Resource: rest.length === 1 ? rest[0] : rest }] : []),
      ];
    });
  }
  if (revoked === 0) throw new Error(`${fn}'s role has no statement granting ${action} on ${arn}`);
  return copy;
}

/**
 * A copy of `template` in which `fn`'s role also allows `actions` on `resources`: template values,
 * or ARNs as `arnOf` renders them (a string renders as itself).
 */
export function allowAlso(template: TemplateJson, fn: FunctionName, actions: string[], resources: string[]): TemplateJson {
  const copy: TemplateJson = structuredClone(template);
  const roleId = copy.Resources[logicalId({ json: copy }, 'AWS::Lambda::Function', FUNCTIONS[fn])].Properties.Role['Fn::GetAtt'][0];
  copy.Resources[`Extra${roleId}Policy`] = {
    Type: 'AWS::IAM::Policy',
    Properties: {
      PolicyName: 'Extra',
      Roles: [{ Ref: roleId }],
      PolicyDocument: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: actions, Resource: resources }] },
    },
  };
  return copy;
}
