//! Engine.IO protocol v4: packets, payloads, handshake and session state (server side in `Session`,
//! client side in [`client::ClientSession`]).

pub mod client;
mod handshake;
mod packet;
mod payload;
mod session;
mod v3_client;

pub use client::{ClientConfig, ClientSession};
pub use handshake::OpenPacket;
pub use packet::{Data, DecodeError, Frame, Packet, PacketType, decode_binary, decode_text};
pub use payload::{PayloadDecoder, PayloadEncoder, RECORD_SEPARATOR, decode_payload};
pub use session::{
    CloseReason, ProbeOutcome, Received, Session, SessionConfig, Timeout, TransportKind,
    UpgradeError,
};
pub use v3_client::Protocol;
