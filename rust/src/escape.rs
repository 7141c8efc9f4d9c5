//! JSON string escaping.
//!
//! Non-ASCII UTF-8 is written raw (JSON text is UTF-8); only `"`, `\`, the C0
//! controls and DEL are escaped. The scan looks bytes up in a 256-entry table
//! (after a SWAR pre-scan, 8 bytes at a time, that finds most strings need
//! nothing) and copies each run of bytes that need no escape in one go.

use crate::sink::push_range;

/// Escape class of a byte: `0` = copy as is, `b'u'` = `\u00XX`, anything else
/// = the character that follows the backslash in a short escape.
const ESCAPE: [u8; 256] = build_escape_table();

const fn build_escape_table() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x7f] = b'u';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` to `out` as a quoted JSON string.
#[inline]
pub fn write_json_string(out: &mut Vec<u8>, s: &[u8]) {
    write_json_string_in(out, s, 0, s.len());
}

/// Appends `data[start..end]` as a quoted JSON string. Bytes of `data` after
/// `end` are never written but may be read to copy short runs in fixed-size
/// chunks (see `sink::push_range`).
#[inline]
pub fn write_json_string_in(out: &mut Vec<u8>, data: &[u8], start: usize, end: usize) {
    out.push(b'"');
    if needs_escape(&data[start..end]) {
        write_escaped(out, data, start, end);
    } else {
        push_range(out, data, start, end);
    }
    out.push(b'"');
}

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of the word is zero (exact for "any", SWAR).
#[inline(always)]
fn has_zero_byte(w: u64) -> bool {
    w.wrapping_sub(LOW_BITS) & !w & HIGH_BITS != 0
}

/// Whether any byte of `w` needs escaping: `< 0x20`, `"`, `\\` or DEL.
#[inline(always)]
fn word_needs_escape(w: u64) -> bool {
    let below_space = w.wrapping_sub(LOW_BITS * 0x20) & !w & HIGH_BITS != 0;
    below_space
        || has_zero_byte(w ^ (LOW_BITS * u64::from(b'"')))
        || has_zero_byte(w ^ (LOW_BITS * u64::from(b'\\')))
        || has_zero_byte(w ^ (LOW_BITS * 0x7f))
}

/// Whether any byte of `s` needs escaping, 8 bytes at a time.
#[inline]
pub fn needs_escape(s: &[u8]) -> bool {
    let mut words = s.chunks_exact(8);
    let mut acc = false;
    for word in &mut words {
        let w = u64::from_le_bytes(word.try_into().expect("chunks_exact(8)"));
        acc |= word_needs_escape(w);
    }
    acc || words.remainder().iter().any(|&b| ESCAPE[b as usize] != 0)
}

/// Appends the escaped body of `data[start..end]` (without quotes).
#[inline(never)]
fn write_escaped(out: &mut Vec<u8>, data: &[u8], start: usize, end: usize) {
    let mut run = start;
    for i in start..end {
        let byte = data[i];
        let class = ESCAPE[byte as usize];
        if class == 0 {
            continue;
        }
        push_range(out, data, run, i);
        if class == b'u' {
            let esc = [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(byte >> 4) as usize],
                HEX[(byte & 0xf) as usize],
            ];
            out.extend_from_slice(&esc);
        } else {
            out.extend_from_slice(&[b'\\', class]);
        }
        run = i + 1;
    }
    push_range(out, data, run, end);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(s: &str) -> String {
        let mut out = Vec::new();
        write_json_string(&mut out, s.as_bytes());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plain_ascii_is_copied() {
        assert_eq!(quoted("hello world"), r#""hello world""#);
        assert_eq!(quoted(""), r#""""#);
    }

    #[test]
    fn quotes_and_backslashes() {
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quoted(r#"""#), r#""\"""#);
        assert_eq!(quoted("\\"), r#""\\""#);
    }

    #[test]
    fn short_escapes() {
        assert_eq!(quoted("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
    }

    #[test]
    fn other_controls_and_del_use_unicode_escapes() {
        assert_eq!(quoted("\u{0}"), r#""\u0000""#);
        assert_eq!(quoted("a\u{1f}b"), r#""a\u001fb""#);
        assert_eq!(quoted("\u{7f}"), r#""\u007f""#);
        assert_eq!(quoted("\u{b}\u{1}"), r#""\u000b\u0001""#);
    }

    #[test]
    fn non_ascii_is_raw() {
        assert_eq!(quoted("héllo ☃ 𝄞 😀"), "\"héllo ☃ 𝄞 😀\"");
        // U+0080..U+009F are C1 controls: valid raw in JSON.
        assert_eq!(quoted("\u{85}"), "\"\u{85}\"");
    }

    #[test]
    fn swar_scan_agrees_with_the_table_at_every_position() {
        for b in 0u8..=255 {
            let expected = ESCAPE[b as usize] != 0;
            for len in 1..20 {
                for pos in 0..len {
                    let mut s = vec![b'a'; len];
                    s[pos] = b;
                    assert_eq!(needs_escape(&s), expected, "byte {b:#x} at {pos}/{len}");
                }
            }
        }
        // Bytes next to the special ones must not trigger it.
        assert!(!needs_escape(b" !#$[]^~\x80\xff 0123456789abcdef"));
    }

    #[test]
    fn long_strings_with_escapes_in_every_chunk() {
        let s = "x".repeat(70) + "\"" + &"é".repeat(40) + "\n" + &"y".repeat(100);
        let expected = format!("\"{}\"", s.replace('"', "\\\"").replace('\n', "\\n"));
        assert_eq!(quoted(&s), expected);
    }

    #[test]
    fn every_byte_roundtrips_through_the_table() {
        for b in 0u8..0x80 {
            let s = String::from(b as char);
            let q = quoted(&s);
            let needs = b < 0x20 || b == 0x7f || b == b'"' || b == b'\\';
            assert_eq!(q.len() > 3, needs, "byte {b:#x} -> {q}");
        }
    }
}
