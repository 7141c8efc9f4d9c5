//! A fast path for `f64` values that are short decimals (`52.3651`, `0.25`).
//!
//! Measured data (coordinates, ratios, seconds) mostly has a few fractional
//! digits, and the general shortest-round-trip algorithm (zmij) was the
//! encoder's hottest function. For such a value, the shortest text is the
//! decimal with the fewest fractional digits that reads back as the same
//! `f64`; finding it takes one multiplication and one division. Anything
//! else falls back to zmij, and the output is the same text zmij writes
//! (checked against it in the tests below).

use crate::sink::{push_with, DIGITS2};

/// Most fractional digits tried before falling back.
const MAX_FRACTION_DIGITS: usize = 6;

/// Bounds of the fast path: below `MIN_ABS` zmij may switch to exponent
/// notation; below `MAX_ABS` one unit in the last place is far smaller than
/// `10^-MAX_FRACTION_DIGITS`, so at most one decimal with that many digits
/// reads back as the value, which makes it the shortest text, and
/// `|v| * 10^6 < 2^53` keeps every scaled integer exact.
const MIN_ABS: f64 = 1e-3;
const MAX_ABS: f64 = 1e8;

/// Longest text written here: `-99999999.999999`.
const MAX_LEN: usize = 16;

/// Appends `v` as its shortest round-trip decimal and returns `true` if `v`
/// is a short decimal in range; otherwise writes nothing and returns `false`.
#[inline(always)]
pub fn write_short_decimal(v: f64, out: &mut Vec<u8>) -> bool {
    const SCALE: f64 = 1e6; // 10^MAX_FRACTION_DIGITS
    let abs = v.abs();
    if !(MIN_ABS..MAX_ABS).contains(&abs) {
        return false;
    }
    // In range, `abs * 10^6` is within 0.02 of the integer a decimal with at most six
    // fractional digits would scale to, so rounding finds it (truncating `+ 0.5`: one SSE2
    // conversion, where `f64::round` is a libm call on baseline x86-64). The division is
    // correctly rounded and `n` and the scale are exact, so equality means `n / 10^6` reads
    // back as `abs`; by the uniqueness above, without its trailing zeros it is the
    // shortest text.
    let mut n = (abs * SCALE + 0.5) as u64;
    if n as f64 / SCALE != abs {
        return false;
    }
    let mut digits = MAX_FRACTION_DIGITS;
    while n % 10 == 0 {
        if digits == 1 {
            return false; // integral: zmij writes those its own way (`2.0`)
        }
        n /= 10;
        digits -= 1;
    }
    push_with::<MAX_LEN>(out, |dst| format_fixed(v < 0.0, n, digits, dst));
    true
}

/// Appends finite `v` as Python's `repr` writes it (the sync API's JSON is Python's): zmij's
/// shortest digits, with Python's layout where the two differ. zmij writes `1e-5 ..= 1e-4`
/// in fixed notation (`0.000015`) and negative exponents with one digit (`1e-7`); Python
/// switches to exponents below `1e-4` and pads them to two digits (`1.5e-05`, `1e-07`).
pub fn write_python_repr<F: zmij::Float>(v: F, out: &mut Vec<u8>) {
    let mut buf = zmij::Buffer::new();
    let text = buf.format_finite(v).as_bytes();
    let (sign, body) = match text.split_first() {
        Some((b'-', rest)) => (&text[..1], rest),
        _ => (&text[..0], text),
    };
    if let Some(digits) = body.strip_prefix(b"0.0000") {
        // 1e-5 <= |v| < 1e-4: "0.0000ddd" is d.dd * 10^-5
        out.extend_from_slice(sign);
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.extend_from_slice(b"e-05");
    } else if let Some(e) = body.iter().position(|&b| b == b'e') {
        out.extend_from_slice(&text[..sign.len() + e + 1]);
        let exponent = &body[e + 1..];
        match exponent {
            [b'-', digit] => out.extend_from_slice(&[b'-', b'0', *digit]),
            _ => out.extend_from_slice(exponent),
        }
    } else {
        out.extend_from_slice(text);
    }
}

/// Writes `n / 10^digits` in fixed notation (`digits` >= 1); returns its length.
#[inline(always)]
fn format_fixed(negative: bool, n: u64, digits: usize, dst: &mut [u8; MAX_LEN]) -> usize {
    // One arm per digit count, so every division below is by a constant.
    match digits {
        1 => format_fixed_n::<1>(negative, n, dst),
        2 => format_fixed_n::<2>(negative, n, dst),
        3 => format_fixed_n::<3>(negative, n, dst),
        4 => format_fixed_n::<4>(negative, n, dst),
        5 => format_fixed_n::<5>(negative, n, dst),
        _ => format_fixed_n::<6>(negative, n, dst),
    }
}

#[inline(always)]
fn format_fixed_n<const DIGITS: usize>(negative: bool, n: u64, dst: &mut [u8; MAX_LEN]) -> usize {
    let divisor = 10u64.pow(DIGITS as u32);
    let (int_part, mut frac) = (n / divisor, n % divisor);
    let mut pos = usize::from(negative);
    dst[0] = b'-'; // overwritten below when not negative
    pos += crate::sink::format_int(int_part, dst, pos);
    dst[pos] = b'.';
    pos += 1;
    // Fraction digits, zero-padded to DIGITS, written from the right.
    let end = pos + DIGITS;
    let mut at = end;
    for _ in 0..DIGITS / 2 {
        let pair = (frac % 100) as usize * 2;
        frac /= 100;
        at -= 2;
        dst[at] = DIGITS2[pair];
        dst[at + 1] = DIGITS2[pair + 1];
    }
    if DIGITS % 2 == 1 {
        dst[pos] = b'0' + frac as u8;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zmij_text(v: f64) -> String {
        zmij::Buffer::new().format_finite(v).to_owned()
    }

    fn fast_text(v: f64) -> Option<String> {
        let mut out = b"x".to_vec();
        write_short_decimal(v, &mut out).then(|| String::from_utf8(out[1..].to_vec()).unwrap())
    }

    fn check(v: f64) -> bool {
        match fast_text(v) {
            Some(text) => {
                assert_eq!(text, zmij_text(v), "value {v:e}");
                assert_eq!(text.parse::<f64>().unwrap(), v);
                true
            }
            None => false,
        }
    }

    fn python_text(v: f64) -> String {
        let mut out = Vec::new();
        write_python_repr(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn layout_is_pythons() {
        // (value, Python's repr)
        for (v, want) in [
            (1e-5, "1e-05"),
            (-1.5e-5, "-1.5e-05"),
            (1.2345e-5, "1.2345e-05"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (1e-7, "1e-07"),
            (-2.5e-9, "-2.5e-09"),
            (1e-10, "1e-10"),
            (5e-324, "5e-324"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (1e300, "1e+300"),
            (2.0, "2.0"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
        ] {
            assert_eq!(python_text(v), want, "{v:e}");
        }
    }

    #[test]
    fn typical_values() {
        for v in [
            52.3651, 4.8921, -33.8688, 0.6112, 22.18, 0.5, -0.25, 0.001, 0.0015, 99999999.5,
        ] {
            assert!(check(v), "{v} should take the fast path");
        }
        for v in [
            1.0,
            10.0,
            0.0,
            -0.0,
            1e-4,
            1e8,
            1e300,
            0.1 + 0.2,
            f64::MIN_POSITIVE,
        ] {
            assert!(!check(v), "{v} should fall back");
        }
    }

    #[test]
    fn short_decimals_at_every_scale_match_zmij() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut taken = 0;
        for _ in 0..400_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let digits = (x % 7) as i32;
            let n = (x >> 8) % 100_000_000;
            let v = n as f64 / 10f64.powi(digits);
            let v = if x & 1 == 0 { v } else { -v };
            taken += usize::from(check(v));
        }
        assert!(taken > 100_000, "only {taken} took the fast path");
    }

    #[test]
    fn random_doubles_match_zmij_or_fall_back() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..400_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
            check(unit * 1e8);
            check(unit);
            check(f64::from_bits(x));
            // values next to short decimals: one ulp away must not be printed short
            let near = 12.3456f64 + unit * 1e-6;
            check(near);
            check(f64::from_bits(52.3651f64.to_bits() + (x % 3)));
        }
    }
}
