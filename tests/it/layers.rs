//! The import rules that keep the core easy to change, checked on the
//! source text (test modules excluded):
//!
//! 1. `src/config/` is a leaf: it names no other sidewatch module, so every
//!    component can decode its config with it and the plan compiler
//!    (`src/plan/`) sits above both.
//! 2. Components (`src/receivers`, `src/processors`, `src/exporters`,
//!    `src/connectors`) import only the pipeline contracts, the signal
//!    types, stats, otlp and shared helpers: never the plan, the registry
//!    (`src/components/`, except the contracts in `compiled.rs` their
//!    compiled configs implement), the graph builder
//!    (`src/pipeline/build.rs`) or replay, and of another component kind
//!    only its contract or shared-helper files listed in [`SHARED`].
//!
//! A path is every `crate::…` and `super::…` path in the file, `use` trees
//! expanded (`use crate::{a, b::{c, d}}`), resolved to module segments.

use std::path::{Path, PathBuf};

const KINDS: [&str; 4] = ["receivers", "processors", "exporters", "connectors"];

/// Module paths no component may import.
const FORBIDDEN_TO_COMPONENTS: &[&[&str]] = &[
    &["plan"],
    &["components"],
    &["pipeline", "build"],
    &["replay"],
];

/// Files of one component kind that others may use: contracts (the
/// `Processor` trait connectors implement) and helpers that live there
/// for history's sake.
const SHARED: &[&[&str]] = &[
    &["processors", "Processor"],
    &["processors", "run_chain"],
    &["processors", "schedule"],
    &["processors", "state_write"],
    &["processors", "window_gauges"],
    &["processors", "transform", "Failures"],
    &["processors", "transform", "report"],
];

#[test]
fn config_is_a_leaf() {
    let mut offences = Vec::new();
    for (file, module, paths) in sources() {
        if module.first().map(String::as_str) != Some("config") {
            continue;
        }
        for path in paths {
            if path.first().map(String::as_str) != Some("config") {
                offences.push(format!("{file}: {}", path.join("::")));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "src/config must import nothing else of sidewatch:\n{}",
        offences.join("\n")
    );
}

#[test]
fn components_import_only_contracts_and_shared_helpers() {
    let mut offences = Vec::new();
    for (file, module, paths) in sources() {
        let Some(kind) = module.first().filter(|m| KINDS.contains(&m.as_str())) else {
            continue;
        };
        for path in paths {
            let starts = |prefix: &[&str]| {
                path.len() >= prefix.len() && path.iter().zip(prefix).all(|(a, b)| a == b)
            };
            let forbidden = FORBIDDEN_TO_COMPONENTS.iter().any(|p| starts(p))
                && !starts(&["components", "compiled"]);
            let other_kind = path
                .first()
                .is_some_and(|m| m != kind && KINDS.contains(&m.as_str()));
            let shared = SHARED.iter().any(|p| starts(p));
            if forbidden || (other_kind && !shared) {
                offences.push(format!("{file}: {}", path.join("::")));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "components may import only pipeline contracts, signal types, stats, otlp and shared helpers:\n{}",
        offences.join("\n")
    );
}

/// The batch type and its wire form are layered, no circle among them:
/// `wire` (scan, schema) and the `datamodel` rules it reads import neither
/// `signal` nor `batching`; `signal` (the batch, its wire form) imports
/// `wire` but not `batching`; `batching` imports both.
#[test]
fn signal_wire_and_batching_are_layered() {
    let below: &[(&str, &[&str])] = &[
        ("wire", &["signal", "batching"]),
        ("datamodel", &["signal", "batching", "wire"]),
        ("signal", &["batching"]),
    ];
    let mut offences = Vec::new();
    let mut seen = 0;
    for (file, module, paths) in sources() {
        let Some((_, forbidden)) = below
            .iter()
            .find(|(m, _)| module.first().map(String::as_str) == Some(*m))
        else {
            continue;
        };
        seen += 1;
        for path in paths {
            if path
                .first()
                .is_some_and(|m| forbidden.contains(&m.as_str()))
            {
                offences.push(format!("{file}: {}", path.join("::")));
            }
        }
    }
    assert!(
        seen >= 6,
        "found only {seen} files of wire, datamodel and signal"
    );
    assert!(
        offences.is_empty(),
        "signal, wire and batching must not import each other in a circle:\n{}",
        offences.join("\n")
    );
}

/// Every source file: (its path, its module path, the module paths it names).
fn sources() -> Vec<(String, Vec<String>, Vec<Vec<String>>)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    assert!(
        files.len() > 50,
        "found only {} files under src/",
        files.len()
    );
    files
        .into_iter()
        .map(|file| {
            let relative = file.strip_prefix(&src).unwrap().to_path_buf();
            let module = module_of(&relative);
            let text = std::fs::read_to_string(&file).unwrap();
            let paths = named_paths(&without_tests(&without_comments(&text)), &module, &relative);
            (relative.display().to_string(), module, paths)
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            // A module's tests in a file of their own may reach anywhere.
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

fn module_of(relative: &Path) -> Vec<String> {
    let mut segments: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if matches!(
        segments.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        segments.pop();
    }
    segments
}

fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text before the file's `#[cfg(test)] mod tests`: tests may reach
/// anywhere.
fn without_tests(text: &str) -> String {
    let mut cut = text.len();
    let mut from = 0;
    while let Some(at) = text[from..].find("#[cfg(test)]") {
        let at = from + at;
        let rest = text[at + "#[cfg(test)]".len()..].trim_start();
        if rest.starts_with("mod ") {
            cut = at;
            break;
        }
        from = at + 1;
    }
    text[..cut].to_string()
}

/// The module paths `text` names through `crate::` or `super::`.
fn named_paths(text: &str, module: &[String], relative: &Path) -> Vec<Vec<String>> {
    let is_mod_file = matches!(
        relative.file_stem().and_then(|s| s.to_str()),
        Some("mod" | "lib" | "main")
    );
    let mut raw = Vec::new();
    // `use` trees, expanded: statements that start a line.
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_start();
        let line = line
            .strip_prefix("pub(crate) ")
            .or_else(|| line.strip_prefix("pub(super) "))
            .or_else(|| line.strip_prefix("pub "))
            .unwrap_or(line);
        if let Some(first) = line.strip_prefix("use ") {
            let mut statement = first.to_string();
            while !statement.contains(';') && i + 1 < lines.len() {
                i += 1;
                statement.push(' ');
                statement.push_str(lines[i]);
            }
            let end = statement.find(';').unwrap_or(statement.len());
            let tree = statement[..end]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .replace(":: ", "::")
                .replace("{ ", "{")
                .replace(" }", "}")
                .replace(", ", ",")
                .replace(" ,", ",");
            expand(&tree, &mut raw);
        }
        i += 1;
    }
    // Inline paths: `crate::a::b::f(...)`.
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = text[from..].find(start) {
            let at = from + at;
            let before = text[..at].chars().last();
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                let path: String = text[at..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                // `crate::a::{b, c}` is a use tree, expanded above.
                if !text[at + path.len()..].starts_with('{') {
                    raw.push(path.trim_end_matches(':').to_string());
                }
            }
            from = at + start.len();
        }
    }
    let mut resolved = Vec::new();
    for path in raw {
        let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let Some(first) = segments.first() else {
            continue;
        };
        let absolute: Vec<String> = match *first {
            "crate" => segments[1..].iter().map(|s| s.to_string()).collect(),
            "super" => {
                // A mod.rs's `super` is its folder's parent; a file's is its folder.
                let mut base = module.to_vec();
                let mut segments = &segments[..];
                while segments.first() == Some(&"super") {
                    base.pop();
                    segments = &segments[1..];
                }
                base.extend(segments.iter().map(|s| s.to_string()));
                base
            }
            "self" => {
                let mut base = module.to_vec();
                base.extend(segments[1..].iter().map(|s| s.to_string()));
                base
            }
            // A child module named without `self::` (`use plan::Plan` in mod.rs).
            child if is_mod_file && child_exists(relative, child) => {
                let mut base = module.to_vec();
                base.extend(segments.iter().map(|s| s.to_string()));
                base
            }
            _ => continue,
        };
        if !absolute.is_empty() && !absolute.starts_with(module) {
            resolved.push(absolute);
        }
    }
    resolved
}

fn child_exists(relative: &Path, child: &str) -> bool {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let dir = src.join(relative).parent().unwrap().to_path_buf();
    dir.join(format!("{child}.rs")).exists() || dir.join(child).join("mod.rs").exists()
}

/// `a::{b, c::{d, e}}` -> `a::b`, `a::c::d`, `a::c::e` (renames dropped).
fn expand(tree: &str, out: &mut Vec<String>) {
    let Some(open) = tree.find('{') else {
        out.push(tree.split(" as ").next().unwrap_or(tree).to_string());
        return;
    };
    let prefix = &tree[..open];
    let close = tree.rfind('}').filter(|c| *c > open).unwrap_or(tree.len());
    let body = &tree[open + 1..close];
    let mut depth = 0;
    let mut part = String::new();
    let mut parts = Vec::new();
    for c in body.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            parts.push(std::mem::take(&mut part));
        } else {
            part.push(c);
        }
    }
    parts.push(part);
    for part in parts.into_iter().filter(|p| !p.is_empty()) {
        let part = if part == "self" { String::new() } else { part };
        expand(&format!("{prefix}{part}"), out);
    }
}
