//! The wire scanner against prost on arbitrary bytes: for every signal,
//! both accept or both refuse (prost's decoding followed by the id-length
//! check the decoded receive path makes), and when they accept they count the same
//! items. A disagreement would let a forwarding pipeline pass on a request
//! a backend refuses (or refuse one it would take).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sidewatch::signal::Signal;
use sidewatch::signal::{decode_checked, schema_of};
use sidewatch::wire::scan::scan;

fuzz_target!(|data: &[u8]| {
    for signal in Signal::ALL {
        let scanned = scan(schema_of(signal), data).ok().map(|s| s.items);
        let decoded = decode_checked(signal, data).ok().map(|b| b.item_count());
        assert_eq!(scanned, decoded, "{signal}: the scanner and prost disagree");
    }
});
