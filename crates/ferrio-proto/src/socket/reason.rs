//! Why a socket disconnected, on each side, with the official reason strings, and how an Engine.IO close
//! becomes one. Written once here so the server and the client map engine closes the same way.

use crate::engine::CloseReason;

/// Why a server-side socket disconnected (the reason of socket.io's `disconnect` event on the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The server called `socket.disconnect()`.
    ServerNamespaceDisconnect,
    /// The client called `socket.disconnect()`.
    ClientNamespaceDisconnect,
    /// The connection was closed (the user left the page, the network went down).
    TransportClose,
    /// The connection failed.
    TransportError,
    /// The client stopped answering pings.
    PingTimeout,
    /// The client sent a packet that could not be decoded.
    ParseError,
    /// The server is shutting down.
    ServerShuttingDown,
    /// The connection was closed by the server.
    ForcedClose,
    /// The server closed the connection (no namespace joined in time, or a protocol violation).
    ForcedServerClose,
}

impl DisconnectReason {
    /// The official reason string.
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::ServerNamespaceDisconnect => "server namespace disconnect",
            DisconnectReason::ClientNamespaceDisconnect => "client namespace disconnect",
            DisconnectReason::TransportClose => "transport close",
            DisconnectReason::TransportError => "transport error",
            DisconnectReason::PingTimeout => "ping timeout",
            DisconnectReason::ParseError => "parse error",
            DisconnectReason::ServerShuttingDown => "server shutting down",
            DisconnectReason::ForcedClose => "forced close",
            DisconnectReason::ForcedServerClose => "forced server close",
        }
    }

    /// Whether a session dropped for this reason may later be restored (connection state recovery):
    /// only the connection failed; a voluntary leave or a kick never comes back.
    pub fn is_recoverable(self) -> bool {
        matches!(
            self,
            DisconnectReason::TransportClose
                | DisconnectReason::TransportError
                | DisconnectReason::PingTimeout
        )
    }
}

impl From<CloseReason> for DisconnectReason {
    fn from(reason: CloseReason) -> Self {
        match reason {
            CloseReason::TransportClose => DisconnectReason::TransportClose,
            CloseReason::TransportError => DisconnectReason::TransportError,
            CloseReason::PingTimeout => DisconnectReason::PingTimeout,
            CloseReason::ParseError => DisconnectReason::ParseError,
            CloseReason::ForcedClose => DisconnectReason::ForcedClose,
        }
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a client-side socket disconnected (the reason of socket.io-client's `disconnect` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientDisconnectReason {
    /// The server disconnected the socket (no reconnection).
    IoServerDisconnect,
    /// `socket.disconnect()` was called (no reconnection).
    IoClientDisconnect,
    /// The server stopped pinging.
    PingTimeout,
    /// The connection was closed.
    TransportClose,
    /// The connection failed.
    TransportError,
    /// The server sent a packet that could not be decoded.
    ParseError,
}

impl ClientDisconnectReason {
    /// The official reason string.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientDisconnectReason::IoServerDisconnect => "io server disconnect",
            ClientDisconnectReason::IoClientDisconnect => "io client disconnect",
            ClientDisconnectReason::PingTimeout => "ping timeout",
            ClientDisconnectReason::TransportClose => "transport close",
            ClientDisconnectReason::TransportError => "transport error",
            ClientDisconnectReason::ParseError => "parse error",
        }
    }

    /// Whether the manager reconnects after this reason (not after a voluntary leave on either side).
    pub fn will_reconnect(self) -> bool {
        !matches!(
            self,
            ClientDisconnectReason::IoServerDisconnect | ClientDisconnectReason::IoClientDisconnect
        )
    }
}

impl From<CloseReason> for ClientDisconnectReason {
    /// The engine's close as the client's sockets see it. A forced close of the engine is the user's own
    /// `manager.close()`, which socket.io-client reports as "io client disconnect".
    fn from(reason: CloseReason) -> Self {
        match reason {
            CloseReason::TransportClose => ClientDisconnectReason::TransportClose,
            CloseReason::TransportError => ClientDisconnectReason::TransportError,
            CloseReason::PingTimeout => ClientDisconnectReason::PingTimeout,
            CloseReason::ParseError => ClientDisconnectReason::ParseError,
            CloseReason::ForcedClose => ClientDisconnectReason::IoClientDisconnect,
        }
    }
}

impl std::fmt::Display for ClientDisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENGINE: [CloseReason; 5] = [
        CloseReason::TransportClose,
        CloseReason::TransportError,
        CloseReason::PingTimeout,
        CloseReason::ParseError,
        CloseReason::ForcedClose,
    ];

    #[test]
    fn engine_closes_keep_their_official_string_on_the_server() {
        for r in ENGINE {
            assert_eq!(DisconnectReason::from(r).as_str(), r.as_str());
        }
    }

    #[test]
    fn client_reconnects_after_engine_failures_only() {
        for r in ENGINE {
            let c = ClientDisconnectReason::from(r);
            assert_eq!(c.will_reconnect(), r != CloseReason::ForcedClose, "{r}");
            if r != CloseReason::ForcedClose {
                assert_eq!(c.as_str(), r.as_str());
            }
        }
        assert!(!ClientDisconnectReason::IoServerDisconnect.will_reconnect());
    }

    #[test]
    fn recoverable_reasons() {
        assert!(DisconnectReason::PingTimeout.is_recoverable());
        assert!(DisconnectReason::TransportClose.is_recoverable());
        assert!(!DisconnectReason::ClientNamespaceDisconnect.is_recoverable());
        assert!(!DisconnectReason::ServerNamespaceDisconnect.is_recoverable());
        assert!(!DisconnectReason::ServerShuttingDown.is_recoverable());
    }
}
