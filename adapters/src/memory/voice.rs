//! The Voice API and the dispatcher trigger in memory: [`MemoryDialer`] records every call it
//! is asked to place and every update it is asked to deliver, and answers as it is told;
//! [`MemoryTrigger`] counts the dispatcher runs asked for, and can be told to refuse them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use outdial_core::admin::DispatchTrigger;
use outdial_core::ids::{CallId, E164, TransactionId};
use outdial_core::ports::{BoxError, DialError, Dialer};

/// How [`MemoryDialer`] answers a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoiceAnswer {
    /// Placed (with a fresh `TransactionId`) or delivered.
    Accept,
    /// 429 `ThrottledClientException`: [`DialError::Throttled`].
    Throttle,
    /// A 4xx other than throttling: [`DialError::Rejected`].
    Reject { code: String, message: String },
    /// 404: [`DialError::NotFound`] (for an update, the call is over).
    NotFound,
    /// A 5xx or a timeout: [`DialError::Unknown`], the call may or may not have been placed.
    Unknown,
}

impl VoiceAnswer {
    fn error(&self) -> Option<DialError> {
        match self {
            Self::Accept => None,
            Self::Throttle => Some(DialError::Throttled),
            Self::Reject { code, message } => Some(DialError::Rejected {
                code: code.clone(),
                message: message.clone(),
            }),
            Self::NotFound => Some(DialError::NotFound),
            Self::Unknown => Some(DialError::Unknown(
                "the memory dialer was told the answer is unknown".into(),
            )),
        }
    }
}

/// One `CreateSipMediaApplicationCall` as [`MemoryDialer`] received it, and what it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceRequest {
    pub from: E164,
    pub to: E164,
    pub arguments: BTreeMap<String, String>,
    pub answer: VoiceAnswer,
    /// The transaction of a call placed.
    pub transaction: Option<TransactionId>,
}

/// One `UpdateSipMediaApplicationCall` as [`MemoryDialer`] received it, and what it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRequest {
    pub transaction: TransactionId,
    pub arguments: BTreeMap<String, String>,
    pub answer: VoiceAnswer,
}

#[derive(Debug)]
struct DialerState {
    place: VoiceAnswer,
    update: VoiceAnswer,
    /// Answers for the next places, before `place` applies again.
    next_places: VecDeque<VoiceAnswer>,
    places: Vec<PlaceRequest>,
    updates: Vec<UpdateRequest>,
}

/// The Voice API in memory. By default it places every call, each with a fresh
/// `TransactionId`, and delivers every update; [`Self::refusing`] places none. Its clones
/// share what it recorded and how it answers, so a test keeps one while a handler owns
/// another.
#[derive(Debug, Clone)]
pub struct MemoryDialer {
    state: Arc<Mutex<DialerState>>,
}

impl Default for MemoryDialer {
    fn default() -> Self {
        Self::answering(VoiceAnswer::Accept, VoiceAnswer::Accept)
    }
}

impl MemoryDialer {
    /// Places every call and delivers every update.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Places no call (`Rejected`, as a Voice API refusing the request would) and knows no
    /// call to update (`NotFound`): for a caller that must never dial.
    #[must_use]
    pub fn refusing() -> Self {
        Self::answering(
            VoiceAnswer::Reject {
                code: "Refused".into(),
                message: "this Voice API places no calls".into(),
            },
            VoiceAnswer::NotFound,
        )
    }

    /// Answers places with `place` and updates with `update`.
    #[must_use]
    pub fn answering(place: VoiceAnswer, update: VoiceAnswer) -> Self {
        Self {
            state: Arc::new(Mutex::new(DialerState {
                place,
                update,
                next_places: VecDeque::new(),
                places: Vec::new(),
                updates: Vec::new(),
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, DialerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers every later place with `answer`.
    pub fn answer_places(&self, answer: VoiceAnswer) {
        self.state().place = answer;
    }

    /// Answers the next place with `answer`, once (after any queued before it).
    pub fn answer_next_place(&self, answer: VoiceAnswer) {
        self.state().next_places.push_back(answer);
    }

    /// Answers every later update with `answer`.
    pub fn answer_updates(&self, answer: VoiceAnswer) {
        self.state().update = answer;
    }

    /// Every place asked for, oldest first.
    #[must_use]
    pub fn places(&self) -> Vec<PlaceRequest> {
        self.state().places.clone()
    }

    /// Every update asked for, oldest first.
    #[must_use]
    pub fn updates(&self) -> Vec<UpdateRequest> {
        self.state().updates.clone()
    }
}

/// A `TransactionId` no other call has: a random GUID, as the Voice API hands them out.
fn fresh_transaction() -> Result<TransactionId, DialError> {
    let random = CallId::random();
    let hex = random.as_str().trim_start_matches("call_");
    let guid = match (
        hex.get(..8),
        hex.get(8..12),
        hex.get(12..16),
        hex.get(16..20),
        hex.get(20..),
    ) {
        (Some(a), Some(b), Some(c), Some(d), Some(e)) => format!("{a}-{b}-{c}-{d}-{e}"),
        _ => hex.to_owned(),
    };
    TransactionId::parse(&guid).map_err(|e| DialError::Unknown(Box::new(e)))
}

impl Dialer for MemoryDialer {
    async fn place(
        &self,
        from: &E164,
        to: &E164,
        arguments: BTreeMap<String, String>,
    ) -> Result<TransactionId, DialError> {
        let mut state = self.state();
        let answer = state
            .next_places
            .pop_front()
            .unwrap_or_else(|| state.place.clone());
        let result = match answer.error() {
            Some(e) => Err(e),
            None => fresh_transaction(),
        };
        state.places.push(PlaceRequest {
            from: from.clone(),
            to: to.clone(),
            arguments,
            answer,
            transaction: result.as_ref().ok().cloned(),
        });
        result
    }

    async fn update(
        &self,
        transaction: &TransactionId,
        arguments: BTreeMap<String, String>,
    ) -> Result<(), DialError> {
        let mut state = self.state();
        let answer = state.update.clone();
        let result = answer.error().map_or(Ok(()), Err);
        state.updates.push(UpdateRequest {
            transaction: transaction.clone(),
            arguments,
            answer,
        });
        result
    }
}

/// A dispatcher trigger in memory: counts the runs asked for; refuses them while told to
/// ([`Self::fail`]), as an unreachable timers function would. Clones share the count.
#[derive(Debug, Clone, Default)]
pub struct MemoryTrigger {
    requests: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
}

impl MemoryTrigger {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Dispatcher runs asked for so far, refused ones included.
    #[must_use]
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Refuses every later request if `failing`, accepts them otherwise.
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

impl DispatchTrigger for MemoryTrigger {
    async fn dispatch_now(&self) -> Result<(), BoxError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            Err("the memory trigger was told to refuse dispatcher runs".into())
        } else {
            Ok(())
        }
    }
}
