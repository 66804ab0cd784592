//! The adapter contract of ferrio, apart from the HTTP stack: a distributed adapter (Redis) depends on
//! this crate and `ferrio-proto` only.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod adapter;
#[cfg(feature = "testing")]
pub mod testing;

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
