//! Small rules of the Socket.IO protocol that both sides apply: reserved event names and namespace names.

use std::borrow::Cow;

use super::packet::RESERVED_EVENTS;

/// Whether `event` is reserved: a peer may not send it, and a local emit of it is refused, because the
/// receiving side uses these names for its own lifecycle events.
pub fn is_reserved_event(event: &str) -> bool {
    RESERVED_EVENTS.contains(&event)
}

/// A namespace name as both sides key it: always with its leading `/` (`"chat"` and `"/chat"` are the
/// same namespace, as in `io("/chat")` and `io.of("chat")`). Borrows when nothing changes.
pub fn normalize_namespace(nsp: &str) -> Cow<'_, str> {
    if nsp.starts_with('/') {
        Cow::Borrowed(nsp)
    } else {
        Cow::Owned(format!("/{nsp}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names() {
        for name in [
            "connect",
            "connect_error",
            "disconnect",
            "disconnecting",
            "newListener",
            "removeListener",
        ] {
            assert!(is_reserved_event(name), "{name}");
        }
        assert!(!is_reserved_event("message"));
        assert!(!is_reserved_event("Connect"));
    }

    #[test]
    fn namespaces_get_their_slash() {
        assert_eq!(normalize_namespace("/"), "/");
        assert_eq!(normalize_namespace(""), "/");
        assert_eq!(normalize_namespace("chat"), "/chat");
        assert!(matches!(
            normalize_namespace("/chat"),
            Cow::Borrowed("/chat")
        ));
    }
}
