//! The Collector's original (`hash_seed`) sampling decision: FNV-1a (32
//! bit) over the seed's four bytes, least significant first, then the
//! trace id; the low 14 bits of the hash are kept when below
//! `percentage * 16384 / 100` computed in 32-bit floating point and
//! truncated. Sidecars running this and Collectors with the same seed and
//! percentage keep exactly the same traces.
//!
//! FNV-1a 32 is written here: the `fnv` crate we use elsewhere has only
//! the 64-bit variant, and the function is six lines.

const FNV_OFFSET_BASIS: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;
/// 2^14 buckets; the Collector's precision for this mode.
pub const BUCKETS: u32 = 0x4000;

/// FNV-1a over `seed` (little-endian) followed by `bytes`.
pub fn hash(bytes: &[u8], seed: u32) -> u32 {
    seed.to_le_bytes()
        .iter()
        .chain(bytes)
        .fold(FNV_OFFSET_BASIS, |hash, byte| {
            (hash ^ u32::from(*byte)).wrapping_mul(FNV_PRIME)
        })
}

/// The number of buckets (of 2^14) kept at `percentage`, as the Collector
/// computes it: `uint32(float32(pct) * 163.84)`.
pub fn scaled_rate(percentage: f32) -> u32 {
    let percentage = percentage.clamp(0.0, 100.0);
    (percentage * (BUCKETS as f32 / 100.0)) as u32
}

/// Whether `bytes` (a trace id, or a log record's attribute) is kept.
pub fn keeps(bytes: &[u8], seed: u32, scaled_rate: u32) -> bool {
    hash(bytes, seed) & (BUCKETS - 1) < scaled_rate
}

/// The 56-bit randomness the Collector writes as `rv` for a hash: the
/// inverted 14-bit bucket on top (so `rv >= th` is the same decision),
/// the 18 unused hash bits mixed into the middle, the bucket at the
/// bottom.
pub fn randomness(hashed32: u32) -> u64 {
    let bucket = u64::from(hashed32 & (BUCKETS - 1));
    let inverted = u64::from(BUCKETS) - 1 - bucket;
    let unused18 = u64::from(hashed32 >> 14);
    let mixed28 = unused18 ^ (unused18 << 10);
    (inverted << 42) | (mixed28 << 14) | bucket
}

/// The rejection threshold that matches `scaled_rate` in the W3C form.
pub fn threshold(scaled_rate: u32) -> super::w3c::Threshold {
    super::w3c::Threshold(u64::from(BUCKETS - scaled_rate.min(BUCKETS)) << 42)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_vectors() {
        // FNV-1a 32 of "", "a" and "foobar" (Noll's test vectors); with
        // no seed bytes the fold is plain FNV-1a.
        let plain = |bytes: &[u8]| {
            bytes.iter().fold(FNV_OFFSET_BASIS, |h, b| {
                (h ^ u32::from(*b)).wrapping_mul(FNV_PRIME)
            })
        };
        assert_eq!(plain(b""), 0x811c9dc5);
        assert_eq!(plain(b"a"), 0xe40c292c);
        assert_eq!(plain(b"foobar"), 0xbf9cf968);
        // The seed goes first, least significant byte first.
        assert_eq!(hash(b"", 0x64636261), plain(b"abcd"));
        assert_eq!(hash(b"ar", 0x626f6f66), plain(b"foobar"));
    }

    #[test]
    fn scaled_rate_truncates_in_32_bit_floating_point() {
        assert_eq!(scaled_rate(100.0), 16384);
        assert_eq!(scaled_rate(150.0), 16384);
        assert_eq!(scaled_rate(50.0), 8192);
        assert_eq!(scaled_rate(33.33), 5460);
        assert_eq!(scaled_rate(0.001), 0);
        assert_eq!(scaled_rate(0.01), 1);
    }

    #[test]
    fn randomness_and_threshold_give_the_same_decision_as_the_bucket() {
        for hashed in [0u32, 1, 0x3fff, 0x4000, 0xdead_beef, u32::MAX] {
            for rate in [1u32, 5460, 8192, 16383, 16384] {
                let by_bucket = hashed & (BUCKETS - 1) < rate;
                assert_eq!(
                    threshold(rate).should_sample(randomness(hashed)),
                    by_bucket,
                    "{hashed:#x} at {rate}"
                );
            }
        }
        assert_eq!(threshold(8192).tvalue().unwrap(), "8");
    }
}
