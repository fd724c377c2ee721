//! Maps YAML paths to the line and column where they are written.
//!
//! `yaml_serde` gives a location only for syntax errors, so we walk the
//! document once more with an event parser that keeps spans, and remember
//! where every mapping key and sequence item starts. Semantic errors found
//! later (an undefined component, a bad duration) then point at a line.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, Span};

use super::error::{Location, Segment, YamlPath};

#[derive(Debug, Default)]
pub struct LineIndex {
    positions: HashMap<YamlPath, Location>,
}

enum Frame {
    Mapping { path: YamlPath, key: Option<String> },
    Sequence { path: YamlPath, next_index: usize },
}

impl LineIndex {
    pub fn build(text: &str) -> LineIndex {
        let mut index = LineIndex::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        // Only the first document counts, as for yaml_serde::from_str.
        let mut documents = 0;
        while let Some(Ok((event, span))) = parser.next() {
            match event {
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        break;
                    }
                }
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Mapping { path, key }) = stack.last_mut()
                        && key.is_none()
                    {
                        let key_path = path.key(value.to_string());
                        index.record(&key_path, span);
                        *key = Some(value.to_string());
                        continue;
                    }
                    index.value_at(&mut stack, span);
                }
                Event::Alias(_) => {
                    index.value_at(&mut stack, span);
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let path = index.value_at(&mut stack, span);
                    stack.push(match event {
                        Event::MappingStart(..) => Frame::Mapping { path, key: None },
                        _ => Frame::Sequence {
                            path,
                            next_index: 0,
                        },
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        index
    }

    /// Records a value in its parent and returns the value's path.
    fn value_at(&mut self, stack: &mut [Frame], span: Span) -> YamlPath {
        match stack.last_mut() {
            None => YamlPath::root(),
            Some(Frame::Mapping { path, key }) => match key.take() {
                Some(key) => path.key(key),
                // A complex (non-scalar) key: nothing useful to point at.
                None => path.key("?"),
            },
            Some(Frame::Sequence { path, next_index }) => {
                let item = path.index(*next_index);
                *next_index += 1;
                self.record(&item, span);
                item
            }
        }
    }

    fn record(&mut self, path: &YamlPath, span: Span) {
        self.positions.entry(path.clone()).or_insert(Location {
            line: span.start.line(),
            column: span.start.col() + 1,
        });
    }

    /// The location of `path`, or of its nearest ancestor that is written.
    pub fn locate(&self, path: &YamlPath) -> Option<Location> {
        let mut segments: &[Segment] = &path.0;
        loop {
            if let Some(at) = self.positions.get(&YamlPath(segments.to_vec())) {
                return Some(*at);
            }
            if segments.is_empty() {
                return None;
            }
            segments = &segments[..segments.len() - 1];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_keys_items_and_flow_mappings() {
        let text = "receivers:\n  otlp:\n    protocols: { grpc: { endpoint: x } }\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp, bad]\n";
        let index = LineIndex::build(text);
        let at = |p: YamlPath| index.locate(&p).map(|l| (l.line, l.column));
        let root = YamlPath::root();
        assert_eq!(at(root.key("receivers").key("otlp")), Some((2, 3)));
        assert_eq!(
            at(root
                .key("receivers")
                .key("otlp")
                .key("protocols")
                .key("grpc")
                .key("endpoint")),
            Some((3, 26))
        );
        let receivers = root
            .key("service")
            .key("pipelines")
            .key("traces")
            .key("receivers");
        assert_eq!(at(receivers.index(1)), Some((7, 25)));
        // Unknown deeper paths fall back to the nearest written ancestor.
        assert_eq!(at(receivers.index(1).key("nothing")), Some((7, 25)));
    }
}
