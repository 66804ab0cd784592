//! Engine.IO protocols v4 and v3: packets, payloads, handshake and session state (server side in
//! `Session`, client side in [`client::ClientSession`]); the v3 wire formats are in [`v3`].

pub mod client;
mod handshake;
mod packet;
mod payload;
mod session;
pub mod v3;

pub use client::{ClientConfig, ClientSession};
pub use handshake::OpenPacket;
pub use packet::{Data, DecodeError, Frame, Packet, PacketType, decode_binary, decode_text};
pub use payload::{PayloadDecoder, PayloadEncoder, RECORD_SEPARATOR, decode_payload};
pub use session::{
    CloseReason, ProbeOutcome, Protocol, Received, Session, SessionConfig, Timeout, TransportKind,
    UpgradeError,
};
