//! permessage-deflate (RFC 7692): negotiation of `Sec-WebSocket-Extensions`, and the compressor and
//! decompressor of one connection, both created on first use so that an idle connection holds neither.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::Error;

/// The extension's name in `Sec-WebSocket-Extensions`.
pub const EXTENSION: &str = "permessage-deflate";

/// The tail a sync flush ends with; removed by the sender, put back by the receiver (RFC 7692 7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// What one side wants of permessage-deflate (the `ws` package's `perMessageDeflate` options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Messages smaller than this many bytes are sent uncompressed (1024).
    pub threshold: usize,
    /// The server resets its compressor after each message (off).
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message (off).
    pub client_no_context_takeover: bool,
    /// The server's LZ77 window, 8..=15 bits (`None`: whatever the client offers, else 15).
    pub server_max_window_bits: Option<u8>,
    /// The client's LZ77 window, 8..=15 bits (`None`: whatever the client offers, else 15).
    pub client_max_window_bits: Option<u8>,
    /// zlib compression level, 0..=9 (`None`: 6, zlib's default).
    pub level: Option<u32>,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            threshold: 1024,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: None,
            level: None,
        }
    }
}

/// The parameters both sides agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message.
    pub client_no_context_takeover: bool,
    /// The server's window bits.
    pub server_max_window_bits: u8,
    /// The client's window bits.
    pub client_max_window_bits: u8,
}

/// One permessage-deflate offer, as a client sends it (or a server's answer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: the parameter without a value (the client accepts any value in the answer).
    client_max_window_bits: Option<Option<u8>>,
}

fn window_bits(v: Option<&str>) -> Option<u8> {
    let v = v?.trim_matches('"');
    // Only the plain decimal form: "08" or "+9" are not valid values (RFC 7692 7.1.2.1).
    if v.is_empty() || v.len() > 2 || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|b| (8..=15).contains(b))
}

/// Parses one extension's parameters; `None` when they are invalid (unknown, repeated, bad value).
fn parse_offer<'a>(params: impl Iterator<Item = &'a str>) -> Option<Offer> {
    let mut o = Offer::default();
    for p in params {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (p.trim(), None),
        };
        match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if value.is_none() && !o.server_no_context_takeover => {
                o.server_no_context_takeover = true;
            }
            "client_no_context_takeover" if value.is_none() && !o.client_no_context_takeover => {
                o.client_no_context_takeover = true;
            }
            "server_max_window_bits" if o.server_max_window_bits.is_none() => {
                o.server_max_window_bits = Some(window_bits(value)?);
            }
            "client_max_window_bits" if o.client_max_window_bits.is_none() => {
                o.client_max_window_bits = Some(match value {
                    None => None,
                    v => Some(window_bits(v)?),
                });
            }
            _ => return None,
        }
    }
    Some(o)
}

/// The permessage-deflate entries of `Sec-WebSocket-Extensions` header values, in order; `None` for an
/// entry whose parameters are invalid.
fn offers<'a>(values: impl IntoIterator<Item = &'a str>) -> impl Iterator<Item = Option<Offer>> {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .filter_map(|ext| {
            let mut parts = ext.split(';');
            let name = parts.next()?.trim();
            name.eq_ignore_ascii_case(EXTENSION)
                .then(|| parse_offer(parts.filter(|p| !p.trim().is_empty())))
        })
}

/// The server side of the negotiation: the first offer it can honour, as the agreed parameters and the
/// `Sec-WebSocket-Extensions` answer. `None` declines (no offer, or none acceptable).
pub fn negotiate<'a>(
    values: impl IntoIterator<Item = &'a str>,
    config: &DeflateConfig,
) -> Option<(DeflateParams, String)> {
    // Configured windows outside 8..=15 are not valid parameter values: brought into range.
    let config = &DeflateConfig {
        server_max_window_bits: config.server_max_window_bits.map(|b| b.clamp(8, 15)),
        client_max_window_bits: config.client_max_window_bits.map(|b| b.clamp(8, 15)),
        ..*config
    };
    for offer in offers(values) {
        let Some(o) = offer else { continue };
        // The client asked for a smaller server window than configured: honoured (the smaller of the
        // two is used). The client wants a window it cannot be held to: only with its consent.
        let server_bits = match (o.server_max_window_bits, config.server_max_window_bits) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let client_bits = match (o.client_max_window_bits, config.client_max_window_bits) {
            // The client accepts a limit: the configured one, else none.
            (Some(None), c) => c,
            (Some(Some(a)), Some(c)) => Some(a.min(c)),
            (Some(Some(a)), None) => Some(a),
            // Not offered: the client will use up to 15 bits. The decompressor always runs with a
            // 15-bit window, so that is still acceptable; the answer just cannot name a limit.
            (None, _) => None,
        };
        let params = DeflateParams {
            server_no_context_takeover: o.server_no_context_takeover
                || config.server_no_context_takeover,
            client_no_context_takeover: o.client_no_context_takeover
                || config.client_no_context_takeover,
            server_max_window_bits: server_bits.unwrap_or(15),
            client_max_window_bits: client_bits.unwrap_or(15),
        };
        let mut answer = String::from(EXTENSION);
        if params.server_no_context_takeover {
            answer.push_str("; server_no_context_takeover");
        }
        if params.client_no_context_takeover {
            answer.push_str("; client_no_context_takeover");
        }
        if let Some(b) = server_bits {
            answer.push_str(&format!("; server_max_window_bits={b}"));
        }
        if let Some(b) = client_bits {
            answer.push_str(&format!("; client_max_window_bits={b}"));
        }
        return Some((params, answer));
    }
    None
}

/// The client's offer for `config`.
pub fn client_offer(config: &DeflateConfig) -> String {
    let mut offer = String::from(EXTENSION);
    if config.server_no_context_takeover {
        offer.push_str("; server_no_context_takeover");
    }
    if config.client_no_context_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    if let Some(b) = config.server_max_window_bits {
        offer.push_str(&format!("; server_max_window_bits={b}"));
    }
    match config.client_max_window_bits {
        Some(b) => offer.push_str(&format!("; client_max_window_bits={b}")),
        None => offer.push_str("; client_max_window_bits"),
    }
    offer
}

/// The client side: checks the server's answer against what `config` offered. `Ok(None)` when the
/// server declined; an error when it answered with something that was not offered.
pub fn accept_answer<'a>(
    values: impl IntoIterator<Item = &'a str>,
    config: &DeflateConfig,
) -> Result<Option<DeflateParams>, Error> {
    let bad = Error::Protocol("invalid permessage-deflate answer");
    let mut answers = offers(values);
    let Some(a) = answers.next() else {
        return Ok(None);
    };
    let a = a.ok_or(bad.clone())?;
    if answers.next().is_some()
        || matches!(a.client_max_window_bits, Some(None))
        || (config.server_no_context_takeover && !a.server_no_context_takeover)
    {
        return Err(bad);
    }
    if let (Some(want), got) = (config.server_max_window_bits, a.server_max_window_bits)
        && got.is_none_or(|g| g > want)
    {
        return Err(bad);
    }
    let client_bits = a.client_max_window_bits.flatten();
    if let (Some(want), Some(got)) = (config.client_max_window_bits, client_bits)
        && got > want
    {
        return Err(bad);
    }
    Ok(Some(DeflateParams {
        server_no_context_takeover: a.server_no_context_takeover,
        client_no_context_takeover: a.client_no_context_takeover
            || config.client_no_context_takeover,
        server_max_window_bits: a.server_max_window_bits.unwrap_or(15),
        client_max_window_bits: client_bits.or(config.client_max_window_bits).unwrap_or(15),
    }))
}

/// The sending half: compresses messages, holding its zlib state only once one was compressed.
#[derive(Debug)]
pub struct Deflater {
    state: Option<Box<Compress>>,
    window_bits: u8,
    no_context_takeover: bool,
    level: u32,
    /// Messages below this size are not compressed.
    pub threshold: usize,
}

impl Deflater {
    /// A deflater for the given side's agreed window and context takeover.
    pub fn new(window_bits: u8, no_context_takeover: bool, level: u32, threshold: usize) -> Self {
        Deflater {
            state: None,
            window_bits,
            no_context_takeover,
            level: level.min(9),
            threshold,
        }
    }

    /// Whether the zlib state exists (a message was compressed, and the context is kept).
    pub fn has_state(&self) -> bool {
        self.state.is_some()
    }

    /// Appends the compressed `payload` to `out`, without the sync-flush tail.
    pub fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        // zlib cannot make a raw deflate stream with a 256-byte window: 9 bits, as Node's zlib does
        // for windowBits 8 (the peer's inflater is told 8 and zlib treats both alike).
        let bits = self.window_bits.max(9);
        let level = self.level;
        let c = self.state.get_or_insert_with(|| {
            Box::new(Compress::new_with_window_bits(
                Compression::new(level),
                false,
                bits,
            ))
        });
        let start = out.len();
        let before_in = c.total_in();
        loop {
            let consumed = (c.total_in() - before_in) as usize;
            out.reserve((payload.len() - consumed) / 2 + 64);
            c.compress_vec(&payload[consumed..], out, FlushCompress::Sync)
                .map_err(|_| Error::Deflate)?;
            // The flush is complete once all input is in and output space was left over.
            if (c.total_in() - before_in) as usize == payload.len() && out.len() < out.capacity() {
                break;
            }
        }
        if out.len() >= start + 4 && out[out.len() - 4..] == TAIL {
            out.truncate(out.len() - 4);
        }
        if out.len() == start {
            // Nothing to flush (zlib skips a second sync flush with no input in between, as for an
            // empty message after another message): the payload must still be an empty stored block's
            // header, one 0x00 (RFC 7692 7.2.3.6); an empty payload would make the peer read its
            // appended tail as a block header and garbage.
            out.push(0x00);
        }
        if self.no_context_takeover {
            // Dropped rather than reset: no context to keep, so no memory to keep either.
            self.state = None;
        }
        Ok(())
    }
}

/// The receiving half: inflates messages, holding its zlib state only once one arrived.
#[derive(Debug)]
pub struct Inflater {
    state: Option<Box<Decompress>>,
    no_context_takeover: bool,
}

impl Inflater {
    /// An inflater; with `no_context_takeover` the peer resets its context after each message, so the
    /// state is dropped between messages.
    pub fn new(no_context_takeover: bool) -> Self {
        Inflater {
            state: None,
            no_context_takeover,
        }
    }

    /// Whether the zlib state exists.
    pub fn has_state(&self) -> bool {
        self.state.is_some()
    }

    /// Inflates `input` (one frame's payload) onto `out`; with `last`, the message ends here. The whole
    /// message may not grow past `limit` bytes: `Error::TooBig` as soon as it would.
    pub fn inflate(
        &mut self,
        input: &[u8],
        last: bool,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), Error> {
        // Always a 15-bit window: it inflates what any smaller window produced.
        let d = self
            .state
            .get_or_insert_with(|| Box::new(Decompress::new(false)));
        let mut ended = false;
        for chunk in [input, if last { &TAIL[..] } else { &[] }] {
            let before_in = d.total_in();
            loop {
                let consumed = (d.total_in() - before_in) as usize;
                if consumed == chunk.len() && out.len() < out.capacity() {
                    break;
                }
                if out.len() > limit {
                    return Err(Error::TooBig);
                }
                // Grow in steps, never past the limit (plus one byte to detect crossing it).
                let room = (limit + 1 - out.len()).min(out.len().max(4096));
                if out.capacity() - out.len() < room.clamp(1, 1024) {
                    out.reserve(room);
                }
                let before_out = d.total_out();
                let status = d
                    .decompress_vec(&chunk[consumed..], out, FlushDecompress::Sync)
                    .map_err(|_| Error::Inflate)?;
                if status == Status::StreamEnd {
                    // A final deflate block: the stream is over; anything after it is garbage.
                    ended = true;
                    if (d.total_in() - before_in) as usize != chunk.len() && !last {
                        return Err(Error::Inflate);
                    }
                    break;
                }
                let progressed =
                    d.total_in() - before_in > consumed as u64 || d.total_out() > before_out;
                if !progressed && out.len() < out.capacity() {
                    // Needs input that is not there (the rest of the message).
                    break;
                }
            }
            if out.len() > limit {
                return Err(Error::TooBig);
            }
            if ended {
                break;
            }
        }
        if ended || (last && self.no_context_takeover) {
            self.state = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn empty_messages_in_a_row_inflate_empty() {
        // Found by the ws_frames fuzz target: empty messages compressed one after another, the
        // context kept, inflated to garbage on the other side.
        for no_context_takeover in [false, true] {
            let mut d = super::Deflater::new(15, no_context_takeover, 6, 0);
            let mut i = super::Inflater::new(no_context_takeover);
            for payload in [&b""[..], b"", b"x", b"", b"", b"yy", b""] {
                let mut wire = Vec::new();
                d.compress(payload, &mut wire).unwrap();
                assert!(!wire.is_empty());
                let mut out = Vec::new();
                i.inflate(&wire, true, &mut out, 1024).unwrap();
                assert_eq!(out, payload, "{wire:?}");
            }
        }
    }

    use super::*;

    fn cfg() -> DeflateConfig {
        DeflateConfig::default()
    }

    #[test]
    fn rfc_hello_compressed() {
        // RFC 7692 section 7.2.3.1.
        let mut d = Deflater::new(15, false, 6, 0);
        let mut out = Vec::new();
        d.compress(b"Hello", &mut out).unwrap();
        assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        let mut i = Inflater::new(false);
        let mut text = Vec::new();
        i.inflate(&out, true, &mut text, 100).unwrap();
        assert_eq!(text, b"Hello");
    }

    #[test]
    fn rfc_examples_inflate() {
        // 7.2.3.1 (the bytes after the 0xc1 0x07 header), 7.2.3.2 (two fragments) and 7.2.3.3 (the
        // second message refers back into the first: context takeover).
        let mut i = Inflater::new(false);
        let mut out = Vec::new();
        i.inflate(
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
            true,
            &mut out,
            10,
        )
        .unwrap();
        assert_eq!(out, b"Hello");
        let mut i = Inflater::new(false);
        out.clear();
        i.inflate(&[0xf2, 0x48, 0xcd], false, &mut out, 10).unwrap();
        i.inflate(&[0xc9, 0xc9, 0x07, 0x00], true, &mut out, 10)
            .unwrap();
        assert_eq!(out, b"Hello");
        out.clear();
        i.inflate(&[0xf2, 0x00, 0x11, 0x00, 0x00], true, &mut out, 10)
            .unwrap();
        assert_eq!(out, b"Hello");
        // 7.2.3.4: an uncompressed (BTYPE=00) deflate block.
        let mut i = Inflater::new(false);
        out.clear();
        i.inflate(
            &[
                0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
            ],
            true,
            &mut out,
            10,
        )
        .unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn context_takeover_shrinks_the_repeat() {
        let mut d = Deflater::new(15, false, 6, 0);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        d.compress(b"Hello", &mut a).unwrap();
        d.compress(b"Hello", &mut b).unwrap();
        // 7.2.3.2: the second "Hello" is a back-reference.
        assert_eq!(b, [0xf2, 0x00, 0x11, 0x00, 0x00]);
        assert!(d.has_state());
        let mut d = Deflater::new(15, true, 6, 0);
        b.clear();
        d.compress(b"Hello", &mut b).unwrap();
        assert_eq!(b, a);
        assert!(!d.has_state(), "no context takeover keeps no state");
    }

    #[test]
    fn round_trip_every_window() {
        let text: Vec<u8> = (0..50_000u32)
            .map(|i| b"abcdefghij"[(i * i % 7) as usize])
            .collect();
        for bits in 8..=15 {
            let mut d = Deflater::new(bits, false, 6, 0);
            let mut i = Inflater::new(false);
            for _ in 0..3 {
                let mut c = Vec::new();
                d.compress(&text, &mut c).unwrap();
                assert!(c.len() < text.len() / 2);
                let mut out = Vec::new();
                i.inflate(&c, true, &mut out, text.len()).unwrap();
                assert_eq!(out, text);
            }
        }
    }

    #[test]
    fn empty_message() {
        let mut d = Deflater::new(15, false, 6, 0);
        let mut c = Vec::new();
        d.compress(b"", &mut c).unwrap();
        assert_eq!(c, [0x00]);
        let mut out = Vec::new();
        Inflater::new(false).inflate(&c, true, &mut out, 0).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn bomb_is_capped() {
        let zeros = vec![0u8; 10_000_000];
        let mut c = Vec::new();
        Deflater::new(15, false, 9, 0)
            .compress(&zeros, &mut c)
            .unwrap();
        assert!(c.len() < 20_000);
        let mut out = Vec::new();
        assert_eq!(
            Inflater::new(false).inflate(&c, true, &mut out, 1_000_000),
            Err(Error::TooBig)
        );
        assert!(out.capacity() <= 2_100_000, "{}", out.capacity());
    }

    #[test]
    fn garbage_is_an_inflate_error() {
        let mut out = Vec::new();
        assert_eq!(
            Inflater::new(false).inflate(&[0xff, 0xff, 0xff, 0xff], true, &mut out, 100),
            Err(Error::Inflate)
        );
    }

    #[test]
    fn negotiation() {
        let n = |h: &str, c: &DeflateConfig| negotiate([h], c).map(|(_, a)| a);
        assert_eq!(
            n("permessage-deflate", &cfg()).unwrap(),
            "permessage-deflate"
        );
        // What Node's ws offers by default.
        let (p, a) = negotiate(["permessage-deflate; client_max_window_bits"], &cfg()).unwrap();
        assert_eq!(a, "permessage-deflate");
        assert_eq!(p.client_max_window_bits, 15);
        assert_eq!(
            n(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10",
                &cfg()
            )
            .unwrap(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
        );
        let c = DeflateConfig {
            server_max_window_bits: Some(12),
            client_max_window_bits: Some(11),
            client_no_context_takeover: true,
            ..cfg()
        };
        assert_eq!(
            n("permessage-deflate; client_max_window_bits", &c).unwrap(),
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11"
        );
        assert_eq!(
            n(
                "permessage-deflate; server_max_window_bits=9; client_max_window_bits=10",
                &c
            )
            .unwrap(),
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=10"
        );
        // Invalid offers are declined; the first acceptable one wins.
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; foo",
            "x-webkit-deflate-frame",
            "",
        ] {
            assert_eq!(n(bad, &cfg()), None, "{bad}");
        }
        assert_eq!(
            n(
                "permessage-deflate; foo, permessage-deflate; server_max_window_bits=\"11\", permessage-deflate",
                &cfg()
            )
            .unwrap(),
            "permessage-deflate; server_max_window_bits=11"
        );
        // Several header lines.
        let (p, _) = negotiate(
            ["foo", "permessage-deflate; client_no_context_takeover"],
            &cfg(),
        )
        .unwrap();
        assert!(p.client_no_context_takeover && !p.server_no_context_takeover);
    }

    #[test]
    fn client_side_answer() {
        let c = cfg();
        assert_eq!(
            client_offer(&c),
            "permessage-deflate; client_max_window_bits"
        );
        assert_eq!(accept_answer(["x"], &c), Ok(None));
        let p = accept_answer(["permessage-deflate; client_max_window_bits=10"], &c)
            .unwrap()
            .unwrap();
        assert_eq!(p.client_max_window_bits, 10);
        assert_eq!(p.server_max_window_bits, 15);
        for bad in [
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; bogus",
            "permessage-deflate, permessage-deflate",
        ] {
            assert!(accept_answer([bad], &c).is_err(), "{bad}");
        }
        let c = DeflateConfig {
            server_max_window_bits: Some(10),
            ..cfg()
        };
        assert!(accept_answer(["permessage-deflate"], &c).is_err());
        assert!(accept_answer(["permessage-deflate; server_max_window_bits=9"], &c).is_ok());
    }
}
