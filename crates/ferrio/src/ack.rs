//! What emitting and waiting for acks returns, and the fan-in of a broadcast's acks. The types both
//! sides share (`AckArgs`, `EmitError`, `AckError`) come from `ferrio_proto`.

use std::time::Duration;

pub use ferrio_proto::socket::{AckArgs, AckError, EmitError};
use tokio::sync::mpsc;

use crate::adapter::AckEvent;

/// A broadcast's acks did not all come: why, with the acks that did arrive.
#[derive(Debug, thiserror::Error)]
#[error("{error} ({} acks arrived)", responses.len())]
pub struct BroadcastAckError {
    #[source]
    error: AckError,
    responses: Vec<AckArgs>,
}

impl BroadcastAckError {
    pub(crate) fn new(error: AckError, responses: Vec<AckArgs>) -> Self {
        BroadcastAckError { error, responses }
    }

    /// Why the acks stopped coming.
    pub fn error(&self) -> &AckError {
        &self.error
    }

    /// Whether the timeout expired (the most common case: a recipient did not answer in time).
    pub fn is_timeout(&self) -> bool {
        matches!(self.error, AckError::Timeout)
    }

    /// The acks that arrived, in arrival order.
    pub fn responses(&self) -> &[AckArgs] {
        &self.responses
    }

    /// Takes the acks that arrived.
    pub fn into_responses(self) -> Vec<AckArgs> {
        self.responses
    }
}

impl From<EmitError> for BroadcastAckError {
    fn from(e: EmitError) -> Self {
        BroadcastAckError::new(AckError::Emit(e), Vec::new())
    }
}

/// Collects acks until every one of `adapters` reported its count and every counted client answered, or
/// until the timeout (none: until every sender is gone).
pub(crate) async fn collect_acks(
    mut rx: mpsc::UnboundedReceiver<AckEvent>,
    timeout: Option<Duration>,
    adapters: usize,
) -> Result<Vec<AckArgs>, BroadcastAckError> {
    let mut expected = 0usize;
    let mut complete = 0usize;
    let mut responses = Vec::new();
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    loop {
        if complete >= adapters && responses.len() >= expected {
            return Ok(responses);
        }
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                Ok(n) => n,
                Err(_) => return Err(BroadcastAckError::new(AckError::Timeout, responses)),
            },
            None => rx.recv().await,
        };
        match next {
            Some(AckEvent::ClientCount(n)) => expected += n,
            Some(AckEvent::Response(args)) => responses.push(AckArgs(args)),
            Some(AckEvent::CountsComplete) => complete += 1,
            Some(AckEvent::TimedOut) => {
                return Err(BroadcastAckError::new(AckError::Timeout, responses));
            }
            // Every sender is gone: no more acks can come.
            None => {
                return if responses.len() >= expected && complete >= adapters {
                    Ok(responses)
                } else {
                    Err(BroadcastAckError::new(AckError::Disconnected, responses))
                };
            }
        }
    }
}
