//! Serving threads: a process may serve one port from several single-threaded runtimes, each
//! accepting connections of its own (`ferrio serve --threads N`). A long-polling session's requests
//! come on connections of their own, which the kernel may give to any of them; a session's GET and
//! POST on two threads make every answer wake the other thread. So a polling session belongs to the
//! thread that answered its handshake, and a keep-alive connection that brought one of its requests to
//! another thread goes there after the answer ([`crate::serve_tcp_connection`] ends with
//! [`crate::Served::Moved`], and the accept loop resumes it on the session's thread).

use std::cell::Cell;

thread_local! {
    static SERVING_THREAD: Cell<u16> = const { Cell::new(0) };
}

/// Names the calling thread as serving thread `index` (from 1) of a process that runs a
/// single-threaded runtime per serving thread. Sessions whose handshake this thread answers belong to
/// it. 0, every thread's default, names none: a connection never moves for the sessions of an unnamed
/// thread (one runtime, however many workers it has, needs no moving).
pub fn set_serving_thread(index: u16) {
    SERVING_THREAD.set(index);
}

/// The serving thread this is (0: none named).
pub(crate) fn serving_thread() -> u16 {
    SERVING_THREAD.get()
}

/// In a polling answer's extensions: the session belongs to serving thread `.0`, not this one, and the
/// connection may follow it once the answer is written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FollowSession(pub(crate) u16);
