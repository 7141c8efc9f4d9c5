//! Relay-style global ids: standard base64 (with padding) of `"TypeName:<id>"`.
//!
//! Base64 encodes each 3-byte group on its own, so the leading
//! `3 * floor(len / 3)` bytes of `"TypeName:"` are encoded once per type; per
//! value only the 0–2 leftover prefix bytes plus the decimal digits (at most
//! 22 bytes) are encoded, on the stack.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::sink::{format_int, push_with, DecimalInt, Fragment, MAX_INT_LEN};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Longest per-value input: 2 leftover prefix bytes + 20 digits (or a sign
/// and 19 digits) = 22 bytes -> 32 base64 chars.
const MAX_TAIL_IN: usize = 2 + MAX_INT_LEN;
const MAX_TAIL_OUT: usize = MAX_TAIL_IN.div_ceil(3) * 4;

/// Precomputed `"TypeName:"` for one GraphQL type.
#[derive(Debug, Clone)]
pub struct GlobalIdPrefix {
    /// `"` + base64 of the 3-byte-aligned head of `"TypeName:"`.
    quoted_head: Fragment,
    /// The 0–2 bytes of `"TypeName:"` after the aligned head.
    tail: [u8; 2],
    tail_len: usize,
}

impl GlobalIdPrefix {
    pub fn new(type_name: &str) -> Self {
        let mut prefix = Vec::with_capacity(type_name.len() + 1);
        prefix.extend_from_slice(type_name.as_bytes());
        prefix.push(b':');
        let head_len = prefix.len() / 3 * 3;
        let quoted_head = format!("\"{}", STANDARD.encode(&prefix[..head_len]));
        let mut tail = [0u8; 2];
        let tail_len = prefix.len() - head_len;
        tail[..tail_len].copy_from_slice(&prefix[head_len..]);
        Self {
            quoted_head: Fragment::new(quoted_head.as_bytes()),
            tail,
            tail_len,
        }
    }

    /// Quoted length for a 10-digit id, to size output buffers.
    pub fn typical_quoted_len(&self) -> usize {
        self.quoted_head.len() + (self.tail_len + 10).div_ceil(3) * 4 + 1
    }

    /// Appends the id as a quoted JSON string (base64 needs no escaping).
    #[inline]
    pub fn write_quoted<I: DecimalInt>(&self, id: I, out: &mut Vec<u8>) {
        let mut raw = [0u8; MAX_TAIL_IN];
        raw[..2].copy_from_slice(&self.tail);
        let raw_len = self.tail_len + format_int(id, &mut raw, self.tail_len);
        self.quoted_head.push_to(out);
        // One spare byte for the closing quote.
        push_with::<{ MAX_TAIL_OUT + 1 }>(out, |dst| {
            let len = encode_short(&raw[..raw_len], dst);
            dst[len] = b'"';
            len + 1
        });
    }
}

/// Standard padded base64 of `input` (at most `MAX_TAIL_IN` bytes) into `out`;
/// returns the encoded length.
#[inline(always)]
fn encode_short(input: &[u8], out: &mut [u8; MAX_TAIL_OUT + 1]) -> usize {
    let mut n = 0;
    let mut chunks = input.chunks_exact(3);
    for c in &mut chunks {
        let v = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        out[n] = ALPHABET[(v >> 18) as usize & 63];
        out[n + 1] = ALPHABET[(v >> 12) as usize & 63];
        out[n + 2] = ALPHABET[(v >> 6) as usize & 63];
        out[n + 3] = ALPHABET[v as usize & 63];
        n += 4;
    }
    match *chunks.remainder() {
        [a] => {
            let v = u32::from(a) << 16;
            out[n] = ALPHABET[(v >> 18) as usize & 63];
            out[n + 1] = ALPHABET[(v >> 12) as usize & 63];
            out[n + 2] = b'=';
            out[n + 3] = b'=';
            n += 4;
        }
        [a, b] => {
            let v = (u32::from(a) << 16) | (u32::from(b) << 8);
            out[n] = ALPHABET[(v >> 18) as usize & 63];
            out[n + 1] = ALPHABET[(v >> 12) as usize & 63];
            out[n + 2] = ALPHABET[(v >> 6) as usize & 63];
            out[n + 3] = b'=';
            n += 4;
        }
        _ => {}
    }
    n
}

/// The global id of `(type_name, id)` as a `String` (the Python helper).
pub fn global_id(type_name: &str, id: i64) -> String {
    let mut out = Vec::new();
    GlobalIdPrefix::new(type_name).write_quoted(id, &mut out);
    // Base64 is ASCII; strip the JSON quotes.
    String::from_utf8_lossy(&out[1..out.len() - 1]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(type_name: &str, id: impl std::fmt::Display) -> String {
        STANDARD.encode(format!("{type_name}:{id}"))
    }

    #[test]
    fn known_values() {
        // base64.b64encode(b"ViewerSession:42")
        assert_eq!(global_id("ViewerSession", 42), "Vmlld2VyU2Vzc2lvbjo0Mg==");
        assert_eq!(global_id("Stream", 1), "U3RyZWFtOjE=");
    }

    #[test]
    fn matches_base64_crate_for_all_alignments() {
        let names = [
            "",
            "A",
            "Ab",
            "Abc",
            "Stream",
            "ViewerSession",
            "Ünïcode",
            "X".repeat(100).as_str(),
        ]
        .map(String::from);
        let ids: [i64; 12] = [
            0,
            1,
            -1,
            9,
            10,
            99,
            100,
            12_345,
            1 << 40,
            -(1 << 40),
            i64::MIN,
            i64::MAX,
        ];
        for name in &names {
            let prefix = GlobalIdPrefix::new(name);
            for id in ids {
                let mut out = Vec::new();
                prefix.write_quoted(id, &mut out);
                assert_eq!(
                    out,
                    format!("\"{}\"", reference(name, id)).into_bytes(),
                    "{name}:{id}"
                );
            }
            let mut out = Vec::new();
            prefix.write_quoted(u64::MAX, &mut out);
            assert_eq!(
                out,
                format!("\"{}\"", reference(name, u64::MAX)).into_bytes()
            );
        }
    }

    #[test]
    fn encode_short_matches_base64_crate() {
        let data: Vec<u8> = (0u8..=255).collect();
        for len in 0..=MAX_TAIL_IN {
            for start in [0usize, 7, 200] {
                let input = &data[start..start + len];
                let mut out = [0u8; MAX_TAIL_OUT + 1];
                let n = encode_short(input, &mut out);
                assert_eq!(&out[..n], STANDARD.encode(input).as_bytes());
            }
        }
    }
}
