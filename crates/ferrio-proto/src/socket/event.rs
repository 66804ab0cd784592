//! What a socket hands to its listeners, on either side: an incoming event and the sender answering its
//! ack. Only the write of the ACK packet differs between the server and the client, so it is the one
//! thing left to the socket, through [`AckWriter`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::EmitError;
use crate::value::{Value, ValueError, from_args_ref, to_args};

/// Where the answer to an ack goes: the socket that received the event.
pub trait AckWriter: Clone + Send + Sync + 'static {
    /// Writes the ACK packet answering `id` with `args`.
    fn write_ack(&self, id: u64, args: Vec<Value>) -> Result<(), EmitError>;
    /// Writes the ACK packet answering `id` with the arguments `data` stands for (see
    /// [`to_args`]). A writer whose parser writes JSON text may write them straight from `data`.
    fn write_ack_from<T: Serialize + ?Sized>(&self, id: u64, data: &T) -> Result<(), EmitError> {
        self.write_ack(id, to_args(data)?)
    }
}

/// Answers the ack of one event. Dropping it without sending sends nothing, as in JavaScript. When an
/// event has several listeners, each holds a copy and only the first answer is sent, as in JavaScript.
#[derive(Debug)]
pub struct AckSender<W: AckWriter> {
    writer: W,
    id: u64,
    /// Shared by the copies given to several listeners; none (no allocation) with one listener, the
    /// usual case, since a lone sender is consumed by its one answer.
    sent: Option<Arc<AtomicBool>>,
}

impl<W: AckWriter> AckSender<W> {
    /// A sender answering ack `id` through `writer`.
    pub fn new(writer: W, id: u64) -> Self {
        AckSender {
            writer,
            id,
            sent: None,
        }
    }

    /// Sends the ack: a tuple is several arguments, `()` none, anything else one.
    pub fn send<T: Serialize + ?Sized>(self, data: &T) -> Result<(), EmitError> {
        if self.sent.is_some() {
            // Shared by several listeners: an answer that cannot be serialized leaves the ack to
            // the others, so it is serialized before it counts.
            let args = to_args(data)?;
            return self.send_args(args);
        }
        self.writer.write_ack_from(self.id, data)
    }

    /// Sends the ack with raw arguments. A copy whose event was already answered sends nothing.
    pub fn send_args(self, args: Vec<Value>) -> Result<(), EmitError> {
        if let Some(sent) = &self.sent
            && sent.swap(true, Ordering::AcqRel)
        {
            return Ok(());
        }
        self.writer.write_ack(self.id, args)
    }

    /// Whether another copy of this sender already answered.
    pub fn is_sent(&self) -> bool {
        self.sent
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Acquire))
    }

    /// A second sender for the same ack; whichever answers first is the one sent.
    fn fork(&mut self) -> Self {
        let sent = self
            .sent
            .get_or_insert_with(|| Arc::new(AtomicBool::new(false)))
            .clone();
        AckSender {
            writer: self.writer.clone(),
            id: self.id,
            sent: Some(sent),
        }
    }
}

/// An incoming event: its name, its arguments and, when the peer waits for one, its ack.
#[derive(Debug)]
pub struct Event<W: AckWriter> {
    name: EventName,
    args: Vec<Value>,
    ack: Option<AckSender<W>>,
}

/// Longest name an event keeps in place rather than in an allocation of its own.
const INLINE_NAME: usize = 22;

/// An event's name. Most are a few ASCII letters: those read from a packet's text are kept in place,
/// so that an incoming event does not allocate for its name.
#[derive(Clone)]
enum EventName {
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    Owned(String),
}

impl std::fmt::Debug for EventName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl EventName {
    fn new(name: &str) -> Self {
        if name.len() > INLINE_NAME {
            return EventName::Owned(name.to_owned());
        }
        let mut bytes = [0; INLINE_NAME];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        EventName::Inline {
            len: name.len() as u8,
            bytes,
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Copied whole from a `str`: always UTF-8.
            EventName::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            EventName::Owned(s) => s,
        }
    }
}

impl<W: AckWriter> Event<W> {
    /// An event received by `writer`'s socket; `id` is the ack the peer waits for, if any. The writer is
    /// cloned only when there is an ack to answer.
    pub fn new(writer: &W, name: String, args: Vec<Value>, id: Option<u64>) -> Self {
        Event {
            name: EventName::Owned(name),
            args,
            ack: id.map(|id| AckSender::new(writer.clone(), id)),
        }
    }

    /// [`Event::new`] with a borrowed name (read from a packet's text, see
    /// [`PlainEvent`](super::PlainEvent)): a short one is kept without an allocation.
    pub fn with_name(writer: &W, name: &str, args: Vec<Value>, id: Option<u64>) -> Self {
        Event {
            name: EventName::new(name),
            args,
            ack: id.map(|id| AckSender::new(writer.clone(), id)),
        }
    }

    /// A copy for another listener of the same event; both copies share one ack, first answer wins.
    pub fn fork(&mut self) -> Self {
        Event {
            name: self.name.clone(),
            args: self.args.clone(),
            ack: self.ack.as_mut().map(AckSender::fork),
        }
    }

    /// The event name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The arguments.
    pub fn args(&self) -> &[Value] {
        &self.args
    }

    /// Takes the arguments out.
    pub fn take_args(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.args)
    }

    /// Deserializes the arguments: a tuple reads them in order, any other type reads the first.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ValueError> {
        from_args_ref(&self.args)
    }

    /// Whether the peer waits for an ack.
    pub fn wants_ack(&self) -> bool {
        self.ack.is_some()
    }

    /// Takes the ack sender (to answer later or from another task).
    pub fn take_ack(&mut self) -> Option<AckSender<W>> {
        self.ack.take()
    }

    /// Answers the ack, if the peer asked for one (otherwise does nothing).
    pub fn ack<T: Serialize + ?Sized>(&mut self, data: &T) -> Result<(), EmitError> {
        match self.ack.take() {
            Some(a) => a.send(data),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// The ACKs written: ack id and arguments.
    type Written = Vec<(u64, Vec<Value>)>;

    /// Records every ACK written, as the socket's connection would receive it.
    #[derive(Debug, Clone, Default)]
    struct Recorder(Arc<Mutex<Written>>);

    impl AckWriter for Recorder {
        fn write_ack(&self, id: u64, args: Vec<Value>) -> Result<(), EmitError> {
            self.0.lock().unwrap().push((id, args));
            Ok(())
        }
    }

    impl Recorder {
        fn written(&self) -> Written {
            self.0.lock().unwrap().clone()
        }
    }

    /// A writer whose socket is gone.
    #[derive(Debug, Clone)]
    struct Closed;

    impl AckWriter for Closed {
        fn write_ack(&self, _: u64, _: Vec<Value>) -> Result<(), EmitError> {
            Err(EmitError::Disconnected)
        }
    }

    #[test]
    fn one_listener_answers_once_without_a_shared_flag() {
        let rec = Recorder::default();
        let mut ev = Event::new(&rec, "e".into(), vec![], Some(7));
        assert!(ev.wants_ack());
        assert!(ev.ack.as_ref().unwrap().sent.is_none());
        ev.ack(&("ok", 1)).unwrap();
        assert!(!ev.wants_ack());
        // The sender is gone with its answer: a second call has nothing to answer.
        ev.ack(&"again").unwrap();
        assert_eq!(
            rec.written(),
            vec![(7, vec![Value::from("ok"), Value::from(1)])]
        );
    }

    #[test]
    fn first_answer_wins_across_forks() {
        let rec = Recorder::default();
        let mut first = Event::new(&rec, "e".into(), vec![Value::from(1)], Some(3));
        let mut second = first.fork();
        let mut third = second.fork();
        assert_eq!(second.name(), "e");
        assert_eq!(third.args(), first.args());

        let late = first.take_ack().unwrap();
        assert!(!late.is_sent());
        third.ack(&"third").unwrap();
        assert!(late.is_sent());
        second.ack(&"second").unwrap();
        late.send(&"first").unwrap();
        assert_eq!(rec.written(), vec![(3, vec![Value::from("third")])]);
    }

    #[test]
    fn no_ack_id_writes_nothing() {
        let rec = Recorder::default();
        let mut ev = Event::new(&rec, "e".into(), vec![Value::from(1), Value::from(2)], None);
        assert!(!ev.wants_ack());
        assert!(ev.take_ack().is_none());
        ev.ack(&"ignored").unwrap();
        let mut copy = ev.fork();
        assert!(!copy.wants_ack());
        copy.ack(&"ignored").unwrap();
        assert!(rec.written().is_empty());
    }

    #[test]
    fn ack_without_id_is_a_no_op_even_when_unserializable() {
        // A map with non-string keys cannot become JSON arguments...
        let data: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let rec = Recorder::default();
        let mut asked = Event::new(&rec, "e".into(), vec![], Some(1));
        assert!(matches!(asked.ack(&data), Err(EmitError::Serialize(_))));
        // ...but without an ack to answer it is never serialized, and nothing is written either way.
        let mut ev = Event::new(&Closed, "e".into(), vec![], None);
        assert!(ev.ack(&data).is_ok());
        assert!(rec.written().is_empty());
    }

    #[test]
    fn write_errors_reach_the_caller() {
        let mut ev = Event::new(&Closed, "e".into(), vec![], Some(1));
        assert!(matches!(ev.ack(&()), Err(EmitError::Disconnected)));
    }

    #[test]
    fn parse_reads_tuples_in_order_and_single_values_first() {
        let sent = vec![Value::from("a"), Value::from(2), Value::from(true)];
        let mut ev = Event::new(&Recorder::default(), "e".into(), sent.clone(), None);
        let (a, b, c): (String, u32, bool) = ev.parse().unwrap();
        assert_eq!((a.as_str(), b, c), ("a", 2, true));
        assert_eq!(ev.parse::<String>().unwrap(), "a");
        assert!(ev.parse::<(u32, u32)>().is_err());
        assert_eq!(ev.take_args(), sent);
        assert!(ev.args().is_empty());
    }

    /// A name borrowed from a packet is kept whole, in place up to 22 bytes and in an allocation
    /// beyond, multi-byte characters included; a fork keeps it too.
    #[test]
    fn names_read_from_packets_are_kept_whole() {
        let w = Recorder::default();
        for name in [
            "",
            "echo",
            "a".repeat(22).as_str(),
            "a".repeat(23).as_str(),
            &format!("{}é", "a".repeat(20)),
            &format!("{}é", "a".repeat(21)),
            "😀 chat",
        ] {
            let mut ev = Event::with_name(&w, name, vec![], None);
            assert_eq!(ev.name(), name);
            assert_eq!(ev.fork().name(), name);
            let inline = matches!(ev.name, EventName::Inline { .. });
            assert_eq!(inline, name.len() <= 22, "{name:?}");
            // An event prints its name as text, however it is kept.
            assert!(
                format!("{ev:?}").contains(&format!("name: {name:?}")),
                "{ev:?}"
            );
        }
    }
}
