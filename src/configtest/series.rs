//! promtool's notation for test series, which Prometheus users already
//! write: a selector `name{label="value", ...}` and expanding values
//! (`1+2x3` is 1 3 5 7, `5x2` is 5 5 5, `_` skips one step and `_x3`
//! three). Written by hand: it is two small grammars and no crate has
//! promtool's expansion.

use std::collections::BTreeMap;

/// `name{k="v",...}` into the name and its labels; label names may hold
/// dots, as OpenTelemetry attribute names do.
pub fn selector(text: &str) -> Result<(String, BTreeMap<String, String>), String> {
    let text = text.trim();
    let Some(open) = text.find('{') else {
        check_name(text)?;
        return Ok((text.to_string(), BTreeMap::new()));
    };
    let name = text[..open].trim();
    check_name(name)?;
    let inner = text[open + 1..]
        .strip_suffix('}')
        .ok_or_else(|| format!("series {text:?}: expected `}}` at the end"))?;
    let mut labels = BTreeMap::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("series {text:?}: expected `label=\"value\"`"))?;
        let key = rest[..eq].trim().to_string();
        if key.is_empty() {
            return Err(format!("series {text:?}: a label has no name"));
        }
        rest = rest[eq + 1..].trim_start();
        let body = rest
            .strip_prefix('"')
            .ok_or_else(|| format!("series {text:?}: the value of {key} must be quoted"))?;
        let (value, used) = quoted(body)
            .ok_or_else(|| format!("series {text:?}: the value of {key} has no closing quote"))?;
        labels.insert(key, value);
        rest = body[used..].trim_start();
        match rest.strip_prefix(',') {
            Some(after) => rest = after.trim_start(),
            None if rest.is_empty() => {}
            None => return Err(format!("series {text:?}: expected `,` between labels")),
        }
    }
    Ok((name.to_string(), labels))
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("series name {name:?}: expected a metric name"));
    }
    Ok(())
}

/// The text of a quoted value (after its opening quote) and the bytes
/// used, closing quote included.
fn quoted(body: &str) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, i + 1)),
            '\\' => value.push(chars.next()?.1),
            c => value.push(c),
        }
    }
    None
}

/// The values of a series, one per step; `None` is a step with no sample.
pub fn values(text: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for token in text.split_whitespace() {
        expand(token, &mut out).map_err(|e| format!("values {token:?}: {e}"))?;
    }
    if out.is_empty() {
        return Err("values: expected at least one value".into());
    }
    Ok(out)
}

const MAX_STEPS: usize = 1_000_000;

fn expand(token: &str, out: &mut Vec<Option<f64>>) -> Result<(), String> {
    let (head, times) = match token.rsplit_once('x') {
        Some((head, n)) => {
            let n: usize = n
                .parse()
                .map_err(|_| "expected a count of steps after `x`".to_string())?;
            (head, Some(n))
        }
        None => (token, None),
    };
    if out.len() + times.unwrap_or(1) > MAX_STEPS {
        return Err(format!("more than {MAX_STEPS} steps"));
    }
    if head == "_" {
        out.extend(std::iter::repeat_n(None, times.unwrap_or(1)));
        return Ok(());
    }
    let Some(n) = times else {
        out.push(Some(number(head)?));
        return Ok(());
    };
    // `a+bxn` and `a-bxn`: the sign that splits is not the value's own.
    let split = head
        .char_indices()
        .skip(1)
        .find(|&(i, c)| (c == '+' || c == '-') && !head[..i].ends_with(['e', 'E']))
        .map(|(i, _)| i);
    let (start, step) = match split {
        Some(i) => (number(&head[..i])?, number(&head[i..])?),
        None => (number(head)?, 0.0),
    };
    out.extend((0..=n).map(|k| Some(start + step * k as f64)));
    Ok(())
}

fn number(text: &str) -> Result<f64, String> {
    let text = text.strip_prefix('+').unwrap_or(text);
    match text {
        "Inf" | "inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        _ => text
            .parse()
            .map_err(|_| format!("{text:?} is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_expand_as_promtool_does() {
        let v = |t: &str| values(t).unwrap();
        assert_eq!(v("1+2x3"), [1.0, 3.0, 5.0, 7.0].map(Some));
        assert_eq!(v("5x2"), [5.0, 5.0, 5.0].map(Some));
        assert_eq!(
            v("10-1x2 _ 4"),
            [Some(10.0), Some(9.0), Some(8.0), None, Some(4.0)]
        );
        assert_eq!(v("_x2 1e-3"), [None, None, Some(0.001)]);
        assert_eq!(v("-1+1e1x1"), [Some(-1.0), Some(9.0)]);
        assert!(values("1+ax2").is_err());
        assert!(values("").is_err());
        assert!(values("1x99999999").is_err());
    }

    #[test]
    fn selectors_take_dotted_labels_and_escapes() {
        let (name, labels) =
            selector(r#"system.cpu.utilization{cpu.mode="idle", host.name="a \"b\""}"#).unwrap();
        assert_eq!(name, "system.cpu.utilization");
        assert_eq!(labels["cpu.mode"], "idle");
        assert_eq!(labels["host.name"], "a \"b\"");
        assert_eq!(selector("up").unwrap().1.len(), 0);
        assert!(selector("up{a=b}").is_err());
        assert!(selector("up{a=\"b\"").is_err());
        assert!(selector("{a=\"b\"}").is_err());
    }
}
