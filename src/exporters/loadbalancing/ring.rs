//! The consistent-hash ring: every endpoint owns [`POINTS_PER_ENDPOINT`]
//! points on a 64-bit circle and a key goes to the owner of the first
//! point at or after the key's hash. Removing an endpoint hands only its
//! own keys to the others, adding one takes about 1/N of the keys, as the
//! Collector's `loadbalancing` exporter does with its ring.
//!
//! Hashing is FNV-1a 64 (the `fnv` crate): stable across builds and
//! processes, which a front tier of several sidewatch instances needs to
//! route the same key to the same backend.

use std::hash::Hasher;

/// Several points per endpoint even out the arcs each one owns; with one
/// point, three endpoints could split the keys 80/15/5.
pub const POINTS_PER_ENDPOINT: u32 = 100;

#[derive(Debug, Clone, Default)]
pub struct Ring {
    /// (position, index into `endpoints`), sorted by position.
    points: Vec<(u64, usize)>,
    endpoints: Vec<String>,
}

pub fn hash(bytes: &[u8]) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(bytes);
    // FNV's low bits mix poorly for short keys that differ only at the
    // end; a final avalanche spreads them over the whole circle.
    mix(hasher.finish())
}

/// The finaliser of SplitMix64.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Ring {
    /// A ring of `endpoints` (duplicates collapse; the order does not
    /// matter: a ring is the same whatever order the resolver answered in).
    pub fn new(endpoints: impl IntoIterator<Item = String>) -> Ring {
        let mut endpoints: Vec<String> = endpoints.into_iter().collect();
        endpoints.sort();
        endpoints.dedup();
        let mut points = Vec::with_capacity(endpoints.len() * POINTS_PER_ENDPOINT as usize);
        for (index, endpoint) in endpoints.iter().enumerate() {
            for point in 0..POINTS_PER_ENDPOINT {
                points.push((hash(format!("{endpoint}#{point}").as_bytes()), index));
            }
        }
        points.sort_unstable();
        Ring { points, endpoints }
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The endpoint owning `key_hash`, skipping those `skip` refuses: the
    /// next live endpoint clockwise, so a dead backend's keys spread over
    /// the others as they would if it were removed. `None` when every
    /// endpoint is skipped.
    pub fn pick(&self, key_hash: u64, skip: impl Fn(&str) -> bool) -> Option<&str> {
        if self.points.is_empty() {
            return None;
        }
        let start = self.points.partition_point(|(p, _)| *p < key_hash);
        let mut tried = vec![false; self.endpoints.len()];
        let mut left = self.endpoints.len();
        for offset in 0..self.points.len() {
            let (_, index) = self.points[(start + offset) % self.points.len()];
            if tried[index] {
                continue;
            }
            tried[index] = true;
            let endpoint = &self.endpoints[index];
            if !skip(endpoint) {
                return Some(endpoint);
            }
            left -= 1;
            if left == 0 {
                break;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: usize = 10_000;

    fn owners(ring: &Ring) -> Vec<String> {
        (0..KEYS)
            .map(|k| {
                let key = format!("{k:032x}");
                ring.pick(hash(key.as_bytes()), |_| false)
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    fn ring(names: &[&str]) -> Ring {
        Ring::new(names.iter().map(|s| s.to_string()))
    }

    #[test]
    fn removing_one_of_three_moves_only_its_own_keys() {
        let before = owners(&ring(&["a:4317", "b:4317", "c:4317"]));
        let after = owners(&ring(&["a:4317", "c:4317"]));
        let mut moved = 0;
        for (was, is) in before.iter().zip(&after) {
            if was != is {
                assert_eq!(was, "b:4317", "a key of {was} moved to {is}");
                moved += 1;
            }
        }
        let owned_by_b = before.iter().filter(|o| *o == "b:4317").count();
        assert_eq!(moved, owned_by_b, "every key of b moved, nothing else");
    }

    #[test]
    fn adding_a_fourth_moves_about_a_quarter_and_only_to_it() {
        let before = owners(&ring(&["a:4317", "b:4317", "c:4317"]));
        let after = owners(&ring(&["a:4317", "b:4317", "c:4317", "d:4317"]));
        let mut moved = 0;
        for (was, is) in before.iter().zip(&after) {
            if was != is {
                assert_eq!(
                    is, "d:4317",
                    "a key moved from {was} to {is}, not to the new one"
                );
                moved += 1;
            }
        }
        let share = moved as f64 / KEYS as f64;
        assert!(
            (0.15..0.35).contains(&share),
            "{share} of the keys moved; expected about 1/4"
        );
    }

    #[test]
    fn keys_spread_over_every_endpoint() {
        let owned = owners(&ring(&["10.0.0.1:4317", "10.0.0.2:4317", "10.0.0.3:4317"]));
        for endpoint in ["10.0.0.1:4317", "10.0.0.2:4317", "10.0.0.3:4317"] {
            let share = owned.iter().filter(|o| *o == endpoint).count() as f64 / KEYS as f64;
            assert!(
                (0.2..0.47).contains(&share),
                "{endpoint} owns {share} of the keys; expected about 1/3"
            );
        }
    }

    #[test]
    fn a_skipped_endpoint_hands_its_keys_to_the_ring_without_it() {
        let full = ring(&["a:4317", "b:4317", "c:4317"]);
        let without_b = ring(&["a:4317", "c:4317"]);
        for k in 0..KEYS {
            let h = hash(format!("{k:032x}").as_bytes());
            assert_eq!(
                full.pick(h, |e| e == "b:4317"),
                without_b.pick(h, |_| false),
                "key {k}"
            );
        }
        assert_eq!(full.pick(1, |_| true), None);
    }

    #[test]
    fn order_and_duplicates_do_not_change_the_ring() {
        let one = owners(&ring(&["a:1", "b:1", "c:1"]));
        let other = owners(&ring(&["c:1", "a:1", "b:1", "a:1"]));
        assert_eq!(one, other);
        assert!(Ring::new(Vec::new()).pick(5, |_| false).is_none());
    }
}
