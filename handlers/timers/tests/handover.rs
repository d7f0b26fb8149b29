//! The hand-over between two dispatcher runs on one shard, as two Lambda invocations make it:
//! separate dispatchers (separate processes in AWS, sharing only the table), on the in-memory
//! store and Voice API and a virtual clock. The run that ends hands the shard over as it stops
//! booking dials, with its pacers' marks; the next run, already waiting, books on from them.
//! At the Voice API the dial rate neither pauses nor crowds a second at the hand-over.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on what it did not expect

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outdial_adapters::memory::{MemoryDialer, MemoryStore};
use outdial_core::ids::{CallId, CampaignId, E164, TransactionId};
use outdial_core::ports::{DialError, Dialer};
use outdial_core::record::{Campaign, CampaignStatus, Limits, NewCall, Pacing};
use outdial_core::retry::RetryPolicy;
use outdial_core::time::{Clock, ManualClock, Timestamp};
use outdial_timers::{Dispatcher, Run, Settings};

const T0: Timestamp = Timestamp::from_millis(1_900_000_000_000);
const RATE: f64 = 10.0;
const CALLS: u32 = 60;

/// The in-memory Voice API, noting when (on the virtual clock) each dial reached it.
#[derive(Clone)]
struct TimedDialer {
    inner: MemoryDialer,
    clock: Arc<ManualClock>,
    at: Arc<Mutex<Vec<Timestamp>>>,
}

impl Dialer for TimedDialer {
    async fn place(
        &self,
        from: &E164,
        to: &E164,
        arguments: BTreeMap<String, String>,
    ) -> Result<TransactionId, DialError> {
        self.at.lock().unwrap().push(self.clock.now());
        self.inner.place(from, to, arguments).await
    }

    async fn update(
        &self,
        transaction: &TransactionId,
        arguments: BTreeMap<String, String>,
    ) -> Result<(), DialError> {
        self.inner.update(transaction, arguments).await
    }
}

fn campaign() -> Campaign {
    Campaign {
        purpose: outdial_core::policy::Purpose::default(),
        on_cap: outdial_core::policy::OnCap::default(),
        caller_pool: None,
        id: CampaignId::random(),
        name: "hand-over".into(),
        from: E164::parse("+15555550199").unwrap(),
        status: CampaignStatus::Active,
        retry: RetryPolicy::default(),
        pacing: Pacing {
            calls_per_second: RATE,
            // No stream handler gives slots back here: the cap must not bind.
            max_concurrent: CALLS,
        },
        script: serde_json::from_str(r#"{"start": "a", "steps": {"a": {"say": "Hello."}}}"#)
            .unwrap(),
        limits: Limits::default(),
        window: None,
        default_region: "US".into(),
        created_at: T0,
        contacts: 0,
    }
}

/// Lets every task that can run do so, then moves the clock to the next sleep's end, until
/// `done` says both runs are over.
async fn drive(clock: &ManualClock, done: impl Fn() -> bool) {
    for _ in 0..100_000 {
        for _ in 0..64 {
            tokio::task::yield_now().await;
        }
        if done() {
            return;
        }
        if let Some(at) = clock.next_wake() {
            clock.set(at);
        }
    }
    panic!("the runs did not end");
}

#[tokio::test(flavor = "current_thread")]
async fn the_next_run_takes_the_shard_as_the_last_stops_booking_and_the_rate_goes_on_evenly() {
    let store = MemoryStore::new(1);
    let clock = Arc::new(ManualClock::at(T0));
    let at = Arc::new(Mutex::new(Vec::new()));
    let campaign = campaign();
    let calls: Vec<NewCall> = (0..CALLS)
        .map(|i| NewCall {
            consent: None,
            reference: None,
            tz: None,
            id: CallId::random(),
            to: E164::parse(&format!("+1555{i:07}")).unwrap(),
            vars: BTreeMap::new(),
            due_at: T0,
        })
        .collect();
    store.create_campaign(&campaign, &calls).await.unwrap();
    let dispatcher = || {
        Dispatcher::new(
            store.clone(),
            TimedDialer {
                inner: MemoryDialer::new(),
                clock: Arc::clone(&clock),
                at: Arc::clone(&at),
            },
            clock.clone(),
            Settings {
                account_cps: 100.0,
                legal_hours: false,
                ..Settings::default()
            },
        )
    };
    // Two invocations, as the schedule makes them: the first until T0 + 3 s, the next one
    // started a second later (it waits for the shard) and lasting past the campaign's end.
    let (first, next) = (dispatcher(), dispatcher());
    let ended: Mutex<[Option<Option<Run>>; 2]> = Mutex::new([None, None]);
    let first_run = async {
        let run = first
            .run(0, "first", T0.plus(Duration::from_secs(3)), Duration::ZERO)
            .await
            .unwrap();
        ended.lock().unwrap()[0] = Some(run);
    };
    let next_run = async {
        clock.sleep(Duration::from_secs(1)).await;
        let run = next
            .run(
                0,
                "next",
                T0.plus(Duration::from_secs(9)),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        ended.lock().unwrap()[1] = Some(run);
    };
    let both_ended = || ended.lock().unwrap().iter().all(Option::is_some);
    tokio::join!(first_run, next_run, drive(&clock, both_ended));

    let [Some(Some(first)), Some(Some(next))] = ended.into_inner().unwrap() else {
        panic!("both runs held the shard in turn");
    };
    assert!(!first.followed);
    assert!(
        next.followed,
        "the next run went on from the first one's marks"
    );
    assert_eq!(first.started + next.started, CALLS);
    assert!(
        first.started >= 20 && next.started >= 20,
        "{first:?} {next:?}"
    );

    let at = at.lock().unwrap().clone();
    assert_eq!(at.len(), CALLS as usize, "every call dialed once");
    // The pacer's interval at 10 a second, with its 1% margin, on a millisecond clock.
    let gaps: Vec<u128> = at
        .windows(2)
        .map(|w| w[1].since(w[0]).as_millis())
        .collect();
    assert!(
        gaps.iter().all(|gap| (101..=102).contains(gap)),
        "no pause and no crowding at the hand-over: {gaps:?}"
    );
    for (i, start) in at.iter().enumerate() {
        let in_second = at[i..]
            .iter()
            .take_while(|t| t.since(*start) < Duration::from_secs(1))
            .count();
        assert!(
            in_second <= 10,
            "{in_second} dials in the second from {start:?}"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn each_shard_dials_its_own_share_of_the_account_rate_and_together_never_more_than_it() {
    let store = MemoryStore::new(2);
    let clock = Arc::new(ManualClock::at(T0));
    let at = Arc::new(Mutex::new(Vec::new()));
    let campaign = Campaign {
        pacing: Pacing {
            calls_per_second: 100.0,
            max_concurrent: 200,
        },
        ..campaign()
    };
    let calls: Vec<NewCall> = (0..200)
        .map(|i| NewCall {
            consent: None,
            reference: None,
            tz: None,
            id: CallId::random(),
            to: E164::parse(&format!("+1555{i:07}")).unwrap(),
            vars: BTreeMap::new(),
            due_at: T0,
        })
        .collect();
    store.create_campaign(&campaign, &calls).await.unwrap();
    // The account's 10 calls a second split over two shards, as the timers function splits
    // it; one dispatcher runs both, as one invocation does.
    let dispatcher = Dispatcher::new(
        store.clone(),
        TimedDialer {
            inner: MemoryDialer::new(),
            clock: Arc::clone(&clock),
            at: Arc::clone(&at),
        },
        clock.clone(),
        Settings {
            account_cps: 5.0,
            legal_hours: false,
            ..Settings::default()
        },
    );
    let until = T0.plus(Duration::from_secs(4));
    let ended = Mutex::new(0);
    let run = |shard: u32| {
        let (dispatcher, ended) = (&dispatcher, &ended);
        async move {
            let run = dispatcher
                .run(shard, &format!("run-{shard}"), until, Duration::ZERO)
                .await
                .unwrap();
            assert!(run.is_some(), "shard {shard} was free");
            *ended.lock().unwrap() += 1;
        }
    };
    tokio::join!(
        run(0),
        run(1),
        drive(&clock, || *ended.lock().unwrap() == 2)
    );

    let at = at.lock().unwrap().clone();
    // Dials are booked up to a horizon (1 s) before the end, so up to 4 s: one shard's pacer at
    // 5 a second (202 ms apart with its margin) books 20 in that time. Both shards dial more
    // than one share together; they do not reach both shares (40) because they book on the
    // campaign's one pacer, whose next slot follows the latest either booked.
    assert!((21..=40).contains(&at.len()), "{} dials: {at:?}", at.len());
    for (i, start) in at.iter().enumerate() {
        let in_second = at[i..]
            .iter()
            .take_while(|t| t.since(*start) < Duration::from_secs(1))
            .count();
        assert!(
            in_second <= 10,
            "{in_second} dials in the second from {start:?}"
        );
    }
}
