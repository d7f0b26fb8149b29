//! [`Publisher`] on Amazon EventBridge: outcome events go to one bus with `PutEvents`, the
//! only EventBridge operation outdial makes (its function is granted it on that bus alone).
//! Locally the same client reaches the local stack's stand-in through
//! `AWS_ENDPOINT_URL_EVENTBRIDGE`.

use std::future::Future;
use std::pin::Pin;

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use outdial_core::outcomes::{Accepted, Outbound, Publisher, SOURCE};
use outdial_core::ports::StoreError;

/// `PutEvents` to the bus named `bus`.
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: Client,
    bus: String,
}

impl EventBridgePublisher {
    #[must_use]
    pub fn new(client: Client, bus: &str) -> Self {
        Self {
            client,
            bus: bus.to_owned(),
        }
    }

    /// The bus events are put on.
    #[must_use]
    pub fn bus(&self) -> &str {
        &self.bus
    }

    async fn put(&self, events: &[Outbound]) -> Result<Accepted, StoreError> {
        let entries = events
            .iter()
            .map(|e| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(SOURCE)
                    .detail_type(e.kind.detail_type())
                    .detail(&e.detail)
                    .time(DateTime::from_millis(e.time.as_millis()))
                    .build()
            })
            .collect();
        let out = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(classify)?;
        let results = out.entries();
        // One result per entry, in the order sent; a missing one counts as refused.
        Ok((0..events.len())
            .map(|i| match results.get(i) {
                None => Some("the bus answered no result for this entry".to_owned()),
                Some(r) => r
                    .error_code()
                    .map(|code| format!("{code}: {}", r.error_message().unwrap_or_default())),
            })
            .collect())
    }
}

impl Publisher for EventBridgePublisher {
    fn publish<'a>(
        &'a self,
        events: &'a [Outbound],
    ) -> Pin<Box<dyn Future<Output = Result<Accepted, StoreError>> + Send + 'a>> {
        Box::pin(self.put(events))
    }
}

fn classify<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let throttled = err
        .as_service_error()
        .and_then(ProvideErrorMetadata::code)
        .is_some_and(|code| code.contains("Throttl") || code == "LimitExceededException");
    let timeout = matches!(err, SdkError::TimeoutError(_));
    let message = DisplayErrorContext(&err).to_string();
    let cause: outdial_core::ports::BoxError = message.into();
    if throttled {
        StoreError::Throttled(cause)
    } else if timeout {
        StoreError::Timeout(cause)
    } else {
        StoreError::Other(cause)
    }
}
