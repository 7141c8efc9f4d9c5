//! Appending short byte runs to the output `Vec<u8>` without `memcpy` calls.
//!
//! Most values written are 1–60 bytes long. `extend_from_slice` with a
//! length known only at run time becomes a call to libc `memmove`, which
//! dominated the profile. Copying a *fixed-size* chunk (inlined as a few
//! vector moves) and then truncating to the real length is much cheaper;
//! the overshoot is overwritten by the next value.

/// Appends the first `len` bytes of `chunk` (`len <= N`).
#[inline(always)]
pub fn push_padded<const N: usize>(out: &mut Vec<u8>, chunk: &[u8; N], len: usize) {
    debug_assert!(len <= N);
    let end = out.len() + len;
    out.extend_from_slice(chunk);
    out.truncate(end);
}

/// Appends up to `N` bytes produced by `fill`, which writes them straight
/// into the output and returns how many it wrote.
///
/// Formatting digits into a local array and then copying it would reload
/// freshly stored bytes with wider loads, which stalls store-to-load
/// forwarding; writing in place avoids that.
#[inline(always)]
pub fn push_with<const N: usize>(out: &mut Vec<u8>, fill: impl FnOnce(&mut [u8; N]) -> usize) {
    let start = out.len();
    out.extend_from_slice(&[0u8; N]);
    let dst = out.last_chunk_mut::<N>().expect("just extended by N bytes");
    let len = fill(dst);
    debug_assert!(len <= N);
    out.truncate(start + len);
}

/// Appends `data[start..end]`, reading up to 63 bytes past `end` (when
/// `data` has them) so short runs are copied as fixed-size chunks.
#[inline(always)]
pub fn push_range(out: &mut Vec<u8>, data: &[u8], start: usize, end: usize) {
    let len = end - start;
    let tail = &data[start..];
    if len <= 16 {
        if let Some(chunk) = tail.first_chunk::<16>() {
            return push_padded(out, chunk, len);
        }
    } else if len <= 32 {
        if let Some(chunk) = tail.first_chunk::<32>() {
            return push_padded(out, chunk, len);
        }
    } else if len <= 64 {
        if let Some(chunk) = tail.first_chunk::<64>() {
            return push_padded(out, chunk, len);
        }
    }
    out.extend_from_slice(&data[start..end]);
}

/// A short byte string (a JSON key, a base64 prefix) stored padded so it can
/// be appended with `push_padded`.
#[derive(Debug, Clone)]
pub struct Fragment {
    padded: [u8; Self::CAP],
    len: usize,
    /// Used instead when longer than `CAP`.
    long: Option<Box<[u8]>>,
}

impl Fragment {
    const CAP: usize = 64;

    pub fn new(bytes: &[u8]) -> Self {
        let mut padded = [0u8; Self::CAP];
        let long = if bytes.len() <= Self::CAP {
            padded[..bytes.len()].copy_from_slice(bytes);
            None
        } else {
            Some(bytes.into())
        };
        Self {
            padded,
            len: bytes.len(),
            long,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.long {
            Some(long) => long,
            None => &self.padded[..self.len],
        }
    }

    #[inline(always)]
    pub fn push_to(&self, out: &mut Vec<u8>) {
        // Copy the smallest padded prefix that holds the fragment: keys are
        // mostly under 32 bytes.
        match &self.long {
            None if self.len <= 32 => {
                let chunk = self.padded.first_chunk::<32>().expect("CAP >= 32");
                push_padded(out, chunk, self.len);
            }
            None => push_padded(out, &self.padded, self.len),
            Some(long) => out.extend_from_slice(long),
        }
    }
}

/// `"00".."99"` concatenated: two ASCII digits per index.
pub const DIGITS2: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Longest decimal integer: `-9223372036854775808` or `18446744073709551615`.
pub const MAX_INT_LEN: usize = 20;

/// Integers that can be written as decimal text.
pub trait DecimalInt: Copy {
    /// `(is_negative, magnitude)`.
    fn split(self) -> (bool, u64);
}

macro_rules! impl_signed {
    ($($t:ty),*) => {$(
        impl DecimalInt for $t {
            #[inline(always)]
            fn split(self) -> (bool, u64) {
                (self < 0, i64::from(self).unsigned_abs())
            }
        }
    )*};
}

macro_rules! impl_unsigned {
    ($($t:ty),*) => {$(
        impl DecimalInt for $t {
            #[inline(always)]
            fn split(self) -> (bool, u64) {
                (false, u64::from(self))
            }
        }
    )*};
}

impl_signed!(i8, i16, i32, i64);
impl_unsigned!(u8, u16, u32, u64);

const POW10: [u64; 20] = {
    let mut table = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// Number of decimal digits of `v` (1 for 0).
#[inline(always)]
fn digit_count(v: u64) -> usize {
    // Bit length -> approximate log10 (bits * log10(2)), corrected by one
    // comparison. `v | 1` has the same digit count as `v` and makes 0 one digit.
    let v = v | 1;
    let approx = (((64 - v.leading_zeros()) * 1233) >> 12) as usize; // <= 19
    approx + usize::from(v >= POW10[approx])
}

/// Writes `value` in decimal into `buf` from index `at`; returns its length.
/// `buf` needs `at + MAX_INT_LEN` bytes.
#[inline(always)]
pub fn format_int<I: DecimalInt>(value: I, buf: &mut [u8], at: usize) -> usize {
    let (negative, mut v) = value.split();
    let len = digit_count(v) + usize::from(negative);
    let mut pos = at + len;
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        pos -= 2;
        buf[pos] = DIGITS2[pair];
        buf[pos + 1] = DIGITS2[pair + 1];
    }
    if v >= 10 {
        let pair = v as usize * 2;
        pos -= 2;
        buf[pos] = DIGITS2[pair];
        buf[pos + 1] = DIGITS2[pair + 1];
    } else {
        pos -= 1;
        buf[pos] = b'0' + v as u8;
    }
    if negative {
        buf[at] = b'-';
    }
    len
}

/// Appends `value` in decimal.
#[inline(always)]
pub fn push_int<I: DecimalInt>(out: &mut Vec<u8>, value: I) {
    push_with::<MAX_INT_LEN>(out, |dst| format_int(value, dst, 0));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int_text<I: DecimalInt>(v: I) -> String {
        let mut out = b"x".to_vec();
        push_int(&mut out, v);
        String::from_utf8(out[1..].to_vec()).unwrap()
    }

    #[test]
    fn digit_count_at_every_power_of_ten() {
        assert_eq!(digit_count(0), 1);
        assert_eq!(digit_count(u64::MAX), 20);
        for (i, &p) in POW10.iter().enumerate() {
            assert_eq!(digit_count(p), i + 1, "{p}");
            if p > 1 {
                assert_eq!(digit_count(p - 1), i, "{}", p - 1);
            }
        }
    }

    #[test]
    fn integers_match_std_formatting() {
        let mut samples: Vec<i64> = vec![0, 1, -1, 9, 10, 99, 100, -100, i64::MIN, i64::MAX];
        for p in POW10.iter().take(19) {
            let p = *p as i64;
            samples.extend([p - 1, p, p + 1, -(p - 1), -p, -(p + 1)]);
        }
        for v in samples {
            assert_eq!(int_text(v), v.to_string());
        }
        for v in [
            0u64,
            9,
            10,
            u64::MAX,
            u64::MAX - 1,
            10_000_000_000_000_000_000,
        ] {
            assert_eq!(int_text(v), v.to_string());
        }
        assert_eq!(int_text(i8::MIN), "-128");
        assert_eq!(int_text(i16::MIN), "-32768");
        assert_eq!(int_text(i32::MIN), "-2147483648");
        assert_eq!(int_text(u8::MAX), "255");
        assert_eq!(int_text(u16::MAX), "65535");
        assert_eq!(int_text(u32::MAX), "4294967295");
    }

    #[test]
    fn integers_pseudo_random() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let shift = x % 64;
            let v = x >> shift;
            assert_eq!(int_text(v), v.to_string());
            assert_eq!(int_text(v as i64), (v as i64).to_string());
        }
    }

    #[test]
    fn push_with_keeps_only_what_was_written() {
        let mut out = b"ab".to_vec();
        push_with::<8>(&mut out, |dst| {
            dst[..3].copy_from_slice(b"xyz");
            3
        });
        push_with::<4>(&mut out, |_| 0);
        assert_eq!(out, b"abxyz");
    }

    #[test]
    fn push_range_copies_exactly() {
        let data: Vec<u8> = (0..200u8).collect();
        for start in [0, 5, 100, 150, 199, 200] {
            for end in start..=200 {
                let mut out = b"ab".to_vec();
                push_range(&mut out, &data, start, end);
                assert_eq!(&out[..2], b"ab");
                assert_eq!(&out[2..], &data[start..end]);
            }
        }
    }

    #[test]
    fn fragments_short_and_long() {
        for len in [0, 1, 63, 64, 65, 300] {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let f = Fragment::new(&bytes);
            assert_eq!(f.len(), len);
            assert_eq!(f.as_bytes(), &bytes[..]);
            let mut out = vec![7u8];
            f.push_to(&mut out);
            assert_eq!(&out[1..], &bytes[..]);
        }
    }
}
