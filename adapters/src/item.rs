//! How records are laid out as DynamoDB items. `docs/table.md` documents every attribute
//! named here; stream consumers depend on them, so a rename is a breaking change.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use aws_sdk_dynamodb::types::AttributeValue;
use outdial_core::ids::{Attempt, CallId, CampaignId, E164, Sequence, TransactionId};
use outdial_core::lifecycle::{CallStatus, EndRequest, Outcome};
use outdial_core::machine::Verdict;
use outdial_core::policy::{
    DncEntry, DncSource, Ledger, LedgerEntry, OnCap, Policy, Purpose, Reason,
};
use outdial_core::ports::{Lane, StoreError};
use outdial_core::record::{
    AppliedEvent, CallRecord, Campaign, CampaignStatus, Consent, Limits, NewCall, Pacing,
};
use outdial_core::retry::RetryPolicy;
use outdial_core::script::Script;
use outdial_core::time::Timestamp;
use serde::{Deserialize, Serialize};

pub type Item = HashMap<String, AttributeValue>;

pub const PK: &str = "PK";
pub const SK: &str = "SK";
pub const EXPIRES_AT: &str = "expires_at";
pub const BY_CAMPAIGN: &str = "byCampaign";
pub const DUE: &str = "due";
pub const BY_TRANSACTION: &str = "byTransaction";
/// The index of the account's campaigns, newest first (sparse: campaign items only).
pub const CAMPAIGNS: &str = "campaigns";
/// The `campaigns` index's partition key, set on campaign items only.
pub const LISTED: &str = "listed";
/// The one value of [`LISTED`]: every campaign is in one list.
pub const LISTED_CAMPAIGN: &str = "campaign";
/// The `campaigns` index's sort key ([`listed_key`]).
pub const LISTED_KEY: &str = "listed_key";

/// How long a call item (and its phone number) is kept after the call is created.
pub const RETENTION_SECS: i64 = 90 * 24 * 3600;
/// How long an orphan event is kept for inspection.
pub const ORPHAN_RETENTION_SECS: i64 = 30 * 24 * 3600;
/// `end_req` when no end was requested: the attribute is always present so a condition can
/// compare it in one expression.
pub const NO_END_REQUEST: &str = "none";

/// The `end_req` value of an end request, [`NO_END_REQUEST`] for none.
#[must_use]
pub fn end_req(request: Option<EndRequest>) -> &'static str {
    request.map_or(NO_END_REQUEST, EndRequest::as_str)
}

#[must_use]
pub fn call_pk(id: &CallId) -> String {
    format!("CALL#{id}")
}

pub const CALL_SK: &str = "CALL";

#[must_use]
pub fn campaign_pk(id: &CampaignId) -> String {
    format!("CAMPAIGN#{id}")
}

pub const CAMPAIGN_SK: &str = "META";

/// The campaign's counters item (`CAMPAIGN#<id>` / `COUNTERS`), kept by the stream handler.
pub const COUNTERS_SK: &str = "COUNTERS";

/// The do-not-call entry of a number (`DNC#<e164>` / `DNC`).
#[must_use]
pub fn dnc_pk(number: &E164) -> String {
    format!("DNC#{number}")
}

pub const DNC_SK: &str = "DNC";

/// A number's ledger of calls counted against the contact caps (`LEDGER#<e164>` / `LEDGER`).
#[must_use]
pub fn ledger_pk(number: &E164) -> String {
    format!("LEDGER#{number}")
}

pub const LEDGER_SK: &str = "LEDGER";

/// The caller IDs share one partition (`NUMBERS` / `NUMBER#<e164>`): a pool is read with one
/// query. Each item holds the registration (`number`, JSON, with `health_state` beside it
/// for the claim's condition) and the usage the claims write (`recent`, `day`, `day_count`,
/// `usage_version`).
pub const NUMBERS_PK: &str = "NUMBERS";

#[must_use]
pub fn number_sk(number: &E164) -> String {
    format!("NUMBER#{number}")
}

/// `health_state` of a number that may be chosen, and of one taken out of rotation (with
/// `quarantine_reason` and `quarantined_at` beside it).
pub const HEALTHY: &str = "healthy";
pub const QUARANTINED: &str = "quarantined";

/// The attributes a registration sets (its usage and health are left as they are; `healthy`
/// is the health of a new number).
///
/// # Errors
/// [`StoreError::Other`] when the registration cannot be written as JSON.
pub fn number_registration(
    number: &outdial_core::numbers::CallerNumber,
) -> Result<Vec<(&'static str, AttributeValue)>, StoreError> {
    let json = serde_json::to_string(number).map_err(|e| StoreError::Other(Box::new(e)))?;
    let attributes = vec![
        ("type", s("number")),
        ("e164", s(number.e164.as_str())),
        ("pool", s(number.pool.clone())),
        ("number", s(json)),
        ("healthy", s(HEALTHY)),
    ];
    Ok(attributes)
}

/// The usage attributes a claim writes.
#[must_use]
pub fn number_usage(usage: &outdial_core::numbers::Usage) -> Vec<(&'static str, AttributeValue)> {
    let recent = usage
        .recent
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    vec![
        ("recent", s(recent)),
        ("day", n(usage.day)),
        ("day_count", n(usage.day_count)),
        ("usage_version", n(usage.version)),
    ]
}

/// Reads a caller ID back with its usage (none yet: version 0).
///
/// # Errors
/// [`StoreError::Corrupt`] naming what is malformed.
pub fn member_from_item(item: &Item) -> Result<outdial_core::numbers::Member, StoreError> {
    use outdial_core::numbers::{CallerNumber, Member, Usage};
    let r = Reader::new(item);
    let mut number = r.parsed("number", |raw| serde_json::from_str::<CallerNumber>(raw))?;
    // The health attributes are the truth: the stream quarantines a number by them alone.
    number.health = match r.opt_s("health_state")? {
        Some("quarantined") => outdial_core::numbers::Health::Quarantined {
            reason: r.opt_s("quarantine_reason")?.unwrap_or_default().to_owned(),
            at: r.timestamp("quarantined_at")?.unwrap_or(Timestamp::EPOCH),
        },
        _ => outdial_core::numbers::Health::Healthy,
    };
    let usage = match r.opt_n::<u64>("usage_version")? {
        None => Usage::default(),
        Some(version) => Usage {
            version,
            recent: r
                .s("recent")?
                .split(',')
                .filter(|t| !t.is_empty())
                .map(|t| {
                    t.parse::<i64>()
                        .map_err(|e| r.corrupt(format!("recent: {e}")))
                })
                .collect::<Result<_, _>>()?,
            day: r.n("day")?,
            day_count: r.n("day_count")?,
        },
    };
    Ok(Member { number, usage })
}

/// The account's policy (`POLICY#account` / `POLICY`).
pub const POLICY_PK: &str = "POLICY#account";
pub const POLICY_SK: &str = "POLICY";

/// The update that puts `entry` on the do-not-call list, keeping an existing entry as it is
/// (its time and source): one entry per number, however often it is added.
#[must_use]
pub fn dnc_update(entry: &DncEntry) -> (&'static str, Vec<(&'static str, AttributeValue)>) {
    let mut values = vec![
        (":dnc_type", s("dnc")),
        (":dnc_e164", s(entry.e164.as_str())),
        (":dnc_at", n(entry.added_at.as_millis())),
        (":dnc_source", s(entry.source.code())),
    ];
    let update = match &entry.source {
        DncSource::Api => {
            "SET #type = :dnc_type, e164 = :dnc_e164, added_at = if_not_exists(added_at, :dnc_at), \
             #source = if_not_exists(#source, :dnc_source)"
        }
        DncSource::OptOut { call_id } => {
            values.push((":dnc_call", s(call_id.as_str())));
            "SET #type = :dnc_type, e164 = :dnc_e164, added_at = if_not_exists(added_at, :dnc_at), \
             #source = if_not_exists(#source, :dnc_source), call_id = if_not_exists(call_id, :dnc_call)"
        }
    };
    (update, values)
}

/// Reads a do-not-call entry back; an entry written before sources were kept is the API's.
///
/// # Errors
/// [`StoreError::Corrupt`] naming what is malformed.
pub fn dnc_from_item(item: &Item) -> Result<DncEntry, StoreError> {
    let r = Reader::new(item);
    let source = match r.opt_s("source")? {
        None | Some("api") => DncSource::Api,
        Some("opt-out") => DncSource::OptOut {
            call_id: r.parsed("call_id", CallId::parse)?,
        },
        Some(other) => return Err(r.corrupt(format!("source {other:?}"))),
    };
    Ok(DncEntry {
        e164: r.parsed("e164", E164::parse)?,
        added_at: r.timestamp("added_at")?.unwrap_or(Timestamp::EPOCH),
        source,
    })
}

/// Reads a ledger item back; no item is the empty ledger at version 0.
///
/// # Errors
/// [`StoreError::Corrupt`] naming what is malformed.
pub fn ledger_from_item(item: Option<&Item>) -> Result<Ledger, StoreError> {
    let Some(item) = item else {
        return Ok(Ledger::default());
    };
    let r = Reader::new(item);
    Ok(Ledger {
        version: r.n("version")?,
        entries: r.parsed("entries", |raw| {
            serde_json::from_str::<Vec<LedgerEntry>>(raw)
        })?,
    })
}

/// Reads the policy item back; no item is the empty policy.
///
/// # Errors
/// [`StoreError::Corrupt`] naming what is malformed.
pub fn policy_from_item(item: Option<&Item>) -> Result<(Policy, Option<Timestamp>), StoreError> {
    let Some(item) = item else {
        return Ok((Policy::default(), None));
    };
    let r = Reader::new(item);
    Ok((
        r.parsed("spec", |raw| serde_json::from_str::<Policy>(raw))?,
        r.timestamp("updated_at")?,
    ))
}

#[must_use]
pub fn status_call(status: CallStatus, id: &CallId) -> String {
    format!("{}#{id}", status.as_str())
}

/// The `due` index partition of a shard's dial lane (waiting calls).
#[must_use]
pub fn due_shard(shard: u32) -> String {
    format!("DUE#{shard}")
}

/// The `due` index partition of `lane` of a shard: `DUE#<n>` for dials, `WATCH#<n>` for
/// watchdogs and sweep requests.
#[must_use]
pub fn lane_shard(lane: Lane, shard: u32) -> String {
    match lane {
        Lane::Dial => due_shard(shard),
        Lane::Watch => format!("WATCH#{shard}"),
    }
}

#[must_use]
pub fn due_key(at: Timestamp, id: &CallId) -> String {
    format!("{}#{id}", at.sort_key())
}

/// A campaign's sort key in the `campaigns` index, `<created_at ms, 14 digits>#<campaign_id>`:
/// string order is creation order, and campaigns created in the same millisecond are ordered
/// by id. It is also the position a listing of campaigns stops at (its cursor).
#[must_use]
pub fn listed_key(created_at: Timestamp, id: &CampaignId) -> String {
    format!("{}#{id}", created_at.sort_key())
}

/// The campaign a [`listed_key`] names; `None` for text that is no such key (a cursor
/// someone made up). Any campaign's key is a position, whether the campaign exists or not.
#[must_use]
pub fn listed_campaign(key: &str) -> Option<CampaignId> {
    let (ms, id) = key.split_once('#')?;
    let digits = (14..=19).contains(&ms.len()) && ms.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| CampaignId::parse(id).ok()).flatten()
}

/// The `due` sort key of a campaign's sweep request (its status changed): it sorts before
/// every call's entry, so a dispatcher sees a pause or a cancel before it dials anything
/// else, and it names the request's time, so clearing a finished sweep never clears a newer
/// request.
#[must_use]
pub fn sweep_due_key(campaign: &CampaignId, requested: Timestamp) -> String {
    format!(
        "{}#{campaign}#{}",
        Timestamp::EPOCH.sort_key(),
        requested.sort_key()
    )
}

/// The dispatch shard a call belongs to: a stable hash (FNV-1a) of its id, so the same call
/// always lands on the same shard whatever process computes it.
#[must_use]
pub fn shard_of(id: &CallId, shards: u32) -> u32 {
    shard_of_key(id.as_str(), shards)
}

/// The dispatch shard of any item with due work (a call, or a campaign waiting for a sweep),
/// by a stable hash (FNV-1a) of its id.
#[must_use]
pub fn shard_of_key(id: &str, shards: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % shards.max(1)
}

#[must_use]
pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

#[must_use]
pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The key of an item.
#[must_use]
pub fn key(pk: String, sk: &str) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

/// A call's consent: when it was given (epoch ms) and where.
pub const CONSENT_AT: &str = "consent_at";
/// A call's contact reference, as the contact list gave it.
pub const REF: &str = "ref";
pub const CONSENT_SOURCE: &str = "consent_source";
/// Why a call is held or was skipped ([`Reason::code`]).
pub const REASON: &str = "reason";
/// The keys a callee entered at a script's questions, a list of strings in the order given.
pub const DIGITS: &str = "digits";

/// A call item's gathered keys ([`DIGITS`]); none when it has no list.
///
/// # Errors
/// [`StoreError::Corrupt`] when `digits` is not a list of strings.
pub fn digits(item: &Item) -> Result<Vec<String>, StoreError> {
    let corrupt = || StoreError::Corrupt {
        key: "call".into(),
        reason: format!("{DIGITS} is not a list of strings"),
    };
    match item.get(DIGITS) {
        None => Ok(Vec::new()),
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| v.as_s().cloned().map_err(|_| corrupt()))
            .collect(),
        Some(_) => Err(corrupt()),
    }
}

/// The part of a campaign that is not in its own attributes, stored as one JSON string.
#[derive(Debug, Serialize, Deserialize)]
struct CampaignSpec {
    name: String,
    from: E164,
    retry: RetryPolicy,
    pacing: Pacing,
    script: Script,
    #[serde(default)]
    limits: Limits,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window: Option<outdial_core::window::CallingWindow>,
    #[serde(default = "default_region")]
    default_region: String,
    #[serde(default)]
    purpose: Purpose,
    #[serde(default)]
    on_cap: OnCap,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    caller_pool: Option<outdial_core::record::PoolRef>,
}

/// The region of a campaign stored without one.
fn default_region() -> String {
    "US".to_owned()
}

/// Reads attributes of one item, naming the item in every error.
#[derive(Debug)]
pub struct Reader<'a> {
    item: &'a Item,
    key: String,
}

impl<'a> Reader<'a> {
    #[must_use]
    pub fn new(item: &'a Item) -> Self {
        let key = match (item.get(PK), item.get(SK)) {
            (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => format!("{pk}/{sk}"),
            _ => "<no key>".to_owned(),
        };
        Self { item, key }
    }

    fn corrupt(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            key: self.key.clone(),
            reason: reason.into(),
        }
    }

    /// # Errors
    /// [`StoreError::Corrupt`] when the attribute is missing or not a string.
    pub fn s(&self, name: &str) -> Result<&'a str, StoreError> {
        self.opt_s(name)?
            .ok_or_else(|| self.corrupt(format!("{name} is missing")))
    }

    /// # Errors
    /// [`StoreError::Corrupt`] when the attribute is present but not a string.
    pub fn opt_s(&self, name: &str) -> Result<Option<&'a str>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v.as_str())),
            Some(_) => Err(self.corrupt(format!("{name} is not a string"))),
        }
    }

    /// # Errors
    /// [`StoreError::Corrupt`] when the attribute is present but not a number of type `T`.
    pub fn opt_n<T: FromStr>(&self, name: &str) -> Result<Option<T>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(v)) => v
                .parse()
                .map(Some)
                .map_err(|_| self.corrupt(format!("{name} is not a valid number"))),
            Some(_) => Err(self.corrupt(format!("{name} is not a number"))),
        }
    }

    /// # Errors
    /// [`StoreError::Corrupt`] when the attribute is missing or not a number of type `T`.
    pub fn n<T: FromStr>(&self, name: &str) -> Result<T, StoreError> {
        self.opt_n(name)?
            .ok_or_else(|| self.corrupt(format!("{name} is missing")))
    }

    fn bool(&self, name: &str) -> Result<bool, StoreError> {
        match self.item.get(name) {
            None => Ok(false),
            Some(AttributeValue::Bool(b)) => Ok(*b),
            Some(_) => Err(self.corrupt(format!("{name} is not a boolean"))),
        }
    }

    fn string_map(&self, name: &str) -> Result<BTreeMap<String, String>, StoreError> {
        match self.item.get(name) {
            None => Ok(BTreeMap::new()),
            Some(AttributeValue::M(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    AttributeValue::S(v) => Ok((k.clone(), v.clone())),
                    _ => Err(self.corrupt(format!("{name}.{k} is not a string"))),
                })
                .collect(),
            Some(_) => Err(self.corrupt(format!("{name} is not a map"))),
        }
    }

    /// # Errors
    /// [`StoreError::Corrupt`] when the attribute is missing or `parse` refuses it.
    pub fn parsed<T, E: std::fmt::Display>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, StoreError> {
        let raw = self.s(name)?;
        parse(raw).map_err(|e| self.corrupt(format!("{name}: {e}")))
    }

    fn opt_parsed<T, E: std::fmt::Display>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, StoreError> {
        self.opt_s(name)?
            .map(|raw| parse(raw).map_err(|e| self.corrupt(format!("{name}: {e}"))))
            .transpose()
    }

    fn timestamp(&self, name: &str) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.opt_n::<i64>(name)?.map(Timestamp::from_millis))
    }
}

/// The item for a new, queued call.
#[must_use]
pub fn new_call_item(campaign: &Campaign, call: &NewCall, shards: u32) -> Item {
    let status = CallStatus::Queued;
    let mut item = key(call_pk(&call.id), CALL_SK);
    item.extend([
        ("type".to_owned(), s("call")),
        ("call_id".to_owned(), s(call.id.as_str())),
        ("campaign_id".to_owned(), s(campaign.id.as_str())),
        ("status_call".to_owned(), s(status_call(status, &call.id))),
        ("to".to_owned(), s(call.to.as_str())),
        ("from".to_owned(), s(campaign.from.as_str())),
        ("status".to_owned(), s(status.as_str())),
        ("attempt".to_owned(), n(Attempt::FIRST)),
        ("answered".to_owned(), AttributeValue::Bool(false)),
        ("end_req".to_owned(), s(NO_END_REQUEST)),
        (
            "due_shard".to_owned(),
            s(due_shard(shard_of(&call.id, shards))),
        ),
        ("due_key".to_owned(), s(due_key(call.due_at, &call.id))),
        ("due_at".to_owned(), n(call.due_at.as_millis())),
        ("created_at".to_owned(), n(campaign.created_at.as_millis())),
        ("updated_at".to_owned(), n(campaign.created_at.as_millis())),
        (
            EXPIRES_AT.to_owned(),
            n(campaign.created_at.as_secs() + RETENTION_SECS),
        ),
    ]);
    if let Some(tz) = &call.tz {
        item.insert("tz".to_owned(), s(tz.as_str()));
    }
    if let Some(reference) = &call.reference {
        item.insert(REF.to_owned(), s(reference.as_str()));
    }
    if let Some(consent) = &call.consent {
        item.insert(CONSENT_AT.to_owned(), n(consent.at.as_millis()));
        item.insert(CONSENT_SOURCE.to_owned(), s(consent.source.as_str()));
    }
    if !call.vars.is_empty() {
        item.insert(
            "vars".to_owned(),
            AttributeValue::M(
                call.vars
                    .iter()
                    .map(|(k, v)| (k.clone(), s(v.as_str())))
                    .collect(),
            ),
        );
    }
    item
}

/// Reads a call item back.
///
/// # Errors
/// [`StoreError::Corrupt`] naming the attribute that is missing or malformed.
pub fn call_from_item(item: &Item) -> Result<CallRecord, StoreError> {
    let r = Reader::new(item);
    let attempt = r.n::<u32>("attempt")?;
    let attempt = Attempt::new(attempt).map_err(|e| r.corrupt(e.to_string()))?;
    let last_event = match (r.opt_n::<u32>("seq_attempt")?, r.opt_n::<u64>("last_seq")?) {
        (Some(a), Some(seq)) => Some(AppliedEvent {
            attempt: Attempt::new(a).map_err(|e| r.corrupt(e.to_string()))?,
            seq: Sequence::new(seq),
            event_type: r.s("last_type")?.to_owned(),
            response: r.s("last_response")?.to_owned(),
        }),
        _ => None,
    };
    let end_request = match r.opt_s("end_req")? {
        None | Some(NO_END_REQUEST) => None,
        Some(other) => {
            Some(EndRequest::parse(other).ok_or_else(|| r.corrupt(format!("end_req {other:?}")))?)
        }
    };
    Ok(CallRecord {
        id: r.parsed("call_id", CallId::parse)?,
        campaign_id: r.parsed("campaign_id", CampaignId::parse)?,
        to: r.parsed("to", E164::parse)?,
        from: r.parsed("from", E164::parse)?,
        vars: r.string_map("vars")?,
        tz: r.opt_s("tz")?.map(str::to_owned),
        reference: r.opt_s(REF)?.map(str::to_owned),
        consent: match (r.timestamp(CONSENT_AT)?, r.opt_s(CONSENT_SOURCE)?) {
            (Some(at), Some(source)) => Some(Consent {
                at,
                source: source.to_owned(),
            }),
            _ => None,
        },
        reason: r
            .opt_s(REASON)?
            .map(|code| Reason::parse(code).ok_or_else(|| r.corrupt(format!("reason {code:?}"))))
            .transpose()?,
        status: r.parsed("status", CallStatus::from_str)?,
        attempt,
        last_event,
        answered: r.bool("answered")?,
        end_request,
        transaction_id: r.opt_parsed("transaction_id", TransactionId::parse)?,
        placed_attempt: r
            .opt_n::<u32>("placed_attempt")?
            .map(|a| Attempt::new(a).map_err(|e| r.corrupt(e.to_string())))
            .transpose()?,
        outcome: r.opt_parsed("outcome", |s| {
            serde_json::from_value::<Outcome>(serde_json::Value::String(s.to_owned()))
        })?,
        sip_code: r.opt_s("sip_code")?.map(str::to_owned),
        script_outcome: r.opt_s("script_outcome")?.map(str::to_owned),
        last_error: r.opt_s("last_error")?.map(str::to_owned),
        verdict: r.opt_parsed("verdict", |s| {
            Verdict::parse(s).ok_or_else(|| format!("unknown verdict {s:?}"))
        })?,
        greeting_ms: r.opt_n::<u32>("greeting_ms")?,
        digits: digits(item)?,
        due_at: r.timestamp("due_at")?,
        created_at: r.timestamp("created_at")?.unwrap_or(Timestamp::EPOCH),
        updated_at: r.timestamp("updated_at")?.unwrap_or(Timestamp::EPOCH),
        answered_at: r.timestamp("answered_at")?,
        ended_at: r.timestamp("ended_at")?,
        dialed_at: r.timestamp("dialed_at")?,
    })
}

/// The item for a campaign.
///
/// # Errors
/// Only if the spec cannot be serialized, which a valid [`Campaign`] never causes.
pub fn campaign_item(c: &Campaign) -> Result<Item, StoreError> {
    let spec = CampaignSpec {
        name: c.name.clone(),
        from: c.from.clone(),
        retry: c.retry.clone(),
        pacing: c.pacing,
        script: c.script.clone(),
        limits: c.limits,
        window: c.window.clone(),
        default_region: c.default_region.clone(),
        purpose: c.purpose,
        on_cap: c.on_cap,
        caller_pool: c.caller_pool.clone(),
    };
    let spec = serde_json::to_string(&spec).map_err(|e| StoreError::Other(Box::new(e)))?;
    let mut item = key(campaign_pk(&c.id), CAMPAIGN_SK);
    item.extend([
        ("type".to_owned(), s("campaign")),
        ("campaign_id".to_owned(), s(c.id.as_str())),
        ("status".to_owned(), s(c.status.as_str())),
        ("spec".to_owned(), s(spec)),
        ("contacts".to_owned(), n(c.contacts)),
        ("created_at".to_owned(), n(c.created_at.as_millis())),
        (LISTED.to_owned(), s(LISTED_CAMPAIGN)),
        (LISTED_KEY.to_owned(), s(listed_key(c.created_at, &c.id))),
    ]);
    Ok(item)
}

/// Reads a campaign item back.
///
/// # Errors
/// [`StoreError::Corrupt`] naming what is malformed.
pub fn campaign_from_item(item: &Item) -> Result<Campaign, StoreError> {
    let r = Reader::new(item);
    let spec: CampaignSpec = r.parsed("spec", |raw| serde_json::from_str::<CampaignSpec>(raw))?;
    let status = r.parsed("status", |s| {
        serde_json::from_value::<CampaignStatus>(serde_json::Value::String(s.to_owned()))
    })?;
    Ok(Campaign {
        id: r.parsed("campaign_id", CampaignId::parse)?,
        name: spec.name,
        from: spec.from,
        status,
        retry: spec.retry,
        pacing: spec.pacing,
        script: spec.script,
        limits: spec.limits,
        window: spec.window,
        default_region: spec.default_region,
        created_at: r.timestamp("created_at")?.unwrap_or(Timestamp::EPOCH),
        contacts: r.n("contacts")?,
        purpose: spec.purpose,
        on_cap: spec.on_cap,
        caller_pool: spec.caller_pool,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign() -> Campaign {
        Campaign {
            purpose: outdial_core::policy::Purpose::default(),
            on_cap: outdial_core::policy::OnCap::default(),
            caller_pool: None,
            id: CampaignId::parse("cmp_1").unwrap(),
            name: "reminders".into(),
            from: E164::parse("+15555550199").unwrap(),
            status: CampaignStatus::Active,
            retry: RetryPolicy::default(),
            pacing: Pacing::default(),
            script: serde_json::from_str(
                r#"{"start": "bye", "steps": {"bye": {"say": "Goodbye."}}}"#,
            )
            .unwrap(),
            limits: Limits::default(),
            window: None,
            default_region: "US".into(),
            created_at: Timestamp::from_millis(1_900_000_000_000),
            contacts: 1,
        }
    }

    #[test]
    fn a_new_call_reads_back_as_queued_and_due() {
        let call = NewCall {
            consent: None,
            reference: Some("PAT-0042".to_owned()),
            tz: None,
            id: CallId::parse("call_1").unwrap(),
            to: E164::parse("+15555550100").unwrap(),
            vars: BTreeMap::from([("name".to_owned(), "Ada".to_owned())]),
            due_at: Timestamp::from_millis(1_700_000_000_500),
        };
        let item = new_call_item(&campaign(), &call, 4);
        let record = call_from_item(&item).unwrap();
        assert_eq!(record.status, CallStatus::Queued);
        assert_eq!(record.attempt, Attempt::FIRST);
        assert_eq!(record.vars["name"], "Ada");
        assert_eq!(record.reference.as_deref(), Some("PAT-0042"));
        assert_eq!(record.due_at, Some(call.due_at));
        assert_eq!(record.last_event, None);
        assert_eq!(record.end_request, None);
    }

    #[test]
    fn a_campaign_round_trips_through_its_item() {
        let c = campaign();
        assert_eq!(campaign_from_item(&campaign_item(&c).unwrap()).unwrap(), c);
    }

    #[test]
    fn a_campaign_item_is_listed_by_creation_time_then_id() {
        let c = campaign();
        let item = campaign_item(&c).unwrap();
        assert_eq!(item[LISTED], s(LISTED_CAMPAIGN));
        assert_eq!(item[LISTED_KEY], s("01900000000000#cmp_1"));
        let earlier = listed_key(Timestamp::from_millis(999_999_999_999), &c.id);
        assert!(earlier < listed_key(c.created_at, &c.id), "{earlier}");
        let same_ms = |id: &str| listed_key(c.created_at, &CampaignId::parse(id).unwrap());
        assert!(same_ms("cmp_a") < same_ms("cmp_b"));
    }

    #[test]
    fn a_listed_key_names_its_campaign_and_nothing_else_does() {
        assert_eq!(
            listed_campaign("01900000000000#cmp_1"),
            Some(CampaignId::parse("cmp_1").unwrap())
        );
        for bad in [
            "",
            "#cmp_1",
            "1900000000000#cmp_1",
            "0190000000000x#cmp_1",
            "01900000000000#",
            "01900000000000#cmp#1",
            "01900000000000.cmp_1",
            "cmp_1",
        ] {
            assert_eq!(listed_campaign(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_corrupt_item_names_its_key_and_attribute() {
        let mut item = key("CALL#x".into(), CALL_SK);
        item.insert("attempt".into(), s("one"));
        let err = call_from_item(&item).unwrap_err().to_string();
        assert!(
            err.contains("CALL#x/CALL") && err.contains("attempt"),
            "{err}"
        );
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        let id = CallId::parse("call_abc").unwrap();
        assert_eq!(shard_of(&id, 4), shard_of(&id, 4));
        assert!(shard_of(&id, 4) < 4);
        assert_eq!(shard_of(&id, 0), 0);
    }
}
