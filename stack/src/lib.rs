//! The whole of outdial composed on one machine: [`stack`] wires the four functions to the
//! local stand-ins of DynamoDB, Lambda, API Gateway and the PSTN audio service. `outdial dev`
//! and `outdial demo` run it, and so do the end-to-end suites in this crate's `tests/`. The
//! shipped CLI depends on this crate, so it holds no test code.

pub mod stack;

#[cfg(test)]
mod budgets;

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use outdial_local::sim::Invoke;
use outdial_sma::SmaHandler;
use serde_json::Value;

/// The SMA handler hosted in process, invoked by the PSTN simulator as Lambda would invoke it.
#[derive(Debug)]
pub struct InProcess<S>(pub Arc<SmaHandler<S>>);

impl<S: outdial_core::ports::SmaStore + 'static> Invoke for InProcess<S> {
    fn invoke(&self, event: Value) -> BoxFuture<'static, Result<Value, String>> {
        let handler = Arc::clone(&self.0);
        async move { Ok(handler.handle(event).await) }.boxed()
    }
}
