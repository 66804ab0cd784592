//! RFC 6455 frame headers: parse, encode, masking.

use super::Error;

/// Continuation frame.
pub const OP_CONTINUATION: u8 = 0x0;
/// Text frame.
pub const OP_TEXT: u8 = 0x1;
/// Binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frame.
pub const OP_PING: u8 = 0x9;
/// Pong frame.
pub const OP_PONG: u8 = 0xA;

/// The RSV1 bit (per-message compressed, with permessage-deflate).
pub const RSV1: u8 = 0x4;

/// Largest payload of a control frame.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Largest frame header: 2 bytes, a 64-bit length, a 4-byte mask.
pub const MAX_HEADER: usize = 14;

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Last frame of its message.
    pub fin: bool,
    /// RSV1..3 as the low three bits (RSV1 = 0b100).
    pub rsv: u8,
    /// The opcode (4 bits).
    pub opcode: u8,
    /// Masking key, when the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// Payload length.
    pub len: u64,
}

impl FrameHeader {
    /// Whether the opcode is a control frame's (close, ping, pong and reserved 0xB..0xF).
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// Parses a frame header from the start of `b`: `Ok(None)` until the whole header is there, then the
/// header and its length in bytes. A 64-bit length with its top bit set is a protocol error.
pub fn parse_header(b: &[u8]) -> Result<Option<(FrameHeader, usize)>, Error> {
    if b.len() < 2 {
        return Ok(None);
    }
    let fin = b[0] & 0x80 != 0;
    let rsv = (b[0] >> 4) & 0x7;
    let opcode = b[0] & 0x0f;
    let masked = b[1] & 0x80 != 0;
    let (len, mut at) = match b[1] & 0x7f {
        126 => {
            if b.len() < 4 {
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([b[2], b[3]])), 4)
        }
        127 => {
            if b.len() < 10 {
                return Ok(None);
            }
            let mut l = [0; 8];
            l.copy_from_slice(&b[2..10]);
            let len = u64::from_be_bytes(l);
            if len >> 63 != 0 {
                return Err(Error::Protocol("64-bit length with its top bit set"));
            }
            (len, 10)
        }
        n => (u64::from(n), 2),
    };
    let mask = if masked {
        if b.len() < at + 4 {
            return Ok(None);
        }
        let m = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        at += 4;
        Some(m)
    } else {
        None
    };
    Ok(Some((
        FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            len,
        },
        at,
    )))
}

/// Appends a frame header to `out`, with the shortest length encoding.
pub fn write_header(
    out: &mut Vec<u8>,
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    len: usize,
) {
    out.push((u8::from(fin) << 7) | ((rsv & 0x7) << 4) | (opcode & 0xf));
    let m = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        out.push(m | len as u8);
    } else if let Ok(l) = u16::try_from(len) {
        out.push(m | 126);
        out.extend_from_slice(&l.to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if let Some(k) = mask {
        out.extend_from_slice(&k);
    }
}

/// XORs `data` with `mask`, as if `data` started at `offset` bytes into the payload.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut k = [0u8; 4];
    for (i, b) in k.iter_mut().enumerate() {
        *b = mask[(offset + i) % 4];
    }
    // Eight bytes at a time: a byte loop costs about four times as many instructions on large messages.
    let wide = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ wide).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= k[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_all_lengths() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 1 << 33] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut out = Vec::new();
                write_header(&mut out, true, RSV1, OP_BINARY, mask, len);
                let (h, n) = parse_header(&out).unwrap().unwrap();
                assert_eq!(n, out.len());
                assert_eq!(
                    h,
                    FrameHeader {
                        fin: true,
                        rsv: RSV1,
                        opcode: OP_BINARY,
                        mask,
                        len: len as u64
                    }
                );
                // Every prefix is incomplete, never an error.
                for i in 0..out.len() {
                    assert_eq!(parse_header(&out[..i]), Ok(None));
                }
            }
        }
    }

    #[test]
    fn length_encodings_are_shortest() {
        let mut out = Vec::new();
        write_header(&mut out, true, 0, OP_TEXT, None, 125);
        assert_eq!(out, [0x81, 125]);
        out.clear();
        write_header(&mut out, true, 0, OP_TEXT, None, 126);
        assert_eq!(out, [0x81, 126, 0, 126]);
        out.clear();
        write_header(&mut out, false, 0, OP_TEXT, None, 65536);
        assert_eq!(out, [0x01, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn top_bit_length_is_an_error() {
        let b = [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert!(parse_header(&b).is_err());
    }

    #[test]
    fn rfc_masked_hello() {
        // RFC 6455 section 5.7: a masked "Hello".
        let b = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (h, n) = parse_header(&b).unwrap().unwrap();
        let mut p = b[n..].to_vec();
        apply_mask(&mut p, h.mask.unwrap(), 0);
        assert_eq!(p, b"Hello");
    }

    #[test]
    fn mask_with_offset_matches_bytewise() {
        let data: Vec<u8> = (0..100u8).collect();
        let mask = [0xde, 0xad, 0xbe, 0xef];
        let mut whole = data.clone();
        apply_mask(&mut whole, mask, 0);
        let mut split = data.clone();
        let (a, b) = split.split_at_mut(13);
        apply_mask(a, mask, 0);
        apply_mask(b, mask, 13);
        assert_eq!(whole, split);
        let expected: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(whole, expected);
    }
}
