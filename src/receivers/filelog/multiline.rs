//! Multiline entries: with `multiline.line_start_pattern`, a line matching
//! the pattern begins an entry and the lines after it, up to the next such
//! line, belong to it (a stack trace under its log line).
//!
//! An entry is complete once the next entry begins. The last one read is
//! held back (the committed position stays at its start, so a restart
//! reads it again) until more lines arrive or the file has not grown for
//! `force_flush_period`. Without a pattern every line is an entry.

use super::reader::{Position, RawLine};

#[derive(Debug, PartialEq, Eq)]
pub struct Joined {
    pub text: Vec<u8>,
    pub truncated: bool,
}

/// Entries from `lines` (read from `start`), and the position after the
/// last entry returned. With `complete`, the last entry is returned too.
pub fn join(
    lines: Vec<RawLine>,
    start: Position,
    pattern: Option<&regex::bytes::Regex>,
    max_log_size: usize,
    complete: bool,
) -> (Vec<Joined>, Position) {
    let Some(pattern) = pattern else {
        let end = lines.last().map(|l| l.end).unwrap_or(start);
        let entries = lines
            .into_iter()
            .map(|l| Joined {
                text: l.text,
                truncated: l.truncated,
            })
            .collect();
        return (entries, end);
    };
    let mut entries = Vec::new();
    let mut committed = start;
    let mut pending: Option<(Joined, Position)> = None;
    for line in lines {
        if pattern.is_match(&line.text)
            && let Some((entry, end)) = pending.take()
        {
            entries.push(entry);
            committed = end;
        }
        match &mut pending {
            Some((entry, end)) => {
                if entry.text.len() < max_log_size {
                    entry.text.push(b'\n');
                    let room = max_log_size - entry.text.len();
                    entry.truncated |= line.text.len() > room || line.truncated;
                    entry
                        .text
                        .extend_from_slice(&line.text[..line.text.len().min(room)]);
                } else {
                    entry.truncated = true;
                }
                *end = line.end;
            }
            None => {
                pending = Some((
                    Joined {
                        text: line.text,
                        truncated: line.truncated,
                    },
                    line.end,
                ));
            }
        }
    }
    if complete && let Some((entry, end)) = pending {
        entries.push(entry);
        committed = end;
    }
    (entries, committed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(texts: &[&str]) -> Vec<RawLine> {
        let mut offset = 0;
        texts
            .iter()
            .map(|t| {
                offset += t.len() as u64 + 1;
                RawLine {
                    text: t.as_bytes().to_vec(),
                    end: Position {
                        offset,
                        skipping: false,
                    },
                    truncated: false,
                }
            })
            .collect()
    }

    #[test]
    fn continuation_lines_join_their_start_and_the_last_entry_waits() {
        let pattern = regex::bytes::Regex::new(r"^\d{4}-").unwrap();
        let input = lines(&["2026-01 a", "  at x", "  at y", "2026-02 b", "  at z"]);
        let (entries, committed) = join(input, Position::default(), Some(&pattern), 100, false);
        let texts: Vec<&[u8]> = entries.iter().map(|e| e.text.as_slice()).collect();
        assert_eq!(texts, [b"2026-01 a\n  at x\n  at y".as_slice()]);
        assert_eq!(committed.offset, 24, "the second entry is read again");
        let input = lines(&["2026-01 a", "  at x", "  at y", "2026-02 b", "  at z"]);
        let (entries, committed) = join(input, Position::default(), Some(&pattern), 100, true);
        assert_eq!(entries.len(), 2);
        assert_eq!(committed.offset, 41);
    }

    #[test]
    fn a_joined_entry_is_cut_at_max_log_size() {
        let pattern = regex::bytes::Regex::new(r"^S").unwrap();
        let input = lines(&["S123", "4567", "89"]);
        let (entries, _) = join(input, Position::default(), Some(&pattern), 7, true);
        assert_eq!(entries[0].text, b"S123\n45");
        assert!(entries[0].truncated);
    }
}
