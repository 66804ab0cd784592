//! The two transports a session can run on.

<<<<<<< HEAD
pub(crate) mod delivery;
=======
pub(crate) mod payload;
>>>>>>> eio3
pub(crate) mod polling;
pub(crate) mod websocket;
