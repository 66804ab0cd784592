//! What emitting and waiting for acks returns, and the fan-in of a broadcast's acks.

use std::time::Duration;

use ferrio_proto::value::{Value, ValueError, from_args};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::adapter::AckEvent;

/// Why an emit failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The arguments could not be serialized.
    #[error("cannot serialize arguments: {0}")]
    Serialize(#[from] ValueError),
    /// The socket is disconnected.
    #[error("socket disconnected")]
    Disconnected,
    /// The event name is reserved.
    #[error("\"{0}\" is a reserved event name")]
    Reserved(String),
}

/// Why an ack did not come.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// The emit itself failed.
    #[error(transparent)]
    Emit(#[from] EmitError),
    /// No answer within the timeout.
    #[error("operation has timed out")]
    Timeout,
    /// The socket disconnected before answering.
    #[error("socket disconnected")]
    Disconnected,
}

/// The arguments of an ack.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AckArgs(pub Vec<Value>);

impl AckArgs {
    /// Deserializes the arguments: a tuple reads them in order, any other type reads the first.
    pub fn parse<T: DeserializeOwned>(self) -> Result<T, ValueError> {
        from_args(self.0)
    }

    /// The raw arguments.
    pub fn into_inner(self) -> Vec<Value> {
        self.0
    }
}

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
