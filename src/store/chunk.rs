//! A compressed chunk: timestamps as delta-of-delta, each value column as
//! the XOR of consecutive floats (the Gorilla paper's scheme, the one
//! Prometheus's TSDB uses). A raw-tier chunk has one value column, a
//! rollup chunk five (min, max, sum, count, last), all sharing one
//! timestamp stream. Written by hand: the one crate for it (`tsz`) is
//! stale, and the codec is small and tested here.

/// Append-only bit buffer.
#[derive(Debug, Clone, Default)]
struct Bits {
    bytes: Vec<u8>,
    /// Bits used in the last byte (0 = the last byte is full or none).
    used: u8,
}

impl Bits {
    fn push(&mut self, value: u64, width: u8) {
        for i in (0..width).rev() {
            if self.used == 0 {
                self.bytes.push(0);
            }
            let bit = ((value >> i) & 1) as u8;
            let last = self.bytes.len() - 1;
            self.bytes[last] |= bit << (7 - self.used);
            self.used = (self.used + 1) % 8;
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Reader<'_> {
    fn read(&mut self, width: u8) -> Option<u64> {
        let mut value = 0u64;
        for _ in 0..width {
            let byte = *self.bytes.get(self.position / 8)?;
            let bit = (byte >> (7 - (self.position % 8))) & 1;
            value = (value << 1) | u64::from(bit);
            self.position += 1;
        }
        Some(value)
    }
}

/// Per column: the previous value and its XOR window.
#[derive(Debug, Clone, Copy, Default)]
struct Column {
    previous: u64,
    leading: u8,
    trailing: u8,
}

#[derive(Debug, Clone)]
pub struct Chunk {
    bits: Bits,
    columns: Vec<Column>,
    count: u32,
    first_time: i64,
    last_time: i64,
    previous_delta: i64,
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

impl Chunk {
    pub fn new(columns: usize) -> Self {
        Chunk {
            bits: Bits::default(),
            columns: vec![Column::default(); columns],
            count: 0,
            first_time: 0,
            last_time: 0,
            previous_delta: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn first_time(&self) -> i64 {
        self.first_time
    }

    pub fn last_time(&self) -> i64 {
        self.last_time
    }

    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// Compressed size in bytes.
    pub fn encoded_bytes(&self) -> usize {
        self.bits.bytes.len()
    }

    /// Appends one row; `values.len()` must equal the column count and
    /// `time` must be later than the last row's (the caller checks).
    pub fn push(&mut self, time: i64, values: &[f64]) {
        debug_assert_eq!(values.len(), self.columns.len());
        if self.count == 0 {
            self.bits.push(time as u64, 64);
            self.first_time = time;
            for (column, value) in self.columns.iter_mut().zip(values) {
                column.previous = value.to_bits();
                self.bits.push(column.previous, 64);
            }
        } else {
            let delta = time - self.last_time;
            let dod = delta - self.previous_delta;
            // Buckets as in the paper, with zigzag so the sign needs no branch.
            match zigzag(dod) {
                0 => self.bits.push(0b0, 1),
                z if z < 1 << 7 => self.bits.push((0b10 << 7) | z, 9),
                z if z < 1 << 9 => self.bits.push((0b110 << 9) | z, 12),
                z if z < 1 << 12 => self.bits.push((0b1110 << 12) | z, 16),
                z => {
                    self.bits.push(0b1111, 4);
                    self.bits.push(z, 64);
                }
            }
            self.previous_delta = delta;
            for (column, value) in self.columns.iter_mut().zip(values) {
                let bits = value.to_bits();
                let xor = bits ^ column.previous;
                column.previous = bits;
                if xor == 0 {
                    self.bits.push(0, 1);
                    continue;
                }
                let leading = (xor.leading_zeros() as u8).min(31);
                let trailing = xor.trailing_zeros() as u8;
                if column.leading + column.trailing > 0
                    && leading >= column.leading
                    && trailing >= column.trailing
                {
                    // Fits the previous window: control bits 10.
                    let width = 64 - column.leading - column.trailing;
                    self.bits.push(0b10, 2);
                    self.bits.push(xor >> column.trailing, width);
                } else {
                    let width = 64 - leading - trailing;
                    self.bits.push(0b11, 2);
                    self.bits.push(u64::from(leading), 5);
                    // width is 1..=64; 64 is stored as 0.
                    self.bits.push(u64::from(width % 64), 6);
                    self.bits.push(xor >> trailing, width);
                    column.leading = leading;
                    column.trailing = trailing;
                }
            }
        }
        self.last_time = time;
        self.count += 1;
    }

    /// Decodes every row, calling `each(time, values)`.
    pub fn for_each(&self, mut each: impl FnMut(i64, &[f64])) {
        let width = self.columns.len();
        let mut reader = Reader {
            bytes: &self.bits.bytes,
            position: 0,
        };
        let mut values = vec![0f64; width];
        let mut raw = vec![Column::default(); width];
        let mut time = 0i64;
        let mut delta = 0i64;
        for row in 0..self.count {
            let decoded = (|| -> Option<()> {
                if row == 0 {
                    time = reader.read(64)? as i64;
                    for (column, value) in raw.iter_mut().zip(values.iter_mut()) {
                        column.previous = reader.read(64)?;
                        *value = f64::from_bits(column.previous);
                    }
                    return Some(());
                }
                let dod = if reader.read(1)? == 0 {
                    0
                } else if reader.read(1)? == 0 {
                    unzigzag(reader.read(7)?)
                } else if reader.read(1)? == 0 {
                    unzigzag(reader.read(9)?)
                } else if reader.read(1)? == 0 {
                    unzigzag(reader.read(12)?)
                } else {
                    unzigzag(reader.read(64)?)
                };
                delta += dod;
                time += delta;
                for (column, value) in raw.iter_mut().zip(values.iter_mut()) {
                    if reader.read(1)? == 0 {
                        continue;
                    }
                    let xor = if reader.read(1)? == 0 {
                        let width = 64 - column.leading - column.trailing;
                        reader.read(width)? << column.trailing
                    } else {
                        let leading = reader.read(5)? as u8;
                        let width = match reader.read(6)? as u8 {
                            0 => 64,
                            w => w,
                        };
                        let trailing = 64 - leading - width;
                        column.leading = leading;
                        column.trailing = trailing;
                        reader.read(width)? << trailing
                    };
                    column.previous ^= xor;
                    *value = f64::from_bits(column.previous);
                }
                Some(())
            })();
            if decoded.is_none() {
                return;
            }
            each(time, &values);
        }
    }

    /// The raw bytes and the header needed to rebuild the chunk (for the
    /// snapshot file).
    pub fn to_parts(&self) -> ChunkParts<'_> {
        ChunkParts {
            bytes: &self.bits.bytes,
            width: self.columns.len() as u8,
            count: self.count,
        }
    }

    /// Rebuilds a chunk by decoding it: the encoder state (previous values,
    /// windows, last delta) must be exact for appends to continue.
    pub fn from_bytes(width: usize, count: u32, bytes: &[u8]) -> Self {
        let shell = Chunk {
            bits: Bits {
                bytes: bytes.to_vec(),
                used: 0,
            },
            columns: vec![Column::default(); width],
            count,
            first_time: 0,
            last_time: 0,
            previous_delta: 0,
        };
        let mut rebuilt = Chunk::new(width);
        shell.for_each(|time, values| rebuilt.push(time, values));
        rebuilt
    }
}

pub struct ChunkParts<'a> {
    pub bytes: &'a [u8],
    pub width: u8,
    pub count: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(rows: &[(i64, Vec<f64>)]) {
        let width = rows[0].1.len();
        let mut chunk = Chunk::new(width);
        for (t, v) in rows {
            chunk.push(*t, v);
        }
        let mut back = Vec::new();
        chunk.for_each(|t, v| back.push((t, v.to_vec())));
        assert_eq!(back.len(), rows.len());
        for ((t1, v1), (t2, v2)) in rows.iter().zip(&back) {
            assert_eq!(t1, t2);
            for (a, b) in v1.iter().zip(v2) {
                assert_eq!(a.to_bits(), b.to_bits());
            }
        }
        let parts = chunk.to_parts();
        let rebuilt = Chunk::from_bytes(parts.width as usize, parts.count, parts.bytes);
        assert_eq!(rebuilt.bits.bytes, chunk.bits.bytes);
    }

    #[test]
    fn regular_counter_roundtrips_in_under_two_bytes_a_sample() {
        let rows: Vec<_> = (0..120)
            .map(|i| (1_700_000_000_000 + i * 10_000, vec![(i * 3) as f64]))
            .collect();
        roundtrip(&rows);
        let mut chunk = Chunk::new(1);
        for (t, v) in &rows {
            chunk.push(*t, v);
        }
        assert!(chunk.encoded_bytes() < 2 * 120, "{}", chunk.encoded_bytes());
    }

    #[test]
    fn irregular_times_and_special_floats_roundtrip() {
        let specials = [
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::MIN_POSITIVE,
            1e300,
            -3.5,
        ];
        let mut t = -5_000i64;
        let rows: Vec<_> = (0..200)
            .map(|i| {
                t += [1, 7, 1000, 100_000, 3, 1 << 40][i % 6];
                (t, vec![specials[i % specials.len()], i as f64 * 0.1, 42.0])
            })
            .collect();
        roundtrip(&rows);
    }

    #[test]
    fn one_row_roundtrips() {
        roundtrip(&[(7, vec![1.5, 2.5, 3.5, 4.5, 5.5])]);
    }
}
