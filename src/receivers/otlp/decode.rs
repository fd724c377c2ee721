//! Request bodies: bounded decompression and OTLP decoding (protobuf or
//! JSON), shared by the HTTP and gRPC transports.
//!
//! Decompression reads at most `max_bytes + 1` bytes of output, so a
//! compression bomb costs at most the limit in memory before it is refused;
//! and it asks the caller's budget before each allocation of output, so
//! many concurrent compressed requests cannot together allocate past the
//! in-flight budget (which a size check per request alone would allow).

use std::io::Read;

use crate::datamodel::ids::CheckIds;
use serde::de::DeserializeOwned;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

impl Encoding {
    pub fn from_header(value: Option<&str>) -> Result<Encoding, String> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Ok(Encoding::Identity),
            Some("gzip") | Some("x-gzip") => Ok(Encoding::Gzip),
            Some("zstd") => Ok(Encoding::Zstd),
            Some(other) => Err(format!(
                "unsupported Content-Encoding {other:?}: expected gzip, zstd or none"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Protobuf,
    Json,
}

impl Format {
    pub fn from_content_type(value: Option<&str>) -> Result<Format, String> {
        let mime = value
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        match mime.as_deref() {
            Some("application/x-protobuf") | Some("application/protobuf") => Ok(Format::Protobuf),
            Some("application/json") => Ok(Format::Json),
            other => Err(format!(
                "unsupported Content-Type {:?}: expected application/x-protobuf or application/json",
                other.unwrap_or("")
            )),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{0}")]
    Malformed(String),
    /// The in-flight budget had no room for the decompressed bytes.
    #[error("too many request bytes in flight")]
    OverBudget,
}

/// Output is allocated in steps that double, from this size: few
/// reallocations, and never much more reserved than produced.
const FIRST_STEP: usize = 64 * 1024;

/// Decompresses `body`, refusing output beyond `max_bytes`.
pub fn decompress(body: &[u8], encoding: Encoding, max_bytes: usize) -> Result<Vec<u8>, BodyError> {
    decompress_within(body, encoding, max_bytes, &mut |_| true)
}

/// Decompresses `body`, refusing output beyond `max_bytes`; before the
/// output buffer grows by `n` bytes, `reserve(n)` must say yes, or the
/// body is refused with [`BodyError::OverBudget`].
pub fn decompress_within(
    body: &[u8],
    encoding: Encoding,
    max_bytes: usize,
    reserve: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<u8>, BodyError> {
    let reader: Box<dyn Read + '_> = match encoding {
        Encoding::Identity => return Ok(body.to_vec()),
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(body)),
        Encoding::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::new(body)
                .map_err(|e| BodyError::Malformed(format!("invalid zstd body: {e}")))?;
            // A frame may ask for a window of up to 2 GiB; 16 MiB covers
            // every compression level a client would use for a request.
            decoder
                .window_log_max(24)
                .map_err(|e| BodyError::Malformed(format!("invalid zstd body: {e}")))?;
            Box::new(decoder)
        }
    };
    let ceiling = max_bytes.saturating_add(1);
    let mut reader = reader.take(ceiling as u64);
    let mut out: Vec<u8> = Vec::new();
    // The size the body says it decompresses to, plus one byte to see
    // the end without growing again: one allocation, no copies, for an
    // honest body. A false claim only changes where doubling starts.
    let mut first = declared_size(body, encoding).map(|size| size.saturating_add(1));
    loop {
        if out.len() == out.capacity() {
            if out.len() >= ceiling {
                return Err(BodyError::TooLarge { limit: max_bytes });
            }
            let target = first
                .take()
                .unwrap_or_else(|| out.capacity().saturating_mul(2).max(FIRST_STEP))
                .min(ceiling)
                .max(out.capacity() + 1);
            let more = target - out.capacity();
            if !reserve(more) {
                return Err(BodyError::OverBudget);
            }
            out.reserve_exact(more);
        }
        // Fills exactly the spare capacity, never reallocating: the
        // budget was asked for every byte of it.
        let spare = (out.capacity() - out.len()) as u64;
        match (&mut reader).take(spare).read_to_end(&mut out) {
            Ok(n) if (n as u64) < spare => break,
            Ok(_) => {}
            Err(e) => {
                return Err(BodyError::Malformed(format!(
                    "cannot decompress the {} body: {e}",
                    match encoding {
                        Encoding::Gzip => "gzip",
                        _ => "zstd",
                    }
                )));
            }
        }
    }
    if out.len() > max_bytes {
        return Err(BodyError::TooLarge { limit: max_bytes });
    }
    Ok(out)
}

/// The decompressed size a body declares, if it does: gzip's ISIZE
/// trailer (the size modulo 2^32 of the last member), zstd's frame content
/// size.
fn declared_size(body: &[u8], encoding: Encoding) -> Option<usize> {
    match encoding {
        Encoding::Identity => None,
        Encoding::Gzip => {
            let trailer = body.len().checked_sub(4).and_then(|at| body.get(at..))?;
            let size = u32::from_le_bytes(trailer.try_into().ok()?);
            usize::try_from(size).ok()
        }
        Encoding::Zstd => zstd::zstd_safe::get_frame_content_size(body)
            .ok()
            .flatten()
            .and_then(|size| usize::try_from(size).ok()),
    }
}

/// Decodes an OTLP request in the given format; trace and span ids of the
/// wrong length are refused as malformed (`datamodel::ids`).
pub fn decode<T: prost::Message + Default + DeserializeOwned + CheckIds>(
    body: &[u8],
    format: Format,
) -> Result<T, BodyError> {
    let (request, what): (T, _) = match format {
        Format::Protobuf => (
            T::decode(body)
                .map_err(|e| BodyError::Malformed(format!("invalid OTLP protobuf: {e}")))?,
            "protobuf",
        ),
        Format::Json => (
            serde_json::from_slice(body)
                .map_err(|e| BodyError::Malformed(format!("invalid OTLP JSON: {e}")))?,
            "JSON",
        ),
    };
    request
        .check_ids()
        .map_err(|e| BodyError::Malformed(format!("invalid OTLP {what}: {e}")))?;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gzip_bomb_is_refused_at_the_limit() {
        let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
        assert!(bomb.len() < 1024 * 1024);
        assert_eq!(
            decompress(&bomb, Encoding::Gzip, 1024 * 1024),
            Err(BodyError::TooLarge { limit: 1024 * 1024 })
        );
    }

    #[test]
    fn truncated_gzip_is_malformed() {
        let data = gzip(b"hello world, hello world, hello world");
        let err = decompress(&data[..data.len() - 6], Encoding::Gzip, 1024).unwrap_err();
        assert!(matches!(err, BodyError::Malformed(_)), "{err:?}");
    }

    #[test]
    fn zstd_round_trips_and_is_bounded() {
        let data = zstd::encode_all(&vec![7u8; 10_000][..], 3).unwrap();
        assert_eq!(
            decompress(&data, Encoding::Zstd, 10_000).unwrap().len(),
            10_000
        );
        assert_eq!(
            decompress(&data, Encoding::Zstd, 9_999),
            Err(BodyError::TooLarge { limit: 9_999 })
        );
    }

    #[test]
    fn output_is_reserved_before_it_is_allocated() {
        let data = gzip(&vec![3u8; 1_000_000]);
        let mut reserved = 0;
        let out = decompress_within(&data, Encoding::Gzip, 4_000_000, &mut |n| {
            reserved += n;
            true
        })
        .unwrap();
        assert_eq!(out.len(), 1_000_000);
        assert!(
            out.capacity() <= reserved,
            "{} > {reserved}",
            out.capacity()
        );
        assert_eq!(reserved, 1_000_001, "the declared size, in one step");
        let mut budget = 200_000usize;
        let refused = decompress_within(&data, Encoding::Gzip, 4_000_000, &mut |n| {
            let fits = n <= budget;
            budget = budget.saturating_sub(n);
            fits
        });
        assert_eq!(refused, Err(BodyError::OverBudget));
    }

    #[test]
    fn content_types_and_encodings() {
        assert_eq!(
            Format::from_content_type(Some("application/json; charset=utf-8")),
            Ok(Format::Json)
        );
        assert!(Format::from_content_type(Some("text/plain")).is_err());
        assert!(Format::from_content_type(None).is_err());
        assert_eq!(Encoding::from_header(Some("GZIP")), Ok(Encoding::Gzip));
        assert!(Encoding::from_header(Some("br")).is_err());
    }
}
