//! The callees' voices, `RecordAudio` against them, the audio report and the simulator's
//! clock, each shown by a handler that times its calls as an answering-machine detector does.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use outdial_adapters::dialer::ChimeDialer;
use outdial_core::ids::{E164, TransactionId};
use outdial_core::ports::Dialer;
use outdial_core::time::Clock;
use outdial_local::sim::{
    AudioReport, Callee, Callees, Invoke, Report, SimConfig, SimTime, Simulator, StopBy, Truth,
    voice_client,
};
use serde_json::{Value, json};

/// What a handler answers one event with, given the event and the clock's reading (ms).
type Script = dyn Fn(&Value, i64, &mut Calls) -> Value + Send + Sync;

/// What the handler knows per call (by `TransactionId`): the clock at each event type.
#[derive(Debug, Default)]
struct Calls {
    events: BTreeMap<String, Vec<(String, i64)>>,
    answered_at: BTreeMap<String, i64>,
    recordings: BTreeMap<String, Vec<i64>>,
}

/// A handler that reads the simulator's clock at each event, answers as `script` says, and
/// takes `delay(event)` of real time to do so.
struct Timed {
    clock: Arc<OnceLock<Arc<dyn Clock>>>,
    calls: Arc<Mutex<Calls>>,
    script: Box<Script>,
    delay: Box<dyn Fn(&Value) -> Duration + Send + Sync>,
}

impl Invoke for Timed {
    fn invoke(&self, event: Value) -> BoxFuture<'static, Result<Value, String>> {
        let now = self.clock.get().map_or(0, |c| c.now().as_millis());
        let answer = {
            let mut calls = self.calls.lock().unwrap();
            let tx = event["CallDetails"]["TransactionId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let kind = event["InvocationEventType"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            calls.events.entry(tx).or_default().push((kind, now));
            (self.script)(&event, now, &mut calls)
        };
        let delay = (self.delay)(&event);
        async move {
            tokio::time::sleep(delay).await;
            Ok(answer)
        }
        .boxed()
    }
}

fn actions(list: Vec<Value>) -> Value {
    json!({"SchemaVersion": "1.0", "Actions": list})
}

fn record(silence_s: Option<u64>, duration_s: Option<u64>) -> Value {
    let mut params = json!({"CallId": "leg-a", "RecordingTerminators": ["#"],
        "RecordingDestination": {"Type": "S3", "BucketName": "amd-bucket", "Prefix": "amd/"}});
    if let Some(s) = silence_s {
        params["SilenceDurationInSeconds"] = json!(s);
    }
    if let Some(d) = duration_s {
        params["DurationInSeconds"] = json!(d);
    }
    json!({"Type": "RecordAudio", "Parameters": params})
}

fn speak(text: &str) -> Value {
    json!({"Type": "Speak", "Parameters": {"CallId": "leg-a", "Text": text}})
}

fn hangup() -> Value {
    json!({"Type": "Hangup", "Parameters": {"SipResponseCode": "0"}})
}

/// 100 characters: 6 s of speech at 60 ms a character.
const MESSAGE: &str = "This is a reminder of your appointment tomorrow at ten. Call us back to change it. Goodbye now......";

/// The detector of the brief: `RecordAudio` (silence 1 s, at most 4 s) on the answer; a
/// recording that ran 3.5 s or more is a machine, which gets a second `RecordAudio` (silence
/// 2 s, at most 30 s) to wait out the greeting and its beep, then the message and a hang-up;
/// a person gets the message at once.
fn detector(event: &Value, now: i64, calls: &mut Calls) -> Value {
    let tx = event["CallDetails"]["TransactionId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    match event["InvocationEventType"].as_str().unwrap_or_default() {
        "CALL_ANSWERED" => {
            calls.answered_at.insert(tx, now);
            actions(vec![record(Some(1), Some(4))])
        }
        "ACTION_SUCCESSFUL" if event["ActionData"]["Type"] == "RecordAudio" => {
            let answered = calls.answered_at[&tx];
            let done = calls.recordings.entry(tx).or_default();
            done.push(now - answered);
            match done.len() {
                1 if now - answered >= 3_500 => actions(vec![record(Some(2), Some(30))]),
                _ => actions(vec![speak(MESSAGE), hangup()]),
            }
        }
        _ => actions(Vec::new()),
    }
}

struct Run {
    sim: Simulator,
    dialer: ChimeDialer,
    calls: Arc<Mutex<Calls>>,
}

async fn start(
    time: SimTime,
    by_number: Vec<(&str, Callee)>,
    script: Box<Script>,
    delay: Box<dyn Fn(&Value) -> Duration + Send + Sync>,
) -> Run {
    let config = SimConfig {
        speed: 0.001,
        time,
        callees: Callees {
            by_number: by_number
                .into_iter()
                .map(|(n, c)| (n.to_owned(), c))
                .collect(),
            mix: Vec::new(),
        },
        ..SimConfig::default()
    };
    let clock = Arc::new(OnceLock::new());
    let calls = Arc::new(Mutex::new(Calls::default()));
    let handler = Timed {
        clock: Arc::clone(&clock),
        calls: Arc::clone(&calls),
        script,
        delay,
    };
    let sim = Simulator::start(config, "sma-test", Arc::new(handler))
        .await
        .unwrap();
    clock.set(sim.clock()).unwrap();
    let dialer = ChimeDialer::new(voice_client(&sim.endpoint()), "sma-test");
    Run { sim, dialer, calls }
}

async fn dial(dialer: &ChimeDialer, to: &str) -> TransactionId {
    dialer
        .place(
            &E164::parse("+15555550199").unwrap(),
            &E164::parse(to).unwrap(),
            BTreeMap::new(),
        )
        .await
        .unwrap()
}

fn audio_of<'a>(report: &'a Report, to: &str) -> &'a AudioReport {
    report
        .audio()
        .find(|(c, _)| c.to == to)
        .map(|(_, a)| a)
        .unwrap_or_else(|| panic!("no audio for {to}: {:#?}", report.calls))
}

fn person(hello_ms: u64) -> Callee {
    Callee::Person {
        after_ms: 1_000,
        hello_ms: Some(hello_ms),
        digits: None,
    }
}

fn mailbox(greeting_ms: u64, beep: bool, record_ms: u64) -> Callee {
    Callee::Voicemail {
        after_ms: 2_000,
        record_ms,
        greeting_ms: Some(greeting_ms),
        beep,
    }
}

#[tokio::test]
async fn on_virtual_time_a_detector_times_its_recordings_exactly_whatever_its_latency() {
    let run = start(
        SimTime::Virtual,
        vec![
            ("+15555550101", person(1_200)),
            ("+15555550102", Callee::Silent { after_ms: 3_000 }),
            ("+15555550103", mailbox(9_000, true, 60_000)),
            (
                "+15555550104",
                Callee::LongHello {
                    after_ms: 500,
                    hello_ms: None,
                },
            ),
        ],
        Box::new(detector),
        // A handler that takes 20 ms of real time: none of it is simulated time.
        Box::new(|_| Duration::from_millis(20)),
    )
    .await;
    let numbers = [
        "+15555550101",
        "+15555550102",
        "+15555550103",
        "+15555550104",
    ];
    let dials = numbers.iter().map(|to| dial(&run.dialer, to));
    let transactions: Vec<TransactionId> = futures::future::join_all(dials).await;
    assert!(run.sim.wait_idle(Duration::from_secs(60)).await);
    let report = run.sim.report();
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    let calls = run.calls.lock().unwrap();
    let recordings = |i: usize| calls.recordings[transactions[i].as_str()].clone();

    // The person's "Hello?" of 1.2 s, then 1 s of silence.
    assert_eq!(recordings(0), [2_200]);
    // Silence from the start.
    assert_eq!(recordings(1), [1_000]);
    // The greeting runs past 4 s: the duration stops it; the second recording stops 2 s
    // after the beep.
    let machine = audio_of(&report, "+15555550103");
    assert_eq!(machine.truth, Truth::Machine);
    assert_eq!(machine.persona, "voicemail");
    assert_eq!(machine.greeting_ms, Some(9_000));
    let beep = machine.beep_at_ms.unwrap();
    assert!((9_200..=9_800).contains(&beep), "{beep}");
    let end = machine.greeting_end_ms;
    assert!((beep + 400..=beep + 600).contains(&end));
    assert_eq!(recordings(2), [4_000, i64::try_from(end).unwrap() + 2_000]);
    let stops: Vec<(u64, u64, StopBy)> = machine
        .recordings
        .iter()
        .map(|r| (r.started_ms, r.ended_ms, r.stopped_by))
        .collect();
    assert_eq!(
        stops,
        [
            (0, 4_000, StopBy::Duration),
            (4_000, end + 2_000, StopBy::Silence)
        ]
    );
    let message = &machine.message;
    assert_eq!(message.len(), 1);
    assert_eq!(message[0].started_ms, end + 2_000);
    assert_eq!(message[0].ended_ms, end + 2_000 + 6_000);
    assert!(!message[0].cut);
    assert!(machine.whole_after_greeting && machine.whole_after_greeting());
    assert!(machine.truth == "machine", "the truth reads as its word");
    assert_eq!(machine.first_prompt_ms, Some(end + 2_000));
    // A long hello looks like a machine to this detector: the bench's kind of mistake.
    assert_eq!(recordings(3), [4_000, 6_000]);

    let hello = audio_of(&report, "+15555550101");
    assert_eq!(hello.truth, Truth::Person);
    assert_eq!(hello.hello_ms, Some(1_200));
    assert_eq!(hello.greeting_end_ms, 1_200);
    assert_eq!(
        hello.first_prompt_ms,
        Some(2_200),
        "the dead air after the hello"
    );
    assert!(hello.message.is_empty() && !hello.whole_after_greeting());
    let silent = audio_of(&report, "+15555550102");
    assert_eq!(
        (silent.persona.as_str(), silent.hello_ms),
        ("silent", Some(0))
    );
    assert_eq!(silent.first_prompt_ms, Some(1_000));
    assert_eq!(audio_of(&report, "+15555550104").persona, "long-hello");

    // The clock the handler read is the simulator's, and each call's events lie on it as the
    // call's own simulated time says.
    let events = &calls.events[transactions[0].as_str()];
    let at = |kind: &str| events.iter().find(|(k, _)| k == kind).unwrap().1;
    assert_eq!(at("CALL_ANSWERED") - at("RINGING"), 1_000, "{events:?}");
    assert_eq!(at("HANGUP") - at("CALL_ANSWERED"), 2_200 + 6_000);
}

#[tokio::test]
async fn a_recording_reports_where_it_went_and_the_key_that_stopped_it() {
    let script = |event: &Value, _: i64, _: &mut Calls| match event["InvocationEventType"]
        .as_str()
        .unwrap_or_default()
    {
        "CALL_ANSWERED" => actions(vec![
            json!({"Type": "ReceiveDigits", "Parameters": {"InputDigitsRegex": "^#$",
                "InBetweenDigitsDurationInMilliseconds": 0, "FlushDigitsDurationInMilliseconds": 1000}}),
            record(Some(3), Some(10)),
        ]),
        "ACTION_SUCCESSFUL"
            if event["ActionData"]["RecordingDestination"]["Key"]
                .as_str()
                .is_some_and(|k| k.ends_with("-1.wav")) =>
        {
            let mut second = record(None, Some(2));
            second["Parameters"]["RecordingTerminators"] = json!(["*"]);
            actions(vec![second])
        }
        "ACTION_SUCCESSFUL" => actions(vec![hangup()]),
        _ => actions(Vec::new()),
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&seen);
    let run = start(
        SimTime::Virtual,
        vec![(
            "+15555550105",
            Callee::OptsOut {
                after_ms: 1_000,
                hello_ms: Some(500),
            },
        )],
        Box::new(move |event, now, calls| {
            kept.lock().unwrap().push(event.clone());
            script(event, now, calls)
        }),
        Box::new(|_| Duration::ZERO),
    )
    .await;
    let tx = dial(&run.dialer, "+15555550105").await;
    assert!(run.sim.wait_idle(Duration::from_secs(30)).await);
    let seen = seen.lock().unwrap();
    let done: Vec<&Value> = seen
        .iter()
        .filter(|e| {
            e["InvocationEventType"] == "ACTION_SUCCESSFUL"
                && e["ActionData"]["Type"] == "RecordAudio"
        })
        .collect();
    assert_eq!(done.len(), 2, "{seen:#?}");
    let first = &done[0]["ActionData"];
    assert_eq!(first["Parameters"]["SilenceDurationInSeconds"], 3);
    assert_eq!(first["RecordingTerminatorUsed"], "#", "{first:#}");
    let destination = &first["RecordingDestination"];
    assert_eq!(destination["Type"], "S3");
    assert_eq!(destination["BucketName"], "amd-bucket");
    let key = destination["Key"].as_str().unwrap();
    assert!(
        key.starts_with("amd/") && key.ends_with(".wav") && key.contains(tx.as_str()),
        "{key}"
    );
    // The second: the callee presses # again, but only * ends this one: its duration stopped
    // it, and it went under another key.
    let second = &done[1]["ActionData"];
    assert!(
        second.get("RecordingTerminatorUsed").is_none(),
        "{second:#}"
    );
    assert_ne!(second["RecordingDestination"]["Key"], destination["Key"]);
    let audio = &run.sim.report().calls[0].audio.clone().unwrap();
    let stops: Vec<StopBy> = audio.recordings.iter().map(|r| r.stopped_by).collect();
    assert_eq!(stops, [StopBy::Terminator, StopBy::Duration]);
    assert_eq!(audio.recordings[0].ended_ms, 1_000);
}

/// A handler that plays `list` on the answer and nothing else.
fn plays(list: Vec<Value>) -> Box<Script> {
    Box::new(move |event: &Value, _: i64, _: &mut Calls| {
        match event["InvocationEventType"].as_str().unwrap_or_default() {
            "CALL_ANSWERED" => actions(list.clone()),
            _ => actions(Vec::new()),
        }
    })
}

#[tokio::test]
async fn a_mailbox_hangs_up_when_nothing_is_played_and_cuts_what_outlasts_its_recording() {
    // Nothing played: the mailbox gives up 8 s after its greeting (no beep: its last word).
    let run = start(
        SimTime::Virtual,
        vec![("+15555550106", mailbox(5_000, false, 60_000))],
        plays(Vec::new()),
        Box::new(|_| Duration::ZERO),
    )
    .await;
    dial(&run.dialer, "+15555550106").await;
    assert!(run.sim.wait_idle(Duration::from_secs(30)).await);
    let report = run.sim.report();
    let audio = audio_of(&report, "+15555550106");
    assert_eq!(audio.persona, "voicemail-no-beep");
    assert_eq!((audio.beep_at_ms, audio.greeting_end_ms), (None, 5_000));
    assert_eq!(audio.hung_up_ms, Some(5_000 + 8_000));
    assert!(audio.message.is_empty() && !audio.whole_after_greeting);
    assert_eq!(audio.first_prompt_ms, None);

    // Spoken at once over the greeting, and for longer than the mailbox records: the
    // message starts before the greeting ends, and the mailbox hangs up in its middle.
    let run = start(
        SimTime::Virtual,
        vec![("+15555550107", mailbox(3_000, false, 5_000))],
        plays(vec![speak(&"x".repeat(200)), hangup()]),
        Box::new(|_| Duration::ZERO),
    )
    .await;
    dial(&run.dialer, "+15555550107").await;
    assert!(run.sim.wait_idle(Duration::from_secs(30)).await);
    let report = run.sim.report();
    let audio = audio_of(&report, "+15555550107");
    assert_eq!(audio.message.len(), 1);
    let prompt = audio.message[0];
    assert_eq!((prompt.started_ms, prompt.ended_ms), (0, 3_000 + 5_000));
    assert!(prompt.cut);
    assert!(!audio.whole_after_greeting && !audio.whole_after_greeting());
    assert_eq!(audio.hung_up_ms, Some(8_000));
    let call = &report.calls[0];
    assert!(
        call.transcript
            .iter()
            .any(|l| l.contains("mailbox hangs up")),
        "{:#?}",
        call.transcript
    );
}

#[tokio::test]
async fn on_virtual_time_an_update_wakes_a_ringing_call_at_once() {
    // One call holds the clock still (its handler takes 1.5 s of real time to answer its
    // first event) while another rings for 25 s and gets an update asking to hang up.
    let holder = "+15555550108";
    let ringing = "+15555550109";
    let script = |event: &Value, _: i64, _: &mut Calls| {
        if event["InvocationEventType"] == "CALL_UPDATE_REQUESTED" {
            actions(vec![hangup()])
        } else {
            actions(Vec::new())
        }
    };
    let run = start(
        SimTime::Virtual,
        vec![
            (holder, Callee::Busy),
            (ringing, Callee::NoAnswer { ring_ms: 25_000 }),
        ],
        Box::new(script),
        Box::new(move |event: &Value| {
            let to = event["CallDetails"]["Participants"][0]["To"].as_str();
            if to == Some(holder) && event["InvocationEventType"] == "NEW_OUTBOUND_CALL" {
                Duration::from_millis(1_500)
            } else {
                Duration::ZERO
            }
        }),
    )
    .await;
    dial(&run.dialer, holder).await;
    let tx = dial(&run.dialer, ringing).await;
    let rang = || {
        run.calls
            .lock()
            .unwrap()
            .events
            .get(tx.as_str())
            .is_some_and(|e| e.iter().any(|(k, _)| k == "RINGING"))
    };
    for _ in 0..100 {
        if rang() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(rang(), "the call rings while the holder holds the clock");
    run.dialer
        .update(
            &tx,
            BTreeMap::from([("hang_up".to_owned(), "yes".to_owned())]),
        )
        .await
        .unwrap();
    assert!(run.sim.wait_idle(Duration::from_secs(30)).await);
    let calls = run.calls.lock().unwrap();
    let events = &calls.events[tx.as_str()];
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "NEW_OUTBOUND_CALL",
            "RINGING",
            "CALL_UPDATE_REQUESTED",
            "HANGUP"
        ]
    );
    let at = |kind: &str| events.iter().find(|(k, _)| k == kind).unwrap().1;
    assert_eq!(
        at("CALL_UPDATE_REQUESTED"),
        at("RINGING"),
        "no time passed while the holder was awake"
    );
}

#[tokio::test]
async fn the_scaled_clock_runs_at_speed() {
    let run = start(
        SimTime::Scaled,
        Vec::new(),
        plays(Vec::new()),
        Box::new(|_| Duration::ZERO),
    )
    .await;
    let clock = run.sim.clock();
    let before = clock.now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // At 1/1000 of real time, 50 ms of real time is 50 s of simulated time.
    let passed = clock.now().since(before);
    assert!(
        passed >= Duration::from_secs(45) && passed < Duration::from_secs(600),
        "{passed:?}"
    );
    // And a simulated second on it is a real millisecond.
    let started = std::time::Instant::now();
    clock.sleep(Duration::from_secs(1)).await;
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn many_calls_at_once_on_virtual_time_each_see_their_own_exact_timings() {
    let config = SimConfig {
        time: SimTime::Virtual,
        seed: 7,
        callees: Callees::amd_mix(),
        ..SimConfig::default()
    };
    let clock = Arc::new(OnceLock::new());
    let calls = Arc::new(Mutex::new(Calls::default()));
    let handler = Timed {
        clock: Arc::clone(&clock),
        calls: Arc::clone(&calls),
        script: Box::new(detector),
        // Latencies that differ from event to event.
        delay: Box::new(|event: &Value| {
            Duration::from_millis(event["Sequence"].as_u64().unwrap_or(0) % 4 * 5)
        }),
    };
    let sim = Simulator::start(config, "sma-test", Arc::new(handler))
        .await
        .unwrap();
    clock.set(sim.clock()).unwrap();
    let dialer = ChimeDialer::new(voice_client(&sim.endpoint()), "sma-test");
    let numbers: Vec<String> = (0..40).map(|i| format!("+1555444{i:04}")).collect();
    futures::future::join_all(numbers.iter().map(|to| dial(&dialer, to))).await;
    assert!(sim.wait_idle(Duration::from_secs(60)).await);
    let report = sim.report();
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    let calls = calls.lock().unwrap();
    let mut machines = 0;
    let mut hung_up = 0;
    for (call, audio) in report.audio() {
        // Someone who will not wait through silence hangs up halfway through the first
        // recording: it never ends, so neither side has a length for it.
        let Some(measured) = calls.recordings.get(&call.transaction_id) else {
            assert_eq!(audio.persona, "hangs-up", "{}: {audio:#?}", call.to);
            assert!(audio.recordings.is_empty() && audio.hung_up_ms.is_some());
            hung_up += 1;
            continue;
        };
        // The handler's clock and the call's own time line agree to the millisecond.
        let reported: Vec<i64> = audio
            .recordings
            .iter()
            .map(|r| i64::try_from(r.ended_ms - r.started_ms).unwrap())
            .collect();
        let mut on_clock = vec![measured[0]];
        on_clock.extend(measured.windows(2).map(|w| w[1] - w[0]));
        assert_eq!(on_clock, reported, "{}: {audio:#?}", call.to);
        if audio.truth == Truth::Person {
            let hello = audio.hello_ms.unwrap();
            let expected = if hello == 0 {
                1_000
            } else {
                (hello + 1_000).min(4_000)
            };
            assert_eq!(audio.recordings[0].ended_ms, expected, "{}", call.to);
        } else {
            machines += 1;
            assert!(
                audio.greeting_ms.is_some()
                    && audio.beep_at_ms.is_some() == (audio.persona != "voicemail-no-beep")
            );
        }
    }
    assert_eq!(
        report.audio().count(),
        40,
        "every callee of the mix answers"
    );
    assert!((5..=25).contains(&machines), "{machines}");
    // Seed 7 draws some of them among the 40.
    assert!((1..10).contains(&hung_up), "{hung_up}");
}
