//! The Chime SDK Voice dialer: [`Dialer`] on `CreateSipMediaApplicationCall` and
//! `UpdateSipMediaApplicationCall`, with the API's errors sorted by what they mean for a call
//! (`docs/pstn-audio.md` sections 7 and 8).

use std::collections::BTreeMap;

use aws_sdk_chimesdkvoice::Client;
use aws_sdk_chimesdkvoice::config::http::HttpResponse;
use aws_sdk_chimesdkvoice::error::{ProvideErrorMetadata, SdkError};
use outdial_core::ids::{E164, TransactionId};
use outdial_core::ports::{DialError, Dialer};

/// Places and updates calls of one SIP media application.
#[derive(Debug, Clone)]
pub struct ChimeDialer {
    client: Client,
    sip_media_application_id: String,
}

impl ChimeDialer {
    #[must_use]
    pub fn new(client: Client, sip_media_application_id: impl Into<String>) -> Self {
        Self {
            client,
            sip_media_application_id: sip_media_application_id.into(),
        }
    }
}

/// Sorts an SDK error: throttling, a definite refusal, a call that is over, or an unknown
/// answer (which may mean the call was placed).
fn classify<E>(err: SdkError<E, HttpResponse>) -> DialError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err
        .as_service_error()
        .and_then(|e| e.code())
        .map(str::to_owned);
    match (status, code.as_deref()) {
        (_, Some("ThrottledClientException")) | (Some(429), _) => DialError::Throttled,
        (_, Some("NotFoundException")) | (Some(404), _) => DialError::NotFound,
        (Some(s), _) if (400..500).contains(&s) => DialError::Rejected {
            message: err
                .as_service_error()
                .and_then(|e| e.message())
                .unwrap_or_default()
                .to_owned(),
            code: code.unwrap_or_else(|| s.to_string()),
        },
        _ => DialError::Unknown(Box::new(err)),
    }
}

impl Dialer for ChimeDialer {
    async fn place(
        &self,
        from: &E164,
        to: &E164,
        arguments: BTreeMap<String, String>,
    ) -> Result<TransactionId, DialError> {
        // No SDK retries: the API has no client token, so a retry after a 5xx or a timeout can
        // place the same call twice. The dispatcher decides what happens after an unknown
        // answer (the attempt's watchdog), and slows down on throttling itself.
        let out = self
            .client
            .create_sip_media_application_call()
            .sip_media_application_id(&self.sip_media_application_id)
            .from_phone_number(from.as_str())
            .to_phone_number(to.as_str())
            .set_arguments_map(Some(arguments.into_iter().collect()))
            .customize()
            .config_override(
                aws_sdk_chimesdkvoice::config::Config::builder()
                    .retry_config(aws_sdk_chimesdkvoice::config::retry::RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(classify)?;
        let id = out
            .sip_media_application_call()
            .and_then(|c| c.transaction_id())
            .ok_or_else(|| DialError::Unknown("the answer carried no TransactionId".into()))?;
        TransactionId::parse(id).map_err(|e| DialError::Unknown(Box::new(e)))
    }

    async fn update(
        &self,
        transaction: &TransactionId,
        arguments: BTreeMap<String, String>,
    ) -> Result<(), DialError> {
        self.client
            .update_sip_media_application_call()
            .sip_media_application_id(&self.sip_media_application_id)
            .transaction_id(transaction.as_str())
            .set_arguments(Some(arguments.into_iter().collect()))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}
