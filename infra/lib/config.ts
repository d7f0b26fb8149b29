// The stack's inputs, read once from CDK context (`-c outdial:<name>=<value>` or cdk.json) and
// checked here, so a typo fails `cdk synth` with the name of the setting instead of reaching a
// Lambda's environment. Every value a function sees comes from this object or from a resource
// of the stack: nothing is read from the machine that synthesizes.

import type { Node } from 'constructs';

/** Everything the stack can be told. */
export interface OutdialConfig {
  /** `outdial:phoneNumbers`: the E.164 numbers ordered for the SIP media application (product
   * type `SipMediaApplicationDialIn`). Ordered outside CDK; listed in the outputs and used as
   * campaign `from` numbers. */
  readonly phoneNumbers: readonly string[];
  /** `outdial:callerIdPools` (optional): which of `phoneNumbers` may serve as caller IDs, by
   * pool (`east=+12125550100,+12125550101;west=+14155550100`). Listed in the outputs for the
   * operator to register with `PUT /numbers/{e164}` (docs/caller-id.md); no function reads it.
   * Empty when unset. */
  readonly callerIdPools: readonly CallerIdPool[];
  /** `outdial:dispatchShards` (1-64, default 4): how many dispatch shards due work is spread
   * over (`OUTDIAL_DISPATCH_SHARDS`). */
  readonly dispatchShards: number;
  /** `outdial:accountCps` (default 5): the account's CreateSipMediaApplicationCall rate in calls
   * per second, shared by all campaigns (`OUTDIAL_ACCOUNT_CPS`). */
  readonly accountCps: number;
  /** `outdial:smaReservedConcurrency` (default 100; 0 = no reservation): concurrency kept for
   * the SMA function alone. */
  readonly smaReservedConcurrency: number;
  /** `outdial:inboundMessage` (optional): what the SMA says to someone who calls a campaign
   * number back (`OUTDIAL_INBOUND_MESSAGE`). */
  readonly inboundMessage?: string;
  /** `outdial:alarmEmail` (optional): subscribed to the alarm topic. */
  readonly alarmEmail?: string;
  /** `outdial:allowedCountries` (optional): the countries campaigns may call, as ISO 3166
   * alpha-2 codes (`US,CA`), passed to the API function as `OUTDIAL_ALLOWED_COUNTRIES`; a
   * number in any other country is refused. Unset: each request may call its campaign's
   * `default_region` and the region it names for its own numbers. */
  readonly allowedCountries?: readonly string[];
  /** `outdial:voicemailDetection` (default true): whether the stack builds the greetings bucket
   * and tells the SMA function its name (`OUTDIAL_GREETINGS_BUCKET`). The SMA handler runs
   * answering-machine detection only when that variable is set, so false turns detection off
   * for every campaign of the deployment. */
  readonly voicemailDetection: boolean;
  /** `outdial:eventBus` (optional): the name of an existing EventBridge event bus to publish
   * outcome events to. Unset: the stack creates its own bus. Either way the stream function
   * gets the bus's name as `OUTDIAL_EVENT_BUS`. */
  readonly eventBus?: string;
  /** `outdial:webhookUrl` and `outdial:webhookSecret` (optional, together): where EventBridge
   * POSTs every outcome event, and the Secrets Manager secret whose value it sends in the
   * `x-outdial-key` header; `outdial:webhookRate` (1-300, default 50, only with a URL): at most
   * how many POSTs a second. Unset: no webhook. */
  readonly webhook?: WebhookConfig;
}

/** The webhook of `outdial:webhookUrl`, `outdial:webhookSecret` and `outdial:webhookRate`. */
export interface WebhookConfig {
  /** An https URL, as EventBridge API destinations accept it. */
  readonly url: string;
  /** The name or ARN of a Secrets Manager secret; its value (a plain string) is the key. */
  readonly secret: string;
  /** At most this many webhook calls per second (the API destination's
   * `InvocationRateLimitPerSecond`); EventBridge holds the rest back and retries them within
   * the rule's 24 hours. At 100 calls a second a campaign produces about 250 outcome events a
   * second (docs/scale.md): a webhook held to less falls further behind for as long as the
   * campaign runs. */
  readonly rateLimitPerSecond: number;
}

/** One pool of `outdial:callerIdPools`: its name and its numbers, in the order given. */
export interface CallerIdPool {
  readonly pool: string;
  readonly numbers: readonly string[];
}

export const DEFAULTS = {
  dispatchShards: 4,
  accountCps: 5,
  smaReservedConcurrency: 100,
  voicemailDetection: true,
  webhookRate: 50,
} as const;

const E164 = /^\+[1-9][0-9]{1,14}$/;
const COUNTRY = /^[A-Z]{2}$/;
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
/** An EventBridge event bus name (CreateEventBus: 1 to 256 of these characters; no ARN). */
const EVENT_BUS = /^[A-Za-z0-9._\-/]{1,256}$/;
/** A Secrets Manager secret's name (1 to 512 letters, digits and `/_+=.@-`) or its ARN. */
const SECRET_NAME = /^[A-Za-z0-9/_+=.@-]{1,512}$/;
const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}$/;
/** The longest invocation endpoint an API destination accepts. */
const WEBHOOK_URL_MAX = 2048;
/** The highest `outdial:webhookRate`: the invocation rate EventBridge allows an API destination
 * by default (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-quota.html). */
export const WEBHOOK_RATE_MAX = 300;
/** A pool name as the API accepts it (core/src/numbers.rs, `valid_pool`). */
const POOL = /^[A-Za-z0-9_-]{1,64}$/;

/** A context value as a trimmed string, or undefined when unset or empty. */
function text(node: Node, key: string): string | undefined {
  const raw: unknown = node.tryGetContext(key);
  if (raw === undefined || raw === null) return undefined;
  const value = String(raw).trim();
  return value === '' ? undefined : value;
}

function integer(node: Node, key: string, fallback: number, min: number, max: number): number {
  return integerOf(text(node, key), key, fallback, min, max);
}

/** `raw` (a value as `text` gives it) as an integer from `min` to `max`; `fallback` when unset. */
function integerOf(raw: string | undefined, key: string, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${key} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/**
 * A yes-or-no setting: `true` or `false`, as `-c key=false` passes it (a string) or cdk.json
 * holds it (a boolean). Anything else is refused rather than guessed at: `no`, `0` or `False`
 * could as well be a typo as a wish.
 */
function flag(node: Node, key: string, fallback: boolean): boolean {
  const raw = text(node, key);
  if (raw === undefined) return fallback;
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw new Error(`${key} must be true or false, got ${JSON.stringify(raw)}`);
}

/**
 * Parses `outdial:callerIdPools`: `;`-separated pools, each `name=` and comma-separated E.164
 * numbers. Every number must be one of `phoneNumbers` (CreateSipMediaApplicationCall dials
 * only from numbers of the account's inventory) and in one pool only. Throws naming the
 * setting.
 */
export function parseCallerIdPools(raw: string | undefined, phoneNumbers: readonly string[]): CallerIdPool[] {
  const key = 'outdial:callerIdPools';
  if (raw === undefined || raw.trim() === '') return [];
  const ordered = new Set(phoneNumbers);
  const poolOf = new Map<string, string>();
  const pools: CallerIdPool[] = [];
  for (const segment of raw.split(';').map((p) => p.trim()).filter((p) => p !== '')) {
    const eq = segment.indexOf('=');
    if (eq < 0) {
      throw new Error(`${key} must be pools of the form name=+12125550100,+12125550101 separated by ';', got ${JSON.stringify(segment)}`);
    }
    const pool = segment.slice(0, eq).trim();
    if (!POOL.test(pool)) {
      throw new Error(`${key}: a pool name must be 1 to 64 letters, digits, '-' or '_', got ${JSON.stringify(pool)}`);
    }
    if (pools.some((p) => p.pool === pool)) {
      throw new Error(`${key} names the pool ${pool} twice`);
    }
    const numbers = segment.slice(eq + 1).split(',').map((n) => n.trim()).filter((n) => n !== '');
    if (numbers.length === 0) {
      throw new Error(`${key}: the pool ${pool} has no numbers`);
    }
    for (const n of numbers) {
      if (!E164.test(n)) {
        throw new Error(`${key}: the pool ${pool} must list E.164 numbers (+12125550100), got ${JSON.stringify(n)}`);
      }
      const other = poolOf.get(n);
      if (other !== undefined) {
        throw new Error(other === pool
          ? `${key}: the pool ${pool} lists ${n} twice`
          : `${key}: ${n} is in two pools, ${other} and ${pool} (a number belongs to one pool)`);
      }
      if (!ordered.has(n)) {
        throw new Error(`${key}: ${n} (pool ${pool}) is not in outdial:phoneNumbers; the SMA dials only from numbers ordered for it`);
      }
      poolOf.set(n, pool);
    }
    pools.push({ pool, numbers });
  }
  return pools;
}

/** `pools` as `outdial:callerIdPools` writes them. */
export function formatCallerIdPools(pools: readonly CallerIdPool[]): string {
  return pools.map((p) => `${p.pool}=${p.numbers.join(',')}`).join(';');
}

/**
 * Checks `outdial:webhookUrl` and `outdial:webhookSecret`: both or neither. The URL must be
 * https (EventBridge API destinations call nothing else), absolute, at most 2,048 characters,
 * with no user name or password in it (the key belongs in the secret, not in the template);
 * the secret must be a Secrets Manager secret's name or ARN. `outdial:webhookRate`, only with
 * a URL, must be an integer from 1 to 300 (50 when unset). Throws naming the setting.
 */
export function parseWebhook(url: string | undefined, secret: string | undefined, rate?: string): WebhookConfig | undefined {
  if (url === undefined) {
    if (secret !== undefined) {
      throw new Error('outdial:webhookSecret is set but outdial:webhookUrl is not: give both, or neither for no webhook');
    }
    if (rate !== undefined) {
      throw new Error('outdial:webhookRate is set but outdial:webhookUrl is not: the rate is the webhook\'s; give outdial:webhookUrl and outdial:webhookSecret with it, or leave it out');
    }
    return undefined;
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`outdial:webhookUrl must be an https URL (https://hooks.example.com/outdial), got ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'https:') {
    throw new Error(`outdial:webhookUrl must be an https URL: EventBridge API destinations call https endpoints only, got ${JSON.stringify(url)}`);
  }
  if (parsed.username !== '' || parsed.password !== '') {
    throw new Error('outdial:webhookUrl must not hold a user name or password: the template would carry it in plain text; the key goes in outdial:webhookSecret');
  }
  if (/\s/.test(url) || url.length > WEBHOOK_URL_MAX) {
    throw new Error(`outdial:webhookUrl must be at most ${WEBHOOK_URL_MAX} characters without spaces, got ${JSON.stringify(url.slice(0, 80))}`);
  }
  if (secret === undefined) {
    throw new Error('outdial:webhookUrl needs outdial:webhookSecret: the name or ARN of the Secrets Manager secret whose value is sent in the x-outdial-key header (docs/deploy.md, Outcome events and the webhook)');
  }
  if (!SECRET_NAME.test(secret) && !SECRET_ARN.test(secret)) {
    throw new Error(`outdial:webhookSecret must be the name or ARN of a Secrets Manager secret (letters, digits and /_+=.@-), got ${JSON.stringify(secret)}`);
  }
  const rateLimitPerSecond = integerOf(rate, 'outdial:webhookRate', DEFAULTS.webhookRate, 1, WEBHOOK_RATE_MAX);
  return { url, secret, rateLimitPerSecond };
}

/** Reads and checks the stack's context. Throws with the setting's name on a bad value. */
export function readConfig(node: Node): OutdialConfig {
  const numbers = (text(node, 'outdial:phoneNumbers') ?? '')
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '');
  for (const n of numbers) {
    if (!E164.test(n)) {
      throw new Error(`outdial:phoneNumbers must be comma-separated E.164 numbers (+15555550100), got ${JSON.stringify(n)}`);
    }
  }
  if (new Set(numbers).size !== numbers.length) {
    throw new Error('outdial:phoneNumbers lists a number twice');
  }

  const cpsRaw = text(node, 'outdial:accountCps');
  const accountCps = cpsRaw === undefined ? DEFAULTS.accountCps : Number(cpsRaw);
  if (!Number.isFinite(accountCps) || accountCps <= 0 || accountCps > 1000) {
    throw new Error(`outdial:accountCps must be a number of calls per second above 0 and at most 1000, got ${JSON.stringify(cpsRaw)}`);
  }

  const inboundMessage = text(node, 'outdial:inboundMessage');
  if (inboundMessage !== undefined && inboundMessage.length > 1000) {
    throw new Error('outdial:inboundMessage must be at most 1000 characters (the SMA handler refuses longer)');
  }

  const alarmEmail = text(node, 'outdial:alarmEmail');
  if (alarmEmail !== undefined && !EMAIL.test(alarmEmail)) {
    throw new Error(`outdial:alarmEmail must be an email address, got ${JSON.stringify(alarmEmail)}`);
  }

  // Checked as the API function reads it (handlers/api/src/destinations.rs), less its
  // numbering-plan check: a code the function cannot read would stop it at start-up.
  const countriesRaw = text(node, 'outdial:allowedCountries');
  const allowedCountries = countriesRaw?.split(',').map((c) => c.trim());
  for (const c of allowedCountries ?? []) {
    if (!COUNTRY.test(c)) {
      throw new Error(`outdial:allowedCountries must be comma-separated ISO 3166 alpha-2 codes in upper case (US,CA), got ${JSON.stringify(c)}`);
    }
  }
  if (allowedCountries !== undefined && new Set(allowedCountries).size !== allowedCountries.length) {
    throw new Error('outdial:allowedCountries lists a country twice');
  }

  const callerIdPools = parseCallerIdPools(text(node, 'outdial:callerIdPools'), numbers);

  const eventBus = text(node, 'outdial:eventBus');
  if (eventBus !== undefined && !EVENT_BUS.test(eventBus)) {
    throw new Error(`outdial:eventBus must be the name (not the ARN) of an existing EventBridge event bus: 1 to 256 letters, digits, '.', '-', '_' or '/', got ${JSON.stringify(eventBus)}`);
  }
  const webhook = parseWebhook(text(node, 'outdial:webhookUrl'), text(node, 'outdial:webhookSecret'), text(node, 'outdial:webhookRate'));

  return {
    phoneNumbers: numbers,
    callerIdPools,
    dispatchShards: integer(node, 'outdial:dispatchShards', DEFAULTS.dispatchShards, 1, 64),
    accountCps,
    smaReservedConcurrency: integer(node, 'outdial:smaReservedConcurrency', DEFAULTS.smaReservedConcurrency, 0, 10000),
    inboundMessage,
    alarmEmail,
    allowedCountries,
    voicemailDetection: flag(node, 'outdial:voicemailDetection', DEFAULTS.voicemailDetection),
    eventBus,
    webhook,
  };
}
