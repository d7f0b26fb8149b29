//! End-to-end and reliability suites over the local stack live in this crate's `tests/`
//! folder; the library holds what they share, and [`stack`], the whole system composed on
//! one machine, which `outdial dev` and `outdial demo` run too.

pub mod stack;

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use outdial_core::ports::CallStore;
use outdial_local::sim::Invoke;
use outdial_sma::SmaHandler;
use serde_json::Value;

/// The SMA handler hosted in process, invoked by the PSTN simulator as Lambda would invoke it.
#[derive(Debug)]
pub struct InProcess<S>(pub Arc<SmaHandler<S>>);

impl<S: CallStore + 'static> Invoke for InProcess<S> {
    fn invoke(&self, event: Value) -> BoxFuture<'static, Result<Value, String>> {
        let handler = Arc::clone(&self.0);
        async move { Ok(handler.handle(event).await) }.boxed()
    }
}
