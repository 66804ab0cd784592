//! Sans-IO websocket (RFC 6455) with permessage-deflate (RFC 7692).
//!
//! [`Decoder`] turns received bytes into messages (reassembling fragments, inflating, validating UTF-8 and
//! every protocol rule, each violation typed with the close code it deserves); [`Encoder`] turns messages
//! into frames (masking as a client, compressing above a threshold). The two halves are independent, so
//! a shell can read and write from different tasks. The shell answers pings and closes: the decoder only
//! reports them.

pub mod deflate;
pub mod frame;

use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;

pub use deflate::{DeflateConfig, DeflateParams, accept_answer, client_offer, negotiate};
use deflate::{Deflater, Inflater};
use frame::{
    FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING,
    OP_PONG, OP_TEXT, RSV1, apply_mask, parse_header,
};

/// Normal closure.
pub const CLOSE_NORMAL: u16 = 1000;
/// The peer broke the protocol.
pub const CLOSE_PROTOCOL: u16 = 1002;
/// A message's data was inconsistent with its type (invalid UTF-8 text, undecodable deflate data).
pub const CLOSE_INVALID: u16 = 1007;
/// A message over the size limit.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// The endpoint hit an unexpected condition.
pub const CLOSE_ERROR: u16 = 1011;

/// What went wrong with the peer's frames, or with compression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A protocol rule was broken (reserved bits or opcodes, unmasked client frame, bad control frame,
    /// bad close payload, fragments out of order).
    #[error("websocket protocol error: {0}")]
    Protocol(&'static str),
    /// A text message or a close reason is not valid UTF-8.
    #[error("invalid UTF-8 in a text message or close reason")]
    InvalidUtf8,
    /// A message over the size limit.
    #[error("message too big")]
    TooBig,
    /// Compressed data that does not inflate.
    #[error("invalid compressed data")]
    Inflate,
    /// The compressor failed (never expected).
    #[error("compression failed")]
    Deflate,
}

impl Error {
    /// The close code that tells the peer what it did wrong (RFC 6455 section 7.4.1).
    pub fn close_code(&self) -> u16 {
        match self {
            Error::Protocol(_) => CLOSE_PROTOCOL,
            Error::InvalidUtf8 | Error::Inflate => CLOSE_INVALID,
            Error::TooBig => CLOSE_TOO_BIG,
            Error::Deflate => CLOSE_ERROR,
        }
    }
}

/// Which end of the connection this is: servers receive masked frames and send them unmasked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The accepting side.
    Server,
    /// The connecting side.
    Client,
}

/// The payload of a close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// Status code.
    pub code: u16,
    /// Reason, UTF-8.
    pub reason: ByteString,
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 section 4.2.2): base64(SHA-1(key + GUID)),
/// computed by the server and checked by the client.
pub fn accept_key(key: &[u8]) -> String {
    use base64::Engine as _;
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(key);
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// What the decoder found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A complete text message.
    Text(ByteString),
    /// A complete binary message.
    Binary(Bytes),
    /// A ping: answer with a pong carrying the same payload.
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// The peer's close frame (`None`: no status code). Nothing after it is decoded.
    Close(Option<CloseFrame>),
}

/// Whether a close frame may carry `code` (the `ws` package's rule: 1000–1014 except 1004–1006, and
/// 3000–4999).
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// What a fragment costs against the size limit at least: a flood of empty fragments grows no buffer
/// but must still end.
const MIN_FRAGMENT_COST: usize = 64;

/// Most the receive buffer grows by ahead of the bytes that fill it.
const RESERVE_STEP: usize = 64 * 1024;

/// Cost over the size limit that a fragmented message may reach: a thousand tiny fragments are fine.
const FRAGMENT_SLACK: usize = 1024 * MIN_FRAGMENT_COST;

/// A message whose fragments are still arriving.
#[derive(Debug)]
struct Partial {
    text: bool,
    compressed: bool,
    data: Vec<u8>,
    /// The prefix of `data` known to be valid UTF-8, for text: invalid text fails at the fragment that
    /// makes it invalid, not at the end.
    checked: usize,
    /// Bytes counted against the size limit (see [`MIN_FRAGMENT_COST`]).
    cost: usize,
}

impl Partial {
    /// Checks the UTF-8 added since the last check; an incomplete sequence at the end is fine unless
    /// `last`.
    fn check_utf8(&mut self, last: bool) -> Result<(), Error> {
        if !self.text {
            return Ok(());
        }
        match std::str::from_utf8(&self.data[self.checked..]) {
            Ok(_) => self.checked = self.data.len(),
            Err(e) if e.error_len().is_none() && !last => self.checked += e.valid_up_to(),
            Err(_) => return Err(Error::InvalidUtf8),
        }
        Ok(())
    }
}

/// The receiving half of a websocket.
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    max_message: usize,
    buf: BytesMut,
    partial: Option<Partial>,
    /// Present when permessage-deflate was negotiated.
    inflater: Option<Inflater>,
    closed: bool,
}

impl Decoder {
    /// A decoder for `role`, taking messages up to `max_message` bytes (after inflating).
    pub fn new(role: Role, max_message: usize, deflate: Option<&DeflateParams>) -> Self {
        let inflater = deflate.map(|p| {
            Inflater::new(match role {
                Role::Server => p.client_no_context_takeover,
                Role::Client => p.server_no_context_takeover,
            })
        });
        Decoder {
            role,
            max_message,
            buf: BytesMut::new(),
            partial: None,
            inflater,
            closed: false,
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        if !self.closed {
            self.buf.extend_from_slice(data);
        }
    }

    /// The receive buffer, for a shell that reads straight into it while a frame is incomplete (the
    /// decoder reserved room for the rest of the frame). Bytes added after a close are ignored.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Received bytes not decoded yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether the decoder holds heap memory: a buffer, a partial message, an inflater's state.
    pub fn holds_memory(&self) -> bool {
        self.buf.capacity() > 0
            || self.partial.is_some()
            || self.inflater.as_ref().is_some_and(Inflater::has_state)
    }

    /// The next message, `Ok(None)` when more bytes are needed. After an error or a close, nothing
    /// more is decoded.
    pub fn next_message(&mut self) -> Result<Option<Message>, Error> {
        let r = self.decode();
        if !matches!(r, Ok(Some(_))) && self.buf.is_empty() {
            // Nothing buffered: give the memory back, so an idle connection holds no buffer.
            self.buf = BytesMut::new();
        }
        if r.is_err() {
            self.closed = true;
            self.buf = BytesMut::new();
            self.partial = None;
        }
        r
    }

    fn decode(&mut self) -> Result<Option<Message>, Error> {
        loop {
            if self.closed {
                self.buf.clear();
                return Ok(None);
            }
            let Some((h, header_len)) = parse_header(&self.buf)? else {
                return Ok(None);
            };
            self.check(&h)?;
            // `check` bounded the length by the size limit.
            let len = h.len as usize;
            if self.buf.len() < header_len + len {
                // Room for what is still to come, in steps: a header announcing the largest
                // message, then silence, must not hold that much memory.
                self.buf
                    .reserve((header_len + len - self.buf.len()).min(RESERVE_STEP));
                return Ok(None);
            }
            self.buf.advance(header_len);
            let mut payload = self.buf.split_to(len);
            if let Some(m) = h.mask {
                apply_mask(&mut payload, m, 0);
            }
            if let Some(m) = self.frame(h, payload)? {
                return Ok(Some(m));
            }
        }
    }

    /// Every rule that the header alone decides, before any payload is buffered.
    fn check(&self, h: &FrameHeader) -> Result<(), Error> {
        let rsv_allowed = if self.inflater.is_some()
            && matches!(h.opcode, OP_TEXT | OP_BINARY)
            && self.partial.is_none()
        {
            RSV1
        } else {
            0
        };
        if h.rsv & !rsv_allowed != 0 {
            return Err(Error::Protocol("reserved bits set"));
        }
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(Error::Protocol("unmasked client frame")),
            (Role::Client, true) => return Err(Error::Protocol("masked server frame")),
            _ => {}
        }
        match h.opcode {
            OP_CLOSE | OP_PING | OP_PONG => {
                if !h.fin {
                    return Err(Error::Protocol("fragmented control frame"));
                }
                if h.len > MAX_CONTROL_PAYLOAD as u64 {
                    return Err(Error::Protocol("control frame over 125 bytes"));
                }
            }
            OP_CONTINUATION => {
                let Some(p) = &self.partial else {
                    return Err(Error::Protocol("continuation without a message"));
                };
                let cost = p
                    .cost
                    .saturating_add((h.len as usize).max(MIN_FRAGMENT_COST));
                if h.len > self.max_message as u64
                    || cost > self.max_message.saturating_add(FRAGMENT_SLACK)
                {
                    return Err(Error::TooBig);
                }
            }
            OP_TEXT | OP_BINARY => {
                if self.partial.is_some() {
                    return Err(Error::Protocol("new message before the last one ended"));
                }
                if h.len > self.max_message as u64 {
                    return Err(Error::TooBig);
                }
            }
            _ => return Err(Error::Protocol("reserved opcode")),
        }
        Ok(())
    }

    fn frame(&mut self, h: FrameHeader, payload: BytesMut) -> Result<Option<Message>, Error> {
        match h.opcode {
            OP_PING => return Ok(Some(Message::Ping(payload.freeze()))),
            OP_PONG => return Ok(Some(Message::Pong(payload.freeze()))),
            OP_CLOSE => {
                self.closed = true;
                return parse_close(payload.freeze()).map(|c| Some(Message::Close(c)));
            }
            _ => {}
        }
        let compressed = h.rsv & RSV1 != 0;
        if h.opcode != OP_CONTINUATION && h.fin && !compressed {
            // The common case, one uncompressed frame: the message is the payload, no copy.
            return whole(h.opcode == OP_TEXT, payload.freeze()).map(Some);
        }
        let limit = self.max_message;
        let p = self.partial.get_or_insert_with(|| Partial {
            text: h.opcode == OP_TEXT,
            compressed,
            data: Vec::new(),
            checked: 0,
            cost: 0,
        });
        p.cost = p.cost.saturating_add(payload.len().max(MIN_FRAGMENT_COST));
        if p.compressed {
            let inflater = self
                .inflater
                .as_mut()
                .ok_or(Error::Protocol("compressed frame without the extension"))?;
            inflater.inflate(&payload, h.fin, &mut p.data, limit)?;
        } else {
            if p.data.len() + payload.len() > limit {
                return Err(Error::TooBig);
            }
            if p.data.is_empty() {
                p.data.reserve_exact(payload.len());
            }
            p.data.extend_from_slice(&payload);
        }
        p.check_utf8(h.fin)?;
        if !h.fin {
            return Ok(None);
        }
        let p = self.partial.take().expect("set above");
        let data = Bytes::from(p.data);
        Ok(Some(if p.text {
            // Checked fragment by fragment already; ByteString has no unchecked constructor here.
            Message::Text(ByteString::try_from(data).map_err(|_| Error::InvalidUtf8)?)
        } else {
            Message::Binary(data)
        }))
    }
}

fn whole(text: bool, data: Bytes) -> Result<Message, Error> {
    Ok(if text {
        Message::Text(ByteString::try_from(data).map_err(|_| Error::InvalidUtf8)?)
    } else {
        Message::Binary(data)
    })
}

fn parse_close(p: Bytes) -> Result<Option<CloseFrame>, Error> {
    match p.len() {
        0 => Ok(None),
        1 => Err(Error::Protocol("close payload of one byte")),
        _ => {
            let code = u16::from_be_bytes([p[0], p[1]]);
            if !is_valid_close_code(code) {
                return Err(Error::Protocol("invalid close code"));
            }
            let reason = ByteString::try_from(p.slice(2..)).map_err(|_| Error::InvalidUtf8)?;
            Ok(Some(CloseFrame { code, reason }))
        }
    }
}

/// The compressor of one side: its agreed window and context takeover, the configured level and threshold.
fn deflater(window_bits: u8, no_context_takeover: bool, c: &DeflateConfig) -> Deflater {
    Deflater::new(
        window_bits,
        no_context_takeover,
        c.level.unwrap_or(6),
        c.threshold,
    )
}

/// The sending half of a websocket.
#[derive(Debug)]
pub struct Encoder {
    /// Masking keys, for a client (a fresh unpredictable key per frame, RFC 6455 section 5.3).
    mask: Option<fn() -> [u8; 4]>,
    deflater: Option<Deflater>,
}

impl Encoder {
    /// A server's encoder; with `deflate`, messages of `config.threshold` bytes or more are compressed.
    pub fn server(deflate: Option<(&DeflateParams, &DeflateConfig)>) -> Self {
        Encoder {
            mask: None,
            deflater: deflate
                .map(|(p, c)| deflater(p.server_max_window_bits, p.server_no_context_takeover, c)),
        }
    }

    /// A client's encoder, masking every frame with a key from `mask`.
    pub fn client(
        mask: fn() -> [u8; 4],
        deflate: Option<(&DeflateParams, &DeflateConfig)>,
    ) -> Self {
        Encoder {
            mask: Some(mask),
            deflater: deflate
                .map(|(p, c)| deflater(p.client_max_window_bits, p.client_no_context_takeover, c)),
        }
    }

    /// Whether messages may be compressed (the extension was agreed): each compressed message then
    /// depends on the ones before it.
    pub fn compresses(&self) -> bool {
        self.deflater.is_some()
    }

    /// Whether the compressor's state exists.
    pub fn holds_memory(&self) -> bool {
        self.deflater.as_ref().is_some_and(Deflater::has_state)
    }

    /// Appends a text message as one frame; compressed when the extension is on, `compress` is set and
    /// the message reaches the threshold.
    pub fn text(&mut self, text: &str, compress: bool, out: &mut Vec<u8>) -> Result<(), Error> {
        self.message(OP_TEXT, text.as_bytes(), compress, out)
    }

    /// Appends a binary message as one frame (compressed as for [`Encoder::text`]).
    pub fn binary(&mut self, data: &[u8], compress: bool, out: &mut Vec<u8>) -> Result<(), Error> {
        self.message(OP_BINARY, data, compress, out)
    }

    fn message(
        &mut self,
        opcode: u8,
        payload: &[u8],
        compress: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let mask = self.mask.map(|f| f());
        let start = out.len();
        match &mut self.deflater {
            Some(d) if compress && payload.len() >= d.threshold => {
                // Compressed behind room for the longest header, then the header is put right before
                // the data and the gap closed: no second buffer.
                out.resize(start + MAX_HEADER, 0);
                d.compress(payload, out)?;
                let len = out.len() - start - MAX_HEADER;
                let mut h = Vec::with_capacity(MAX_HEADER);
                frame::write_header(&mut h, true, RSV1, opcode, mask, len);
                let at = start + MAX_HEADER - h.len();
                out[at..start + MAX_HEADER].copy_from_slice(&h);
                out.drain(start..at);
                if let Some(m) = mask {
                    apply_mask(&mut out[start + h.len()..], m, 0);
                }
            }
            _ => self.frame(opcode, payload, mask, out),
        }
        Ok(())
    }

    fn frame(&self, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
        out.reserve(MAX_HEADER + payload.len());
        frame::write_header(out, true, 0, opcode, mask, payload.len());
        let at = out.len();
        out.extend_from_slice(payload);
        if let Some(m) = mask {
            apply_mask(&mut out[at..], m, 0);
        }
    }

    /// Appends a ping (the payload is cut at 125 bytes).
    pub fn ping(&self, payload: &[u8], out: &mut Vec<u8>) {
        let p = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
        self.frame(OP_PING, p, self.mask.map(|f| f()), out);
    }

    /// Appends a pong (the payload is cut at 125 bytes).
    pub fn pong(&self, payload: &[u8], out: &mut Vec<u8>) {
        let p = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
        self.frame(OP_PONG, p, self.mask.map(|f| f()), out);
    }

    /// Appends a close frame; the reason is cut (on a character boundary) to fit in 123 bytes.
    pub fn close(&self, code: Option<u16>, reason: &str, out: &mut Vec<u8>) {
        let mut p = Vec::with_capacity(MAX_CONTROL_PAYLOAD);
        if let Some(c) = code {
            p.extend_from_slice(&c.to_be_bytes());
            let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            p.extend_from_slice(&reason.as_bytes()[..end]);
        }
        self.frame(OP_CLOSE, &p, self.mask.map(|f| f()), out);
    }
}

/// A write buffer up to this size is kept between batches; a bigger one is given back.
const KEEP_OUTGOING: usize = 1024;

/// Encoded frames on their way out, written in as many pieces as the connection takes. A write cut
/// short resumes where it stopped, so a close frame never follows half a frame. IO-free: the caller
/// passes its stream's non-blocking write.
#[derive(Debug, Default)]
pub struct Outgoing {
    buf: Vec<u8>,
    written: usize,
}

impl Outgoing {
    /// Where the encoder appends frames.
    pub fn buf_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Whether bytes wait to be written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Writes what is left with `write` until all of it is written (`Ready(Ok)`), the stream cannot
    /// take more (`Pending`), or it fails. Call [`written_out`](Self::written_out) once the stream is
    /// flushed too.
    pub fn poll_drain(
        &mut self,
        mut write: impl FnMut(&[u8]) -> std::task::Poll<std::io::Result<usize>>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        while self.written < self.buf.len() {
            match write(&self.buf[self.written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => self.written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Everything was written: starts over, giving a large buffer back.
    pub fn written_out(&mut self) {
        self.written = 0;
        if self.buf.capacity() > KEEP_OUTGOING {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }
}

#[cfg(test)]
mod tests;
