//! What a socket hands to its listeners, on either side: an incoming event and the sender answering its
//! ack. Only the write of the ACK packet differs between the server and the client, so it is the one
//! thing left to the socket, through [`AckWriter`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use bytestring::ByteString;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{EmitError, PlainEvent};
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
pub struct Event<W: AckWriter> {
    name: EventName,
    args: Args,
    ack: Option<AckSender<W>>,
}

impl<W: AckWriter + std::fmt::Debug> std::fmt::Debug for Event<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("name", &self.name())
            .field("args", &self.args)
            .field("ack", &self.ack)
            .finish()
    }
}

/// An event's arguments. Those of an event read from a text message stay text until they are wanted:
/// [`Event::parse`] reads the listener's type straight from it, and only a listener that asks for the
/// [`Value`]s has them built (once).
#[derive(Debug, Clone)]
struct Args {
    /// The payload (`["name", arg, …]`), a slice of the message's text, checked when the message was
    /// read ([`PlainEvent`](super::PlainEvent)). None when the values are all there is.
    text: Option<ByteString>,
    /// Whether the arguments are those of `text` (not yet taken out).
    in_text: bool,
    values: OnceLock<Vec<Value>>,
}

impl Args {
    fn values(values: Vec<Value>) -> Self {
        Args {
            text: None,
            in_text: false,
            values: OnceLock::from(values),
        }
    }

    fn get(&self) -> &[Value] {
        self.values.get_or_init(|| self.read())
    }

    /// The values, leaving none (the text stays: it holds the event's name).
    fn take(&mut self) -> Vec<Value> {
        let values = self.values.take().unwrap_or_else(|| self.read());
        self.in_text = false;
        values
    }

    /// The arguments in the text: checked by the same reader when the message was read, so it reads
    /// them all now.
    fn read(&self) -> Vec<Value> {
        match &self.text {
            Some(payload) if self.in_text => crate::value::read_event_args(payload),
            _ => Vec::new(),
        }
    }

    /// `T` read straight from the text when it can be, else from the values.
    fn parse<T: DeserializeOwned>(&self) -> Result<T, ValueError> {
        if self.in_text
            && self.values.get().is_none()
            && let Some(payload) = &self.text
            && let Some(value) = crate::value::from_payload(payload)
        {
            return Ok(value);
        }
        from_args_ref(self.get())
    }
}

/// An event's name: where it lies in the payload the event keeps (read from a message's text, the
/// usual case: no copy, no allocation), or its own string.
#[derive(Debug, Clone)]
enum EventName {
    InPayload { start: u32, len: u32 },
    Owned(String),
}

impl<W: AckWriter> Event<W> {
    /// An event received by `writer`'s socket; `id` is the ack the peer waits for, if any. The writer is
    /// cloned only when there is an ack to answer.
    pub fn new(writer: &W, name: String, args: Vec<Value>, id: Option<u64>) -> Self {
        Event {
            name: EventName::Owned(name),
            args: Args::values(args),
            ack: id.map(|id| AckSender::new(writer.clone(), id)),
        }
    }

    /// The event `plain` read from the text message `text`: it keeps a slice of the message, where
    /// its name lies and its arguments are read only when they are wanted ([`Event::parse`] reads a
    /// type straight from it). Given another text than the one `plain` was read from, it copies the
    /// name and reads the arguments at once.
    pub fn from_plain(writer: &W, plain: &PlainEvent<'_>, text: &ByteString) -> Self {
        let ack = plain.id.map(|id| AckSender::new(writer.clone(), id));
        // The payload runs to the end of the message it was read from, and holds the name.
        let (base, at) = (text.as_ptr() as usize, plain.payload.as_ptr() as usize);
        let name_at = (plain.name.as_ptr() as usize).wrapping_sub(at);
        let in_text = at.checked_sub(base).and_then(|from| text.get(from..));
        match (
            in_text,
            u32::try_from(name_at),
            u32::try_from(plain.name.len()),
        ) {
            (Some(payload), Ok(start), Ok(len)) if payload.len() == plain.payload.len() => Event {
                name: EventName::InPayload { start, len },
                args: Args {
                    text: Some(text.slice_ref(payload)),
                    in_text: true,
                    values: OnceLock::new(),
                },
                ack,
            },
            _ => Event {
                name: EventName::Owned(plain.name.to_owned()),
                args: Args::values(plain.args()),
                ack,
            },
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
        match &self.name {
            EventName::InPayload { start, len } => {
                let (start, len) = (*start as usize, *len as usize);
                self.args
                    .text
                    .as_deref()
                    .and_then(|p| p.get(start..start + len))
                    .unwrap_or_default()
            }
            EventName::Owned(s) => s,
        }
    }

    /// The arguments.
    pub fn args(&self) -> &[Value] {
        self.args.get()
    }

    /// Takes the arguments out.
    pub fn take_args(&mut self) -> Vec<Value> {
        self.args.take()
    }

    /// Deserializes the arguments: a tuple reads them in order, any other type reads the first.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ValueError> {
        self.args.parse()
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

    /// The arguments of an event read from a text message stay in the text until they are wanted:
    /// `parse` reads a type straight from it, building no value; whatever it leaves (a missing
    /// argument read as `null`) and every other use reads the values, built once.
    #[test]
    fn arguments_left_in_the_text_read_as_their_values() {
        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct Chat {
            room: Option<String>,
            text: String,
        }
        let text = ByteString::from(r#"2/chat,5["chat",{"text":"hi","room":null},7]"#);
        let plain = crate::socket::Decoder::default()
            .plain_event(&text)
            .unwrap();
        let rec = Recorder::default();
        let ev = Event::from_plain(&rec, &plain, &text);
        assert_eq!(ev.name(), "chat");
        assert!(ev.wants_ack());

        let chat = Chat {
            room: None,
            text: "hi".into(),
        };
        assert_eq!(ev.parse::<(Chat, u32)>().unwrap(), (chat, 7));
        assert!(ev.parse::<Option<serde_json::Value>>().unwrap().is_some());
        assert!(ev.args.values.get().is_none(), "read from the text");
        assert!(ev.parse::<u32>().is_err());
        assert!(
            ev.args.values.get().is_some(),
            "an error comes from the values"
        );

        let mut fresh = Event::from_plain(&rec, &plain, &text);
        let (_, n, missing): (Value, u32, Option<u8>) = fresh.parse().unwrap();
        assert_eq!((n, missing), (7, None));
        let mut fork = fresh.fork();
        assert_eq!(fresh.args(), plain.args().as_slice());
        assert_eq!(fresh.take_args(), plain.args());
        assert!(fresh.args().is_empty());
        assert_eq!(fresh.parse::<Option<u8>>().unwrap(), None);
        assert_eq!(fork.take_args(), plain.args());
        fork.ack(&"ok").unwrap();
        assert_eq!(rec.written(), vec![(5, vec![Value::from("ok")])]);
    }

    /// A name read from a message is kept where it lies in the payload, whatever its length,
    /// multi-byte characters included; a fork keeps it too, and so does an event whose arguments were
    /// taken. With a text that is not the message's, the name is copied.
    #[test]
    fn names_read_from_packets_are_kept_whole() {
        let w = Recorder::default();
        for name in [
            "",
            "echo",
            "a".repeat(300).as_str(),
            &format!("{}é", "a".repeat(20)),
            "😀 chat",
        ] {
            let text = ByteString::from(format!("2/n,[ \"{name}\", 1]"));
            let plain = crate::socket::Decoder::default()
                .plain_event(&text)
                .unwrap();
            let mut ev = Event::from_plain(&w, &plain, &text);
            assert_eq!(ev.name(), name);
            assert_eq!(ev.fork().name(), name);
            assert!(matches!(ev.name, EventName::InPayload { .. }));
            // An event prints its name as text, however it is kept.
            assert!(
                format!("{ev:?}").contains(&format!("name: {name:?}")),
                "{ev:?}"
            );
            assert_eq!(ev.take_args(), vec![Value::from(1)]);
            assert_eq!(ev.name(), name);

            let other = ByteString::from(&*text);
            let copied = Event::from_plain(&w, &plain, &other);
            assert_eq!(copied.name(), name);
            assert!(matches!(copied.name, EventName::Owned(_)));
            assert_eq!(copied.args(), [Value::from(1)]);
        }
    }
}
