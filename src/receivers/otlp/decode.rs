//! Request bodies: bounded decompression and OTLP decoding (protobuf or
//! JSON), shared by the HTTP transport.
//!
//! Decompression reads at most `max_bytes + 1` bytes of output, so a
//! compression bomb costs at most the limit in memory before it is refused.

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
}

/// Decompresses `body`, refusing output beyond `max_bytes`.
pub fn decompress(body: &[u8], encoding: Encoding, max_bytes: usize) -> Result<Vec<u8>, BodyError> {
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
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max_bytes));
    let read = reader.take(max_bytes as u64 + 1).read_to_end(&mut out);
    match read {
        Ok(_) if out.len() > max_bytes => Err(BodyError::TooLarge { limit: max_bytes }),
        Ok(_) => Ok(out),
        Err(e) => Err(BodyError::Malformed(format!(
            "cannot decompress the {} body: {e}",
            match encoding {
                Encoding::Gzip => "gzip",
                _ => "zstd",
            }
        ))),
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
