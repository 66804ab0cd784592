//! The HTTP long-polling payload: packets joined by the record separator `0x1e`, binary data as `b` + base64.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use super::packet::{DecodeError, Frame, Packet, decode_text};

/// Separates the packets of a polling payload.
pub const RECORD_SEPARATOR: u8 = 0x1e;

/// Iterates over the packets of a polling payload. The body is validated as UTF-8 once; each packet's
/// text is a zero-copy slice of it.
#[derive(Debug)]
pub struct PayloadDecoder {
    body: ByteString,
    pos: usize,
    done: bool,
}

/// Starts decoding a polling payload (a POST body).
pub fn decode_payload(body: Bytes) -> Result<PayloadDecoder, DecodeError> {
    let body = ByteString::try_from(body).map_err(|_| DecodeError::InvalidUtf8)?;
    Ok(PayloadDecoder {
        body,
        pos: 0,
        done: false,
    })
}

impl Iterator for PayloadDecoder {
    type Item = Result<Packet, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = &self.body.as_bytes()[self.pos..];
        let end = match rest.iter().position(|&b| b == RECORD_SEPARATOR) {
            Some(i) => self.pos + i,
            None => {
                self.done = true;
                self.body.len()
            }
        };
        // 0x1e is ASCII, so both ends of the record fall on character boundaries.
        let record = self.body.slice_ref(&self.body[self.pos..end]);
        self.pos = end + 1;
        let result = decode_text(record);
        if result.is_err() {
            // One bad record poisons the payload: the session closes, nothing after it is read.
            self.done = true;
        }
        Some(result)
    }
}

/// Builds one polling response out of queued frames, never above `max_len` bytes unless a single frame
/// is itself larger (it then goes alone, as the peer must still receive it).
#[derive(Debug)]
pub struct PayloadEncoder {
    buf: BytesMut,
    max_len: usize,
    count: usize,
}

impl PayloadEncoder {
    /// An empty payload bounded by `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        PayloadEncoder {
            buf: BytesMut::new(),
            max_len,
            count: 0,
        }
    }

    /// Whether `frame` fits in what is left; the first frame always fits.
    pub fn fits(&self, frame: &Frame) -> bool {
        self.count == 0 || self.buf.len() + 1 + frame.payload_len() <= self.max_len
    }

    /// Appends `frame` if it fits; returns whether it was appended.
    pub fn push(&mut self, frame: &Frame) -> bool {
        if !self.fits(frame) {
            return false;
        }
        if self.count > 0 {
            self.buf.put_u8(RECORD_SEPARATOR);
        } else {
            self.buf.reserve(frame.payload_len());
        }
        frame.write_payload_record(&mut self.buf);
        self.count += 1;
        true
    }

    /// Number of frames appended.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no frame was appended.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The encoded payload.
    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::packet::Data;
    use proptest::prelude::*;

    fn decode_all(body: &[u8]) -> Result<Vec<Packet>, DecodeError> {
        decode_payload(Bytes::copy_from_slice(body))?.collect()
    }

    #[test]
    fn decodes_mixed_payload() {
        let packets = decode_all(b"4hello\x1ebAQIDBA==\x1e3").unwrap();
        assert_eq!(
            packets,
            vec![
                Packet::Message(Data::Text("hello".into())),
                Packet::Message(Data::Binary(Bytes::from_static(&[1, 2, 3, 4]))),
                Packet::Pong(None),
            ]
        );
    }

    #[test]
    fn rejects_bad_payloads() {
        assert!(decode_all(b"abc").is_err());
        assert!(decode_all(b"\x1e\x1e").is_err());
        assert!(decode_all(b"").is_err());
        assert!(decode_all(b"bnot-base64!").is_err());
        assert!(decode_all(b"4ok\x1e9").is_err());
        assert_eq!(decode_all(b"4\xff\xfe"), Err(DecodeError::InvalidUtf8));
    }

    #[test]
    fn stops_after_first_error() {
        let mut d = decode_payload(Bytes::from_static(b"x\x1e4a\x1e4b")).unwrap();
        assert!(d.next().unwrap().is_err());
        assert!(d.next().is_none());
    }

    #[test]
    fn encoder_respects_max_len() {
        let mut enc = PayloadEncoder::new(10);
        assert!(enc.push(&Frame::message("abcd"))); // 5 bytes
        assert!(enc.push(&Frame::message("abc"))); // +1 +4 = 10
        assert!(!enc.push(&Frame::message("")));
        assert_eq!(enc.len(), 2);
        assert_eq!(&enc.finish()[..], b"4abcd\x1e4abc");

        // An oversized frame still goes out, alone.
        let mut enc = PayloadEncoder::new(4);
        assert!(enc.push(&Frame::message("longer than four")));
        assert!(!enc.push(&Frame::ping()));
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            "[^\u{1e}]{0,40}".prop_map(|s| Frame::message(&s)),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Frame::binary),
            Just(Frame::ping()),
            Just(Frame::noop()),
        ]
    }

    fn frame_to_packet(f: &Frame) -> Packet {
        match f {
            Frame::Text(s) => decode_text(s.clone()).unwrap(),
            Frame::Binary(b) => Packet::Message(Data::Binary(b.clone())),
        }
    }

    proptest! {
        #[test]
        fn payload_round_trip(frames in proptest::collection::vec(arb_frame(), 1..20)) {
            let mut enc = PayloadEncoder::new(usize::MAX);
            for f in &frames {
                prop_assert!(enc.push(f));
            }
            let decoded = decode_all(&enc.finish()).unwrap();
            let expected: Vec<Packet> = frames.iter().map(frame_to_packet).collect();
            prop_assert_eq!(decoded, expected);
        }

        #[test]
        fn decoder_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(d) = decode_payload(Bytes::from(body)) {
                for _ in d {}
            }
        }

        #[test]
        fn encoder_stays_under_limit(frames in proptest::collection::vec(arb_frame(), 1..30), max in 1usize..200) {
            let mut enc = PayloadEncoder::new(max);
            let mut first = None;
            for f in &frames {
                if !enc.push(f) { break; }
                first.get_or_insert(f.payload_len());
            }
            let n = enc.len();
            let out = enc.finish();
            prop_assert!(out.len() <= max || n == 1, "len {} max {} n {}", out.len(), max, n);
        }
    }
}
