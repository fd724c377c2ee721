//! Validating an encoded OTLP request without decoding it: one pass over
//! the bytes that accepts exactly what prost's decoder accepts (wire
//! types, varints, lengths, UTF-8 strings, the recursion limit, skipping
//! unknown fields and groups) plus the id lengths the specification
//! requires (`datamodel::ids`), and counts items (spans, log records, data
//! points) on the way, allocating nothing but the list of top-level
//! records.
//!
//! Why: forwarding a request as received is most of a collector's work
//! when no processor looks inside, and decoding it into prost's types
//! (an allocation per string, attribute and span) then encoding it again
//! was most of our CPU. Validation cannot be skipped: a malformed request
//! passed on would be rejected by the backend together with every other
//! client's data batched with it.

use super::schema::{Field, Kind, Message, Scalar};

/// prost's `RECURSION_LIMIT`: messages nest at most this deep.
const RECURSION_LIMIT: u32 = 100;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// One top-level field 1 (a ResourceSpans, ResourceLogs or
/// ResourceMetrics): its key and value, as a byte range of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub start: usize,
    pub end: usize,
    pub items: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    pub items: usize,
    pub records: Vec<Record>,
}

/// Why a request is malformed, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    problem: &'static str,
    at: Option<(&'static str, &'static str)>,
}

impl ScanError {
    #[cold]
    fn new(problem: &'static str) -> Box<Self> {
        Box::new(ScanError { problem, at: None })
    }

    /// Keeps the innermost place: the first one attached.
    #[cold]
    fn at(mut self: Box<Self>, message: &Message, field: &Field) -> Box<Self> {
        if self.at.is_none() {
            self.at = Some((message.name, field.name));
        }
        self
    }
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            Some((message, field)) => write!(f, "{message}.{field}: {}", self.problem),
            None => f.write_str(self.problem),
        }
    }
}

impl std::error::Error for ScanError {}

// Boxed: the error path is cold, and a small `Result` comes back in
// registers on the hot one.
type Result<T> = std::result::Result<T, Box<ScanError>>;

/// Validates `buf` as an encoded `message` and counts its items; the
/// records are the occurrences of field 1.
pub fn scan(message: &'static Message, buf: &[u8]) -> std::result::Result<Scanned, ScanError> {
    scan_boxed(message, buf).map_err(|e| *e)
}

fn scan_boxed(message: &'static Message, buf: &[u8]) -> Result<Scanned> {
    let mut records = Vec::new();
    let mut items = 0;
    let mut pos = 0;
    while pos < buf.len() {
        let start = pos;
        let (number, wire) = key(buf, &mut pos)?;
        match message.field(number) {
            Some(field) => {
                let found = value(buf, &mut pos, field, wire, RECURSION_LIMIT)
                    .map_err(|e| e.at(message, field))?;
                items += found;
                if number == 1 {
                    records.push(Record {
                        start,
                        end: pos,
                        items: found,
                    });
                }
            }
            None => skip(buf, &mut pos, number, wire, RECURSION_LIMIT)?,
        }
    }
    Ok(Scanned { items, records })
}

/// The items in a message body; `budget` is prost's recursion context
/// for this message (how many more levels may nest below it).
fn body(message: &'static Message, buf: &[u8], budget: u32) -> Result<usize> {
    let mut items = 0;
    // prost keeps the last oneof member present, merging repeats of the
    // same member: the items of the oneof follow that rule.
    let mut oneof_member = 0;
    let mut oneof_items = 0;
    // Ids of the wrong length so far, by slot: the last occurrence of an
    // id field is the one prost keeps, and an absent one is empty.
    let mut wrong_ids = message.required_ids;
    let mut pos = 0;
    while pos < buf.len() {
        let (number, wire) = key(buf, &mut pos)?;
        let Some(field) = message.field(number) else {
            skip(buf, &mut pos, number, wire, budget)?;
            continue;
        };
        if let Kind::Id(rule, slot) = field.kind {
            let id = expect(wire, LENGTH)
                .and_then(|()| delimited(buf, &mut pos))
                .map_err(|e| e.at(message, field))?;
            if rule.admits(id) {
                wrong_ids &= !(1 << slot);
            } else {
                wrong_ids |= 1 << slot;
            }
            continue;
        }
        let found = value(buf, &mut pos, field, wire, budget).map_err(|e| e.at(message, field))?;
        if !field.oneof {
            items += found;
        } else if oneof_member == number {
            oneof_items += found;
        } else {
            oneof_member = number;
            oneof_items = found;
        }
    }
    if wrong_ids != 0 {
        return Err(wrong_id(message, wrong_ids));
    }
    Ok(items + oneof_items)
}

/// The error for the first id (by slot) of the wrong length.
#[cold]
fn wrong_id(message: &'static Message, wrong_ids: u8) -> Box<ScanError> {
    let slot = wrong_ids.trailing_zeros() as u8;
    match message.id_field(slot) {
        Some(
            field @ Field {
                kind: Kind::Id(rule, _),
                ..
            },
        ) => ScanError::new(rule.problem()).at(message, field),
        _ => ScanError::new("an id of the wrong length"),
    }
}

#[inline(always)]
fn value(buf: &[u8], pos: &mut usize, field: &Field, wire: u8, budget: u32) -> Result<usize> {
    match field.kind {
        Kind::Varint => {
            expect(wire, VARINT)?;
            varint(buf, pos)?;
        }
        Kind::Fixed64 => {
            expect(wire, FIXED64)?;
            advance(buf, pos, 8)?;
        }
        Kind::Fixed32 => {
            expect(wire, FIXED32)?;
            advance(buf, pos, 4)?;
        }
        // Ids are checked in `body`, which sees the whole message.
        Kind::Bytes | Kind::Id(..) => {
            expect(wire, LENGTH)?;
            delimited(buf, pos)?;
        }
        Kind::Str => {
            expect(wire, LENGTH)?;
            let text = delimited(buf, pos)?;
            // Most strings are short ASCII keys and names: checked here
            // before paying for the general validator's call.
            if !text.iter().all(u8::is_ascii) && std::str::from_utf8(text).is_err() {
                return Err(ScanError::new(
                    "invalid string value: data is not UTF-8 encoded",
                ));
            }
        }
        Kind::Message(message) => {
            expect(wire, LENGTH)?;
            if budget == 0 {
                return Err(ScanError::new("recursion limit reached"));
            }
            let inner = delimited(buf, pos)?;
            let items = body(message, inner, budget - 1)?;
            return Ok(if field.item { 1 } else { items });
        }
        Kind::Repeated(scalar) if wire == LENGTH => {
            let packed = delimited(buf, pos)?;
            match scalar {
                Scalar::Fixed64 if packed.len() % 8 != 0 => {
                    return Err(ScanError::new("packed fixed64 values of a partial length"));
                }
                Scalar::Fixed64 => {}
                Scalar::Varint => {
                    let mut at = 0;
                    while at < packed.len() {
                        varint(packed, &mut at)?;
                    }
                }
            }
        }
        Kind::Repeated(Scalar::Varint) => {
            expect(wire, VARINT)?;
            varint(buf, pos)?;
        }
        Kind::Repeated(Scalar::Fixed64) => {
            expect(wire, FIXED64)?;
            advance(buf, pos, 8)?;
        }
    }
    Ok(0)
}

/// Skips an unknown field as prost does, groups included.
fn skip(buf: &[u8], pos: &mut usize, number: u32, wire: u8, budget: u32) -> Result<()> {
    if budget == 0 {
        return Err(ScanError::new("recursion limit reached"));
    }
    match wire {
        VARINT => {
            varint(buf, pos)?;
        }
        FIXED64 => advance(buf, pos, 8)?,
        FIXED32 => advance(buf, pos, 4)?,
        LENGTH => {
            delimited(buf, pos)?;
        }
        START_GROUP => loop {
            let (inner, inner_wire) = key(buf, pos)?;
            if inner_wire == END_GROUP {
                if inner != number {
                    return Err(ScanError::new("unexpected end group tag"));
                }
                break;
            }
            skip(buf, pos, inner, inner_wire, budget - 1)?;
        },
        _ => return Err(ScanError::new("unexpected end group tag")),
    }
    Ok(())
}

#[inline(always)]
fn expect(actual: u8, expected: u8) -> Result<()> {
    if actual == expected {
        Ok(())
    } else {
        Err(ScanError::new("invalid wire type"))
    }
}

#[inline(always)]
fn key(buf: &[u8], pos: &mut usize) -> Result<(u32, u8)> {
    let key = varint(buf, pos)?;
    if key > u64::from(u32::MAX) {
        return Err(ScanError::new("invalid key value"));
    }
    let wire = (key & 7) as u8;
    if wire > FIXED32 {
        return Err(ScanError::new("invalid wire type value"));
    }
    let number = (key as u32) >> 3;
    if number == 0 {
        return Err(ScanError::new("invalid tag value: 0"));
    }
    Ok((number, wire))
}

/// A varint of at most 10 bytes that fits in 64 bits.
#[inline(always)]
fn varint(buf: &[u8], pos: &mut usize) -> Result<u64> {
    // Keys, lengths of short strings, small numbers: one byte.
    if let Some(&byte) = buf.get(*pos)
        && byte < 0x80
    {
        *pos += 1;
        return Ok(u64::from(byte));
    }
    varint_long(buf, pos)
}

fn varint_long(buf: &[u8], pos: &mut usize) -> Result<u64> {
    let mut value = 0u64;
    for i in 0..10 {
        let Some(&byte) = buf.get(*pos + i) else {
            break;
        };
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            if i == 9 && byte >= 2 {
                break;
            }
            *pos += i + 1;
            return Ok(value);
        }
    }
    Err(ScanError::new("invalid varint"))
}

#[inline(always)]
fn advance(buf: &[u8], pos: &mut usize, len: usize) -> Result<()> {
    if buf.len() - *pos < len {
        return Err(ScanError::new("buffer underflow"));
    }
    *pos += len;
    Ok(())
}

#[inline(always)]
fn delimited<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8]> {
    let len = varint(buf, pos)?;
    if len > (buf.len() - *pos) as u64 {
        return Err(ScanError::new("buffer underflow"));
    }
    let start = *pos;
    *pos += len as usize;
    Ok(&buf[start..*pos])
}
