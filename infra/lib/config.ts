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
}

export const DEFAULTS = {
  dispatchShards: 4,
  accountCps: 5,
  smaReservedConcurrency: 100,
} as const;

const E164 = /^\+[1-9][0-9]{1,14}$/;
const COUNTRY = /^[A-Z]{2}$/;
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;

/** A context value as a trimmed string, or undefined when unset or empty. */
function text(node: Node, key: string): string | undefined {
  const raw: unknown = node.tryGetContext(key);
  if (raw === undefined || raw === null) return undefined;
  const value = String(raw).trim();
  return value === '' ? undefined : value;
}

function integer(node: Node, key: string, fallback: number, min: number, max: number): number {
  const raw = text(node, key);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${key} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
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

  return {
    phoneNumbers: numbers,
    dispatchShards: integer(node, 'outdial:dispatchShards', DEFAULTS.dispatchShards, 1, 64),
    accountCps,
    smaReservedConcurrency: integer(node, 'outdial:smaReservedConcurrency', DEFAULTS.smaReservedConcurrency, 0, 10000),
    inboundMessage,
    alarmEmail,
    allowedCountries,
  };
}
