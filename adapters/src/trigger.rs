//! [`LambdaTrigger`]: the API's [`DispatchTrigger`], which starts the timers function at once
//! when the API writes work that is due now.

use outdial_core::admin::DispatchTrigger;
use outdial_core::messages::RunSource;
use outdial_core::ports::BoxError;

/// Starts the timers function with an asynchronous `Invoke` (`InvocationType::Event`), so the
/// API's answer never waits for a dispatcher.
#[derive(Debug, Clone)]
pub struct LambdaTrigger {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl LambdaTrigger {
    /// A trigger for the function named (or ARN'd) `function`.
    #[must_use]
    pub fn new(client: aws_sdk_lambda::Client, function: impl Into<String>) -> Self {
        Self {
            client,
            function: function.into(),
        }
    }
}

impl DispatchTrigger for LambdaTrigger {
    async fn dispatch_now(&self) -> Result<(), BoxError> {
        self.client
            .invoke()
            .function_name(&self.function)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            // Any payload starts a run; this one says the API asked for it, so the run leaves
            // shards another run holds to their holder.
            .payload(aws_sdk_lambda::primitives::Blob::new(
                RunSource::Api.payload().to_string(),
            ))
            .send()
            .await
            .map_err(|e| Box::new(e) as BoxError)?;
        Ok(())
    }
}
