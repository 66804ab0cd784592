//! A request's body as [`serve_connection`](crate::serve_connection) hands it to the service, and the
//! framing that delimits it on the connection (a length, or chunked transfer coding).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use parking_lot::Mutex;

/// The body of a request read by [`serve_connection`](crate::serve_connection). A body that arrived
/// with its request's head is handed over whole; a longer one is read from the connection as the
/// service asks for it, so a service that refuses a request never makes the server read its body.
pub struct Body {
    kind: Kind,
}

enum Kind {
    Empty,
    Full(Bytes),
    Pipe(Arc<Pipe>),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.kind {
            Kind::Empty => "Body(empty)",
            Kind::Full(_) => "Body(full)",
            Kind::Pipe(_) => "Body(streaming)",
        })
    }
}

/// Why a request's body could not be read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The connection ended or failed before the body's end.
    #[error("the connection ended before the request's body")]
    Incomplete,
    /// The chunked transfer coding was malformed.
    #[error("malformed chunked body")]
    Malformed,
}

impl Body {
    pub(crate) fn empty() -> Self {
        Body { kind: Kind::Empty }
    }

    pub(crate) fn full(data: Bytes) -> Self {
        if data.is_empty() {
            return Body::empty();
        }
        Body {
            kind: Kind::Full(data),
        }
    }

    /// A body the connection feeds through `pipe` (see [`Pipe`]).
    pub(crate) fn piped(pipe: Arc<Pipe>) -> Self {
        Body {
            kind: Kind::Pipe(pipe),
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match &mut this.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(_) => match std::mem::replace(&mut this.kind, Kind::Empty) {
                Kind::Full(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                _ => Poll::Ready(None),
            },
            Kind::Pipe(pipe) => pipe.poll_take(cx).map(|r| r.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(_) => false,
            Kind::Pipe(pipe) => {
                let s = pipe.state.lock();
                s.end && s.chunk.is_none()
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(data) => SizeHint::with_exact(data.len() as u64),
            Kind::Pipe(pipe) => match pipe.declared {
                Some(n) => SizeHint::with_exact(n),
                None => SizeHint::default(),
            },
        }
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if let Kind::Pipe(pipe) = &self.kind {
            let mut s = pipe.state.lock();
            s.abandoned = true;
            if let Some(w) = s.producer.take() {
                w.wake();
            }
        }
    }
}

/// A body between the connection (which reads it when asked) and the service (which asks). Both run
/// on the connection's task as a rule; the wakers make it work when the service moves the body
/// elsewhere.
pub(crate) struct Pipe {
    /// The body's length when the request declared one.
    declared: Option<u64>,
    state: Mutex<PipeState>,
}

#[derive(Default)]
struct PipeState {
    /// Read from the connection, not yet taken by the service.
    chunk: Option<Bytes>,
    /// The consumer waits for a chunk.
    wants: bool,
    end: bool,
    failed: Option<BodyError>,
    /// The consumer dropped the body.
    abandoned: bool,
    consumer: Option<Waker>,
    producer: Option<Waker>,
}

/// What the connection should do for a [`Pipe`].
pub(crate) enum Demand {
    /// Nothing now: the consumer has a chunk or has not asked (the producer's waker is registered).
    None,
    /// The consumer asked for more.
    More,
    /// The consumer dropped the body.
    Abandoned,
}

impl Pipe {
    pub(crate) fn new(declared: Option<u64>) -> Arc<Self> {
        Arc::new(Pipe {
            declared,
            state: Mutex::new(PipeState::default()),
        })
    }

    fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        let mut s = self.state.lock();
        if let Some(chunk) = s.chunk.take() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        if let Some(e) = s.failed {
            return Poll::Ready(Some(Err(e)));
        }
        if s.end {
            return Poll::Ready(None);
        }
        s.wants = true;
        if !s.consumer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.consumer = Some(cx.waker().clone());
        }
        if let Some(w) = s.producer.take() {
            w.wake();
        }
        Poll::Pending
    }

    /// Whether the consumer waits for data; registers the producer's waker when it does not.
    pub(crate) fn demand(&self, cx: &mut Context<'_>) -> Demand {
        let mut s = self.state.lock();
        if s.abandoned {
            return Demand::Abandoned;
        }
        if s.wants && s.chunk.is_none() {
            return Demand::More;
        }
        if !s.producer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.producer = Some(cx.waker().clone());
        }
        Demand::None
    }

    /// Hands a chunk, the end, or a failure to the consumer.
    pub(crate) fn give(&self, what: Result<Option<Bytes>, BodyError>) {
        let mut s = self.state.lock();
        match what {
            Ok(Some(chunk)) => s.chunk = Some(chunk),
            Ok(None) => s.end = true,
            Err(e) => s.failed = Some(e),
        }
        s.wants = false;
        if let Some(w) = s.consumer.take() {
            w.wake();
        }
    }
}

/// How a request's body is delimited on the connection, and how much of it is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Content-Length`: this many bytes left.
    Length(u64),
    /// Chunked transfer coding, at this point of it.
    Chunked(Chunked),
}

/// Where a chunked body's decoder stands. Lines end with CRLF only, as in hyper: a lone LF or CR is
/// how a request is smuggled past a proxy that splits lines differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunked {
    /// In a chunk-size line: the size so far, and how many hex digits it had.
    Size(u64, u8),
    /// Whitespace after the size.
    SizeSpace(u64),
    /// In a chunk extension (`;…`): how many bytes the extensions took so far.
    Extension(u64, u32),
    /// The chunk-size line's CR was seen.
    SizeLf(u64),
    /// In a chunk's data: this many bytes left.
    Data(u64),
    /// After a chunk's data: its CR, then its LF.
    DataCr,
    DataLf,
    /// In the trailer section: the current line's length and the section's so far.
    Trailer(u32, u32),
    /// A trailer line's CR was seen.
    TrailerLf(u32, u32),
    Done,
}

/// A chunk-size line longer than this many hex digits would overflow a `u64`.
const MAX_SIZE_DIGITS: u8 = 15;
/// Chunk extensions (per line) and trailers (in all) longer than this are refused, as in hyper: they
/// carry nothing the server uses, and reading them without end would hold the connection.
const MAX_EXTENSIONS: u32 = 16 * 1024;

/// What a decoding step gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Some of the body.
    Data(Bytes),
    /// The body's end.
    End,
    /// More bytes are needed from the connection.
    NeedMore,
}

impl Framing {
    /// Whether the whole body was read.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self, Framing::Length(0) | Framing::Chunked(Chunked::Done))
    }

    /// Takes the next piece of the body out of `buf` (bytes read from the connection).
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, BodyError> {
        match self {
            Framing::Length(0) => Ok(Decoded::End),
            Framing::Length(left) => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let n = (*left).min(buf.len() as u64) as usize;
                *left -= n as u64;
                Ok(Decoded::Data(buf.split_to(n).freeze()))
            }
            Framing::Chunked(state) => decode_chunked(state, buf),
        }
    }
}

/// Takes a chunked body off the front of `buf` when all of it is there: `None` (and `buf` untouched)
/// when it is not, or is malformed (left for the connection to read and refuse as it comes).
pub(crate) fn take_whole_chunked(buf: &mut BytesMut) -> Option<Result<Bytes, BodyError>> {
    let mut probe = BytesMut::from(&buf[..]);
    let mut state = Chunked::Size(0, 0);
    let mut data = BytesMut::new();
    loop {
        match decode_chunked(&mut state, &mut probe) {
            Ok(Decoded::Data(d)) => data.extend_from_slice(&d),
            Ok(Decoded::End) => break,
            Ok(Decoded::NeedMore) | Err(_) => return None,
        }
    }
    buf.advance(buf.len() - probe.len());
    Some(Ok(data.freeze()))
}

fn decode_chunked(state: &mut Chunked, buf: &mut BytesMut) -> Result<Decoded, BodyError> {
    use Chunked::*;
    loop {
        if let Done = state {
            return Ok(Decoded::End);
        }
        if let Data(left) = *state {
            if buf.is_empty() {
                return Ok(Decoded::NeedMore);
            }
            let n = left.min(buf.len() as u64) as usize;
            let rest = left - n as u64;
            *state = if rest == 0 { DataCr } else { Data(rest) };
            return Ok(Decoded::Data(buf.split_to(n).freeze()));
        }
        let Some(&b) = buf.first() else {
            return Ok(Decoded::NeedMore);
        };
        buf.advance(1);
        *state = match (*state, b) {
            (Size(n, d), b) if b.is_ascii_hexdigit() => {
                if d >= MAX_SIZE_DIGITS {
                    return Err(BodyError::Malformed);
                }
                let v = (b as char).to_digit(16).unwrap_or(0) as u64;
                Size(n * 16 + v, d + 1)
            }
            (Size(_, 0), _) => return Err(BodyError::Malformed),
            (Size(n, _) | SizeSpace(n), b' ' | b'\t') => SizeSpace(n),
            (Size(n, _) | SizeSpace(n), b';') => Extension(n, 0),
            (Size(n, _) | SizeSpace(n) | Extension(n, _), b'\r') => SizeLf(n),
            (Extension(_, len), _) if len >= MAX_EXTENSIONS => return Err(BodyError::Malformed),
            (Extension(n, len), b) if b != b'\n' => Extension(n, len + 1),
            (SizeLf(0), b'\n') => Trailer(0, 0),
            (SizeLf(n), b'\n') => Data(n),
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Size(0, 0),
            (Trailer(line, total), b'\r') => TrailerLf(line, total),
            (Trailer(_, total), _) if total >= MAX_EXTENSIONS => return Err(BodyError::Malformed),
            (Trailer(line, total), b) if b != b'\n' => Trailer(line + 1, total + 1),
            // An empty line ends the trailers, and the body.
            (TrailerLf(0, _), b'\n') => Done,
            (TrailerLf(_, total), b'\n') => Trailer(0, total),
            (Size(..) | SizeSpace(_) | Extension(..) | SizeLf(_) | DataCr | DataLf, _)
            | (Trailer(..) | TrailerLf(..), _) => return Err(BodyError::Malformed),
            (Data(_) | Done, _) => unreachable!("handled above"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(
        framing: &mut Framing,
        input: &[u8],
    ) -> Result<(Vec<u8>, bool, usize), BodyError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match framing.decode(&mut buf)? {
                Decoded::Data(d) => out.extend_from_slice(&d),
                Decoded::End => return Ok((out, true, buf.len())),
                Decoded::NeedMore => return Ok((out, false, buf.len())),
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whole_and_byte_by_byte() {
        let wire = b"4\r\nWiki\r\n5 ;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: a\r\n\r\nNEXT";
        let (out, done, left) =
            decode_all(&mut Framing::Chunked(Chunked::Size(0, 0)), wire).unwrap();
        assert_eq!(out, b"Wikipedia in\r\n\r\nchunks.");
        assert!(done);
        assert_eq!(left, 4, "the next request's bytes stay in the buffer");

        let mut framing = Framing::Chunked(Chunked::Size(0, 0));
        let mut out = Vec::new();
        let mut done = false;
        for b in wire {
            let (o, d, _) = decode_all(&mut framing, &[*b]).unwrap();
            out.extend_from_slice(&o);
            if d {
                done = true;
                break;
            }
        }
        assert!(done);
        assert_eq!(out, b"Wikipedia in\r\n\r\nchunks.");
    }

    #[test]
    fn malformed_chunked_bodies_are_errors() {
        let long_extension = format!("1;{}", "a".repeat(MAX_EXTENSIONS as usize + 1));
        let long_trailer = format!("0\r\nX: {}", "a".repeat(MAX_EXTENSIONS as usize + 1));
        for wire in [
            &b"x\r\n"[..],
            b"\r\n",
            b"4\r\nWikiXX",
            b"ffffffffffffffff1\r\n",
            // Lines end with CRLF only.
            b"2\nAB\r\n",
            b"2;\nAB\r\n",
            b"2\r\nAB\n0\r\n\r\n",
            b"2\rAB",
            b"0\r\n\n",
            // After the size, only whitespace, an extension or the line's end.
            b"5 zz\r\n",
            long_extension.as_bytes(),
            long_trailer.as_bytes(),
        ] {
            let r = decode_all(&mut Framing::Chunked(Chunked::Size(0, 0)), wire);
            assert_eq!(r, Err(BodyError::Malformed), "{wire:?}");
        }
    }

    #[test]
    fn a_length_takes_only_its_bytes() {
        let mut framing = Framing::Length(5);
        let (out, done, left) = decode_all(&mut framing, b"helloGET").unwrap();
        assert_eq!(out, b"hello");
        assert!(done);
        assert_eq!(left, 3);
        assert!(framing.is_done());
        let mut framing = Framing::Length(5);
        let (out, done, _) = decode_all(&mut framing, b"hel").unwrap();
        assert_eq!((out.as_slice(), done), (&b"hel"[..], false));
        assert_eq!(framing, Framing::Length(2));
    }

    proptest::proptest! {
        /// Whatever the bytes and however they are split across reads, the decoder neither panics nor
        /// gives more than it was given, and a body it takes whole decodes the same way in pieces.
        #[test]
        fn chunked_decoding_of_any_bytes_is_safe(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            cut in 0usize..512,
        ) {
            let cut = cut.min(bytes.len());
            let mut framing = Framing::Chunked(Chunked::Size(0, 0));
            let mut out = Vec::new();
            let mut ended = false;
            for piece in [&bytes[..cut], &bytes[cut..]] {
                match decode_all(&mut framing, piece) {
                    Ok((o, done, _)) => {
                        out.extend_from_slice(&o);
                        if done {
                            ended = true;
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            proptest::prop_assert!(out.len() <= bytes.len());
            let mut whole = BytesMut::from(&bytes[..]);
            if let Some(Ok(data)) = take_whole_chunked(&mut whole) {
                proptest::prop_assert!(ended);
                proptest::prop_assert_eq!(&data[..], &out[..]);
            }
        }

        /// Chunked encodings of any data decode back to it.
        #[test]
        fn chunked_bodies_round_trip(
            chunks in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 1..64), 0..8),
        ) {
            let mut wire = Vec::new();
            for c in &chunks {
                wire.extend_from_slice(format!("{:X};e=1\r\n", c.len()).as_bytes());
                wire.extend_from_slice(c);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\nT: v\r\n\r\n");
            let (out, done, left) =
                decode_all(&mut Framing::Chunked(Chunked::Size(0, 0)), &wire).unwrap();
            proptest::prop_assert!(done);
            proptest::prop_assert_eq!(left, 0);
            proptest::prop_assert_eq!(out, chunks.concat());
        }
    }
}
