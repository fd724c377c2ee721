//! Compressing an exported body: gzip and zstd, once per batch, at the
//! levels both OTLP exporters (gRPC and HTTP) use.
//!
//! Level 1 for both, as the HTTP exporter always used: a collector
//! forwarding on a LAN spends CPU, not bandwidth. `cargo bench --bench
//! compression` measures levels 1 and 6 of both deflate backends and zstd
//! 1 and 3 on an 8192-span OTLP batch. Deflate is flate2's `zlib-rs`
//! backend (Cargo.toml).
//!
//! The compressor state (gzip: the deflate window and hash tables; zstd:
//! its context) is kept per thread and reset between bodies instead of
//! allocated for each one: exporters run on a few runtime threads, so a
//! handful of states serve every exporter.

use std::cell::RefCell;
use std::io;

/// gzip's level: fast, as the HTTP exporter always used.
pub const GZIP_LEVEL: u32 = 1;
/// zstd's level.
pub const ZSTD_LEVEL: i32 = 1;

thread_local! {
    static DEFLATE: RefCell<Option<flate2::Compress>> = const { RefCell::new(None) };
    static ZSTD: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

/// The fixed gzip header: deflate, no name, no time, unknown OS (RFC 1952).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// `data` as one gzip member.
pub fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    // Deflate rarely grows data by more than 5 bytes per 16 KiB block; a
    // body that compresses poorly just grows the Vec.
    let mut out = Vec::with_capacity(data.len() / 4 + 64);
    out.extend_from_slice(&GZIP_HEADER);
    DEFLATE.with_borrow_mut(|state| {
        let deflate = state.get_or_insert_with(|| {
            flate2::Compress::new(flate2::Compression::new(GZIP_LEVEL), false)
        });
        deflate.reset();
        loop {
            let consumed = deflate.total_in() as usize;
            let status = deflate
                .compress_vec(&data[consumed..], &mut out, flate2::FlushCompress::Finish)
                .map_err(io::Error::other)?;
            if status == flate2::Status::StreamEnd {
                return Ok::<_, io::Error>(());
            }
            // Not finished: the output is full (compress_vec writes only
            // into spare capacity), so give it more.
            out.reserve(out.capacity() / 2 + 1024);
        }
    })?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    // ISIZE: the input length modulo 2^32, as RFC 1952 defines it.
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Ok(out)
}

/// `data` as one zstd frame.
pub fn zstd(data: &[u8]) -> io::Result<Vec<u8>> {
    ZSTD.with_borrow_mut(|state| {
        let compressor = match state {
            Some(compressor) => compressor,
            None => state.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
        };
        compressor.compress(data)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        // Some repetition and some noise, like protobuf with random ids.
        (0..len)
            .map(|i| {
                if i % 7 == 0 {
                    (i * 31 % 251) as u8
                } else {
                    b"span"[i % 4]
                }
            })
            .collect()
    }

    #[test]
    fn gzip_round_trips_through_a_standard_decoder_with_the_state_reused() {
        for len in [0, 1, 100, 70_000, 1_000_000, 10] {
            let data = sample(len);
            let packed = gzip(&data).unwrap();
            let mut unpacked = Vec::new();
            flate2::read::GzDecoder::new(&packed[..])
                .read_to_end(&mut unpacked)
                .unwrap();
            assert_eq!(unpacked, data, "length {len}");
        }
    }

    #[test]
    fn zstd_round_trips_with_the_context_reused() {
        for len in [0, 100, 1_000_000, 10] {
            let data = sample(len);
            assert_eq!(zstd::decode_all(&zstd(&data).unwrap()[..]).unwrap(), data);
        }
    }
}
