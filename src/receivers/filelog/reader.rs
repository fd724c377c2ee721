//! Reading lines from one open file, from a committed offset.
//!
//! Stateless between polls except for the committed `Position`: every
//! poll reads again from it, so a batch the pipeline refused is simply
//! read again next time, and a half-written last line stays in the file
//! until its newline arrives (or, after `force_flush_period` without
//! growth, is emitted as it is). Memory: one buffer of
//! `max(64 KiB, max_log_size + 1)` bytes, shared by all files.
//!
//! A line longer than `max_log_size` is cut there; the rest up to its
//! newline is skipped (across reads and polls: `Position::skipping`) and
//! the cut counted.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// Where reading resumes: committed only once the lines before it are
/// in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub offset: u64,
    /// Inside a line that was cut at `max_log_size`: skip to its newline.
    #[serde(default)]
    pub skipping: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    pub text: Vec<u8>,
    /// The position just after this line.
    pub end: Position,
    /// The line was longer than `max_log_size` and was cut.
    pub truncated: bool,
}

pub struct Reader {
    buffer: Vec<u8>,
    max_log_size: usize,
}

/// What one `read` found.
#[derive(Debug, Default)]
pub struct Read {
    pub lines: Vec<RawLine>,
    /// Bytes after the last complete line, up to the end of the file.
    pub partial: u64,
    /// `max_lines` was reached before the end of the file.
    pub more: bool,
}

impl Reader {
    pub fn new(max_log_size: usize) -> Reader {
        Reader {
            buffer: vec![0; (max_log_size + 1).max(64 * 1024)],
            max_log_size,
        }
    }

    /// Complete lines from `from`, at most `max_lines`. With `flush_partial`,
    /// a last line without newline is emitted too.
    pub fn read(
        &mut self,
        file: &File,
        from: Position,
        max_lines: usize,
        flush_partial: bool,
    ) -> std::io::Result<Read> {
        let mut out = Read::default();
        let mut at = from;
        loop {
            if out.lines.len() >= max_lines {
                out.more = true;
                return Ok(out);
            }
            let n = read_full(file, &mut self.buffer, at.offset)?;
            if n == 0 {
                return Ok(out);
            }
            let at_eof = n < self.buffer.len();
            let data = &self.buffer[..n];
            let mut pos = 0;
            while pos < n && out.lines.len() < max_lines {
                match data[pos..].iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        let line = &data[pos..pos + i];
                        at.offset += (i + 1) as u64;
                        if at.skipping {
                            at.skipping = false;
                        } else {
                            let (text, truncated) = self.cut(line);
                            out.lines.push(RawLine {
                                text,
                                end: at,
                                truncated,
                            });
                        }
                        pos += i + 1;
                    }
                    None => {
                        let rest = &data[pos..];
                        if at.skipping {
                            at.offset += rest.len() as u64;
                            pos = n;
                        } else if rest.len() > self.max_log_size
                            || (at_eof && flush_partial && !rest.is_empty())
                        {
                            let (text, truncated) = self.cut(rest);
                            at.offset += rest.len() as u64;
                            at.skipping = truncated;
                            out.lines.push(RawLine {
                                text,
                                end: at,
                                truncated,
                            });
                            pos = n;
                        } else {
                            if at_eof {
                                out.partial = rest.len() as u64;
                                return Ok(out);
                            }
                            // A line begun near the end of the buffer:
                            // read again from its start.
                            break;
                        }
                    }
                }
            }
            if out.lines.len() >= max_lines && pos < n {
                out.more = true;
                return Ok(out);
            }
            if at_eof && pos >= n {
                return Ok(out);
            }
            if pos == 0 && !at.skipping {
                // Cannot happen: the buffer holds more than max_log_size,
                // so a line without newline filling it was cut above.
                return Ok(out);
            }
        }
    }

    fn cut(&self, line: &[u8]) -> (Vec<u8>, bool) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > self.max_log_size {
            (line[..self.max_log_size].to_vec(), true)
        } else {
            (line.to_vec(), false)
        }
    }
}

/// Reads until `buffer` is full or the file ends.
fn read_full(file: &File, buffer: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read_at(&mut buffer[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(content: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content).unwrap();
        let read = File::open(f.path()).unwrap();
        (f, read)
    }

    fn texts(read: &Read) -> Vec<String> {
        read.lines
            .iter()
            .map(|l| String::from_utf8_lossy(&l.text).into_owned())
            .collect()
    }

    #[test]
    fn reads_complete_lines_and_leaves_a_partial_one() {
        let (_f, file) = file(b"a\r\nbb\nccc");
        let mut reader = Reader::new(100);
        let read = reader.read(&file, Position::default(), 10, false).unwrap();
        assert_eq!(texts(&read), ["a", "bb"]);
        assert_eq!(read.partial, 3);
        assert_eq!(read.lines[1].end.offset, 6);
        let flushed = reader.read(&file, read.lines[1].end, 10, true).unwrap();
        assert_eq!(texts(&flushed), ["ccc"]);
        assert_eq!(flushed.lines[0].end.offset, 9);
    }

    #[test]
    fn cuts_a_huge_line_and_skips_its_rest_across_reads() {
        let mut content = vec![b'x'; 200_000];
        content.extend_from_slice(b"\nnext\n");
        let (_f, file) = file(&content);
        let mut reader = Reader::new(1000);
        let read = reader.read(&file, Position::default(), 10, false).unwrap();
        assert_eq!(read.lines.len(), 2);
        assert!(read.lines[0].truncated);
        assert_eq!(read.lines[0].text.len(), 1000);
        assert_eq!(read.lines[1].text, b"next");
        assert_eq!(read.lines[1].end.offset, content.len() as u64);
    }

    #[test]
    fn stops_at_max_lines_and_resumes_where_it_stopped() {
        let (_f, file) = file(b"1\n2\n3\n");
        let mut reader = Reader::new(100);
        let first = reader.read(&file, Position::default(), 2, false).unwrap();
        assert_eq!(texts(&first), ["1", "2"]);
        assert!(first.more);
        let rest = reader.read(&file, first.lines[1].end, 2, false).unwrap();
        assert_eq!(texts(&rest), ["3"]);
        assert!(!rest.more);
    }
}
