//! `outdial bench amd --calls N [--json]`: answering-machine detection scored against the
//! truth. A campaign of `N` contacts whose script listens for machines runs through the whole
//! local stack (the API, the dispatcher, the SMA handler, the stream, DynamoDB Local) in real
//! time, against the simulator's mixed population of people and mailboxes
//! (`Callees::amd_mix`, `docs/simulator.md`). The simulator knows who really answered and
//! what they heard; the table holds the handler's verdicts. The bench joins the two: the
//! confusion matrix, the share of mailboxes left the whole message after their greeting, and
//! the dead air a person hears between the answer and the first prompt.
//!
//! It runs in real time (the simulator at speed 1), so the dead air includes the handler's
//! own latency and the table's, as a callee would hear them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use outdial_core::ids::CampaignId;
use outdial_core::machine::Verdict;
use outdial_local::dynamodb::Storage;
use outdial_local::sim::{Callees, SimConfig};
use outdial_stack::stack::{Database, Stack, StackConfig};
use serde::Serialize;
use serde_json::json;

use crate::campaign;
use crate::client::Client;

/// What `outdial bench amd` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AmdBench {
    pub calls: u32,
    /// Answered calls the simulator played a person on, and a mailbox on.
    pub people: u32,
    pub machines: u32,
    /// Truth by verdict: `person_as_person`, `person_as_machine`, `machine_as_machine`,
    /// `machine_as_person`, and either as `undecided` (the call ended while listening).
    pub matrix: BTreeMap<String, u32>,
    /// Verdicts by the simulator's persona: where the errors come from.
    pub by_persona: BTreeMap<String, BTreeMap<String, u32>>,
    /// Shares of the people judged machines, and of the mailboxes judged people.
    pub people_as_machines: f64,
    pub machines_as_people: f64,
    /// Share of mailboxes that got the whole message, started after their greeting (and beep)
    /// ended and not cut off.
    pub messages_whole_after_beep: f64,
    /// Mailboxes the handler hung up on without a message (the greeting never paused).
    pub messages_unheard: u32,
    /// From the answer to the first prompt a person hears, in milliseconds.
    pub dead_air_p50_ms: f64,
    pub dead_air_p95_ms: f64,
    /// The greeting lengths the handler measured, by truth: medians in milliseconds.
    pub greeting_p50_ms_people: f64,
    pub greeting_p50_ms_machines: f64,
    /// The detector's thresholds the campaign ran with.
    pub thresholds: serde_json::Value,
    pub violations: usize,
    pub double_dials: u32,
    pub elapsed_s: f64,
}

/// The reminder the bench runs, listening for machines with the default thresholds.
fn spec(calls: u32, machine: &serde_json::Value) -> serde_json::Value {
    json!({
        "name": "Voicemail detection (bench)",
        "from": "+15555550199",
        "default_region": "US",
        "pacing": {"calls_per_second": (f64::from(calls) / 100.0).clamp(2.0, 20.0), "max_concurrent": 1000},
        "retry": {"max_attempts": 1},
        "limits": {"ring_timeout_s": 60, "max_call_s": 600},
        "script": {
            "caller_name": "Riverside Clinic",
            "machine": machine,
            "start": "greet",
            "steps": {
                "greet": {"say": "Hello {{name}}, this is Riverside Clinic.", "next": "menu"},
                "menu": {"gather": {"say": "Press 1 to confirm, 2 to cancel.", "timeout_ms": 4000},
                         "branches": {"1": "confirm", "2": "decline"}, "no_input": "goodbye"},
                "confirm": {"say": "Thank you.", "outcome": "confirmed"},
                "decline": {"say": "We have cancelled it.", "outcome": "declined"},
                "goodbye": {"say": "Goodbye.", "outcome": "no_input"}
            }
        }
    })
}

/// The message left on a machine: about six seconds at the simulator's speaking rate.
const MESSAGE: &str = "Hello {{name}}, this is Riverside Clinic about Tuesday. Call us back.";

/// Runs the bench with `thresholds` merged into the script's `machine` block (none: the
/// defaults).
///
/// # Errors
/// When the stack cannot start, the API refuses the campaign, or the campaign does not end
/// within the time allowed.
pub async fn amd(calls: u32, seed: u64, thresholds: Option<&str>) -> anyhow::Result<AmdBench> {
    anyhow::ensure!(
        (10..=20_000).contains(&calls),
        "--calls must be 10 to 20000"
    );
    let mut machine = json!({"detect": true, "message": MESSAGE});
    if let Some(extra) = thresholds {
        let extra: serde_json::Value =
            serde_json::from_str(extra).context("--thresholds is a JSON object")?;
        let (Some(target), Some(fields)) = (machine.as_object_mut(), extra.as_object()) else {
            anyhow::bail!("--thresholds is a JSON object such as {{\"person_max_ms\": 2000}}");
        };
        target.extend(fields.clone());
    }
    let begun = Instant::now();
    let config = StackConfig {
        database: Database::Own(Storage::InMemory),
        sim: SimConfig {
            speed: 1.0,
            seed,
            callees: Callees::amd_mix(),
            ..SimConfig::default()
        },
        account_cps: 40.0,
        report_path: None,
        ..StackConfig::default()
    };
    let stack = Stack::start(config).await?;
    let client = Client::connect(Some(&stack.endpoints().api), Some(stack.api_token())).await?;
    let dir = std::env::temp_dir().join(format!("outdial-amd-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (spec_path, csv_path) = (dir.join("campaign.json"), dir.join("contacts.csv"));
    std::fs::write(&spec_path, spec(calls, &machine).to_string())?;
    std::fs::write(&csv_path, crate::demo::csv(calls))?;
    let started = campaign::start(&client, &spec_path, &csv_path, None).await;
    let _ = std::fs::remove_dir_all(&dir);
    let started = started?;

    // Every call terminal, by the records.
    let limit = Duration::from_secs(1_800);
    loop {
        let report = campaign::report(&client, &started.campaign_id).await?;
        let terminal: u64 = report
            .by_status
            .iter()
            .filter(|(s, _)| {
                s.parse::<outdial_core::lifecycle::CallStatus>()
                    .is_ok_and(outdial_core::lifecycle::CallStatus::is_terminal)
            })
            .map(|(_, n)| *n)
            .sum();
        if terminal >= started.accepted {
            break;
        }
        anyhow::ensure!(
            begun.elapsed() < limit,
            "the campaign did not end within {} s",
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let elapsed_s = begun.elapsed().as_secs_f64();

    // The handler's verdicts, by number.
    let campaign_id = CampaignId::parse(&started.campaign_id)?;
    let mut judged: BTreeMap<String, (Option<Verdict>, Option<u32>)> = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = stack
            .store()
            .list_calls(&campaign_id, None, 500, cursor.as_deref())
            .await?;
        for call in page.items {
            judged.insert(
                call.to.as_str().to_owned(),
                (call.verdict, call.greeting_ms),
            );
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let sim = stack.simulator().report();
    stack.stop().await?;
    Ok(score(calls, &sim, &judged, machine, elapsed_s))
}

/// Joins what the simulator played with what the handler judged.
fn score(
    calls: u32,
    sim: &outdial_local::sim::Report,
    judged: &BTreeMap<String, (Option<Verdict>, Option<u32>)>,
    thresholds: serde_json::Value,
    elapsed_s: f64,
) -> AmdBench {
    let mut matrix: BTreeMap<String, u32> = BTreeMap::new();
    let mut by_persona: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    let (mut people, mut machines, mut whole, mut unheard) = (0u32, 0u32, 0u32, 0u32);
    let mut dead_air = Vec::new();
    let (mut greeting_people, mut greeting_machines) = (Vec::new(), Vec::new());
    for call in &sim.calls {
        let Some(audio) = &call.audio else { continue };
        let is_machine = audio.truth == "machine";
        let (verdict, greeting) = judged.get(&call.to).copied().unwrap_or((None, None));
        let verdict = verdict.map_or("none", Verdict::as_str);
        let truth = if is_machine { "machine" } else { "person" };
        *matrix.entry(format!("{truth}_as_{verdict}")).or_insert(0) += 1;
        *by_persona
            .entry(audio.persona.clone())
            .or_default()
            .entry(verdict.to_owned())
            .or_insert(0) += 1;
        if let Some(ms) = greeting {
            if is_machine {
                greeting_machines.push(f64::from(ms));
            } else {
                greeting_people.push(f64::from(ms));
            }
        }
        if is_machine {
            machines += 1;
            if audio.whole_after_greeting() {
                whole += 1;
            }
            if audio.message.is_empty() && verdict == "machine" {
                unheard += 1;
            }
        } else {
            people += 1;
            if let Some(ms) = audio.first_prompt_ms {
                #[allow(clippy::cast_precision_loss)]
                dead_air.push(ms as f64);
            }
        }
    }
    let share = |n: u32, of: u32| {
        if of == 0 {
            0.0
        } else {
            round(f64::from(n) / f64::from(of), 4)
        }
    };
    let count = |key: &str| matrix.get(key).copied().unwrap_or(0);
    AmdBench {
        calls,
        people,
        machines,
        people_as_machines: share(count("person_as_machine"), people),
        machines_as_people: share(count("machine_as_person"), machines),
        messages_whole_after_beep: share(whole, machines),
        messages_unheard: unheard,
        dead_air_p50_ms: round(quantile(&mut dead_air, 0.5), 0),
        dead_air_p95_ms: round(quantile(&mut dead_air, 0.95), 0),
        greeting_p50_ms_people: round(quantile(&mut greeting_people, 0.5), 0),
        greeting_p50_ms_machines: round(quantile(&mut greeting_machines, 0.5), 0),
        matrix,
        by_persona,
        thresholds,
        violations: sim.violations.len(),
        double_dials: sim.double_dials,
        elapsed_s: round(elapsed_s, 1),
    }
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// The `q` quantile (nearest rank) of `values`; 0 when there are none.
fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// The bench as text.
#[must_use]
pub fn text(b: &AmdBench) -> String {
    let count = |key: &str| b.matrix.get(key).copied().unwrap_or(0);
    format!(
        "{calls} calls: {people} people, {machines} mailboxes answered\n\
         \n\
         truth \\ verdict   person  machine  undecided\n\
         person           {pp:>6}  {pm:>7}  {pu:>9}\n\
         machine          {mp:>6}  {mm:>7}  {mu:>9}\n\
         \n\
         people judged machines: {pam:.2}%; mailboxes judged people: {map:.2}%\n\
         mailboxes left the whole message after their greeting: {whole:.2}% ({unheard} hung up on unheard)\n\
         dead air before a person's first prompt: p50 {p50} ms, p95 {p95} ms\n\
         measured greetings, median: people {gp} ms, mailboxes {gm} ms\n\
         by persona: {personas}\n\
         {violations} contract violations, {double} double dials, {elapsed} s",
        calls = b.calls,
        people = b.people,
        machines = b.machines,
        pp = count("person_as_person"),
        pm = count("person_as_machine"),
        pu = count("person_as_undecided"),
        mp = count("machine_as_person"),
        mm = count("machine_as_machine"),
        mu = count("machine_as_undecided"),
        pam = b.people_as_machines * 100.0,
        map = b.machines_as_people * 100.0,
        whole = b.messages_whole_after_beep * 100.0,
        unheard = b.messages_unheard,
        p50 = b.dead_air_p50_ms,
        p95 = b.dead_air_p95_ms,
        gp = b.greeting_p50_ms_people,
        gm = b.greeting_p50_ms_machines,
        personas = b
            .by_persona
            .iter()
            .map(|(p, v)| format!("{p} {v:?}"))
            .collect::<Vec<_>>()
            .join("; "),
        violations = b.violations,
        double = b.double_dials,
        elapsed = b.elapsed_s,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let mut v = vec![5.0, 1.0, 3.0, 2.0, 4.0];
        assert!((quantile(&mut v, 0.5) - 3.0).abs() < f64::EPSILON);
        assert!((quantile(&mut v, 0.95) - 5.0).abs() < f64::EPSILON);
        assert!(quantile(&mut [], 0.5).abs() < f64::EPSILON);
    }

    #[test]
    fn the_bench_campaign_is_one_the_api_accepts() {
        let machine = json!({"detect": true, "message": MESSAGE});
        let spec = spec(2000, &machine);
        let script: outdial_core::script::Script =
            serde_json::from_value(spec["script"].clone()).unwrap();
        script.check_identification().unwrap();
        assert!(script.machine().is_some());
    }
}
