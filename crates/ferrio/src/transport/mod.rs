//! The two transports a session can run on.

pub(crate) mod delivery;
pub(crate) mod payload;
pub(crate) mod polling;
pub(crate) mod websocket;
