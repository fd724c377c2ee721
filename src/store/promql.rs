//! PromQL evaluation over the store's engine. Parsing is `promql-parser`'s;
//! evaluation is ours and follows Prometheus's semantics where the
//! compatibility test can check them: a 5 minute lookback for instant
//! selectors, ranges left-open `(t - range, t]` as in Prometheus 3,
//! `rate`/`increase`/`delta` with Prometheus's extrapolation, counter
//! resets, `histogram_quantile` by linear interpolation inside the bucket.
//!
//! A range query evaluates each step on its own, over points each
//! selector loads once for the whole range from the tier that fits the
//! step (`Engine::pick_tier`). On a rollup tier a selector reads each
//! step's `last`, and `*_over_time` read the matching aggregate (min, max,
//! sum, count), so averages and extremes stay exact after downsampling.
//!
//! Not supported (a clear error): subqueries, `@`, native histograms,
//! and functions outside [`call`]'s table.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use promql_parser::label::{MatchOp, Matchers};
use promql_parser::parser::{
    self, AggregateExpr, BinaryExpr, Call, Expr, LabelModifier, Offset, VectorMatchCardinality,
    VectorSelector,
};

use super::engine::{Engine, LabelMatcher, Labels, Point};

pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

#[derive(Debug, Clone)]
pub struct Series {
    pub labels: Labels,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone)]
pub enum Value {
    Scalar(f64),
    String(String),
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
}

pub type Error = String;

/// Points loaded per selector (and window), for every step of a query.
type Loaded = Vec<(Arc<Labels>, Vec<Point>)>;

pub struct Evaluator<'a> {
    engine: &'a Engine,
    start: i64,
    end: i64,
    step: i64,
    cache: HashMap<(String, i64, usize), Arc<Loaded>>,
}

/// Series ids whose labels satisfy every PromQL matcher.
pub fn select(engine: &Engine, matchers: &[promql_parser::label::Matcher]) -> Vec<u32> {
    let predicates: Vec<_> = matchers
        .iter()
        .map(|m| move |v: &str| m.is_match(v))
        .collect();
    let refs: Vec<LabelMatcher> = matchers
        .iter()
        .zip(&predicates)
        .map(|(m, f)| (m.name.as_str(), f as &dyn Fn(&str) -> bool))
        .collect();
    engine.select_ids(&refs)
}

/// A range query's answer: label set and its (time, value) points.
pub type RangeResult = Vec<(Labels, Vec<(i64, f64)>)>;

/// What a `*_over_time`-like function computes from a range's points and
/// the range's (start, end).
type RangeFunction<'f> = &'f dyn Fn(&[Point], i64, i64) -> Option<f64>;

pub fn parse(query: &str) -> Result<Expr, Error> {
    parser::parse(query).map_err(|e| format!("bad query: {e}"))
}

fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
        None => 0,
    }
}

fn drop_name(mut labels: Labels) -> Labels {
    labels.retain(|(k, _)| k != "__name__");
    labels
}

fn get<'l>(labels: &'l Labels, name: &str) -> Option<&'l str> {
    labels
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn matchers_of(selector: &VectorSelector) -> Vec<promql_parser::label::Matcher> {
    let Matchers { matchers, .. } = &selector.matchers;
    let mut all = matchers.clone();
    if let Some(name) = &selector.name {
        all.push(promql_parser::label::Matcher {
            op: MatchOp::Equal,
            name: "__name__".into(),
            value: name.clone(),
        });
    }
    all
}

impl<'a> Evaluator<'a> {
    /// `step` 0 for an instant query at `start` (= `end`).
    pub fn new(engine: &'a Engine, start: i64, end: i64, step: i64) -> Self {
        Evaluator {
            engine,
            start,
            end,
            step,
            cache: HashMap::new(),
        }
    }

    /// The selector's series with their points over the whole query,
    /// `window` before each step included.
    fn load(
        &mut self,
        selector: &VectorSelector,
        window: i64,
        resolution: i64,
    ) -> Result<Arc<Loaded>, Error> {
        if selector.at.is_some() {
            return Err("the @ modifier is not supported".into());
        }
        if !selector.matchers.or_matchers.is_empty() {
            return Err("`or` inside a selector is not supported".into());
        }
        let offset = offset_ms(&selector.offset);
        let from = self.start - window - offset;
        let to = self.end - offset;
        let tier = self.engine.pick_tier(from, resolution);
        let key = (selector.to_string(), window, tier);
        if let Some(loaded) = self.cache.get(&key) {
            return Ok(loaded.clone());
        }
        let ids = select(self.engine, &matchers_of(selector));
        let loaded: Loaded = ids
            .into_iter()
            .filter_map(|id| {
                let labels = self.engine.labels_of(id)?;
                let points = self.engine.points(id, tier, from, to);
                (!points.is_empty()).then_some((labels, points))
            })
            .collect();
        let loaded = Arc::new(loaded);
        self.cache.insert(key, loaded.clone());
        Ok(loaded)
    }

    pub fn eval(&mut self, expr: &Expr, t: i64) -> Result<Value, Error> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(v) => Ok(Value::Vector(
                    v.into_iter()
                        .map(|s| Sample {
                            labels: drop_name(s.labels),
                            value: -s.value,
                        })
                        .collect(),
                )),
                _ => Err("unary minus needs a scalar or a vector".into()),
            },
            Expr::VectorSelector(selector) => {
                let resolution = self.step.min(LOOKBACK_MS);
                let loaded = self.load(selector, LOOKBACK_MS, resolution)?;
                let at = t - offset_ms(&selector.offset);
                let mut out = Vec::new();
                for (labels, points) in loaded.iter() {
                    let end = points.partition_point(|p| p.time <= at);
                    if end == 0 {
                        continue;
                    }
                    let p = points[end - 1];
                    if p.time > at - LOOKBACK_MS {
                        out.push(Sample {
                            labels: labels.as_ref().clone(),
                            value: p.last,
                        });
                    }
                }
                Ok(Value::Vector(out))
            }
            Expr::MatrixSelector(m) => {
                let range = m.range.as_millis() as i64;
                let resolution = self.step.min(range / 4);
                let loaded = self.load(&m.vs, range, resolution)?;
                let at = t - offset_ms(&m.vs.offset);
                let mut out = Vec::new();
                for (labels, points) in loaded.iter() {
                    let first = points.partition_point(|p| p.time <= at - range);
                    let last = points.partition_point(|p| p.time <= at);
                    if first < last {
                        out.push(Series {
                            labels: labels.as_ref().clone(),
                            points: points[first..last].to_vec(),
                        });
                    }
                }
                Ok(Value::Matrix(out))
            }
            Expr::Call(c) => self.call(c, t),
            Expr::Aggregate(a) => self.aggregate(a, t),
            Expr::Binary(b) => self.binary(b, t),
            Expr::Subquery(_) => Err("subqueries are not supported".into()),
            Expr::Extension(_) => Err("extension expressions are not supported".into()),
        }
    }

    fn vector(&mut self, expr: &Expr, t: i64) -> Result<Vec<Sample>, Error> {
        match self.eval(expr, t)? {
            Value::Vector(v) => Ok(v),
            _ => Err(format!("expected an instant vector: {expr}")),
        }
    }

    fn scalar(&mut self, expr: &Expr, t: i64) -> Result<f64, Error> {
        match self.eval(expr, t)? {
            Value::Scalar(v) => Ok(v),
            _ => Err(format!("expected a scalar: {expr}")),
        }
    }

    fn matrix(&mut self, expr: &Expr, t: i64) -> Result<(Vec<Series>, i64, i64), Error> {
        let m = match expr {
            Expr::MatrixSelector(m) => m,
            Expr::Subquery(_) => return Err("subqueries are not supported".into()),
            _ => return Err(format!("expected a range vector selector: {expr}")),
        };
        let range = m.range.as_millis() as i64;
        let at = t - offset_ms(&m.vs.offset);
        match self.eval(expr, t)? {
            Value::Matrix(series) => Ok((series, at - range, at)),
            _ => Err(format!("expected a range vector: {expr}")),
        }
    }

    fn call(&mut self, c: &Call, t: i64) -> Result<Value, Error> {
        let name = c.func.name;
        let args = &c.args.args;
        let arg = |i: usize| -> Result<&Expr, Error> {
            args.get(i)
                .map(|b| b.as_ref())
                .ok_or_else(|| format!("{name}: argument {} missing", i + 1))
        };
        let over_range =
            |this: &mut Self, f: RangeFunction, keep_name: bool| -> Result<Value, Error> {
                let (series, start, end) = this.matrix(arg(0)?, t)?;
                Ok(Value::Vector(
                    series
                        .into_iter()
                        .filter_map(|s| {
                            let value = f(&s.points, start, end)?;
                            let labels = if keep_name {
                                s.labels
                            } else {
                                drop_name(s.labels)
                            };
                            Some(Sample { labels, value })
                        })
                        .collect(),
                ))
            };
        let each = |this: &mut Self, f: &dyn Fn(f64) -> f64| -> Result<Value, Error> {
            let v = this.vector(arg(0)?, t)?;
            Ok(Value::Vector(
                v.into_iter()
                    .map(|s| Sample {
                        labels: drop_name(s.labels),
                        value: f(s.value),
                    })
                    .collect(),
            ))
        };
        match name {
            "rate" => over_range(self, &|p, s, e| extrapolated(p, s, e, true, true), false),
            "increase" => over_range(self, &|p, s, e| extrapolated(p, s, e, true, false), false),
            "delta" => over_range(self, &|p, s, e| extrapolated(p, s, e, false, false), false),
            "irate" => over_range(self, &|p, _, _| instant(p, true), false),
            "idelta" => over_range(self, &|p, _, _| instant(p, false), false),
            "avg_over_time" => over_range(
                self,
                &|p, _, _| {
                    let (sum, count) = p
                        .iter()
                        .fold((0.0, 0.0), |(s, c), x| (s + x.sum, c + x.count));
                    Some(sum / count)
                },
                false,
            ),
            "sum_over_time" => {
                over_range(self, &|p, _, _| Some(p.iter().map(|x| x.sum).sum()), false)
            }
            "count_over_time" => over_range(
                self,
                &|p, _, _| Some(p.iter().map(|x| x.count).sum()),
                false,
            ),
            "min_over_time" => over_range(
                self,
                &|p, _, _| p.iter().map(|x| x.min).reduce(f64::min),
                false,
            ),
            "max_over_time" => over_range(
                self,
                &|p, _, _| p.iter().map(|x| x.max).reduce(f64::max),
                false,
            ),
            "last_over_time" => over_range(self, &|p, _, _| p.last().map(|x| x.last), true),
            "present_over_time" => over_range(self, &|_, _, _| Some(1.0), false),
            "stddev_over_time" | "stdvar_over_time" => {
                let stddev = name == "stddev_over_time";
                over_range(
                    self,
                    &move |p, _, _| {
                        let n = p.len() as f64;
                        let mean = p.iter().map(|x| x.last).sum::<f64>() / n;
                        let var = p.iter().map(|x| (x.last - mean).powi(2)).sum::<f64>() / n;
                        Some(if stddev { var.sqrt() } else { var })
                    },
                    false,
                )
            }
            "deriv" => over_range(
                self,
                &|p, _, _| regression(p, t).map(|(slope, _)| slope),
                false,
            ),
            "predict_linear" => {
                let seconds = self.scalar(arg(1)?, t)?;
                over_range(
                    self,
                    &move |p, _, _| {
                        regression(p, t).map(|(slope, intercept)| slope * seconds + intercept)
                    },
                    false,
                )
            }
            "histogram_quantile" => {
                let q = self.scalar(arg(0)?, t)?;
                let v = self.vector(arg(1)?, t)?;
                Ok(Value::Vector(histogram_quantile(q, v)))
            }
            "abs" => each(self, &f64::abs),
            "ceil" => each(self, &f64::ceil),
            "floor" => each(self, &f64::floor),
            "round" if args.len() == 1 => each(self, &|v| (v + 0.5).floor()),
            "sqrt" => each(self, &f64::sqrt),
            "exp" => each(self, &f64::exp),
            "ln" => each(self, &f64::ln),
            "log2" => each(self, &f64::log2),
            "log10" => each(self, &f64::log10),
            "clamp_min" => {
                let m = self.scalar(arg(1)?, t)?;
                each(self, &move |v| v.max(m))
            }
            "clamp_max" => {
                let m = self.scalar(arg(1)?, t)?;
                each(self, &move |v| v.min(m))
            }
            "scalar" => {
                let v = self.vector(arg(0)?, t)?;
                Ok(Value::Scalar(if v.len() == 1 {
                    v[0].value
                } else {
                    f64::NAN
                }))
            }
            "vector" => {
                let v = self.scalar(arg(0)?, t)?;
                Ok(Value::Vector(vec![Sample {
                    labels: Vec::new(),
                    value: v,
                }]))
            }
            "time" => Ok(Value::Scalar(t as f64 / 1000.0)),
            other => Err(format!("function {other} is not supported")),
        }
    }

    fn aggregate(&mut self, a: &AggregateExpr, t: i64) -> Result<Value, Error> {
        let op = a.op.to_string();
        let param = match &a.param {
            Some(p) if op == "topk" || op == "bottomk" || op == "quantile" => {
                Some(self.scalar(p, t)?)
            }
            Some(_) => return Err(format!("{op}: parameter not supported")),
            None => None,
        };
        let input = self.vector(&a.expr, t)?;
        let key_of = |labels: &Labels| -> Labels {
            match &a.modifier {
                Some(LabelModifier::Include(by)) => labels
                    .iter()
                    .filter(|(k, _)| by.labels.iter().any(|b| b == k))
                    .cloned()
                    .collect(),
                Some(LabelModifier::Exclude(without)) => labels
                    .iter()
                    .filter(|(k, _)| k != "__name__" && !without.labels.iter().any(|b| b == k))
                    .cloned()
                    .collect(),
                None => Vec::new(),
            }
        };
        let mut groups: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        for s in input {
            groups.entry(key_of(&s.labels)).or_default().push(s);
        }
        let mut out = Vec::new();
        for (key, members) in groups {
            let values = members.iter().map(|s| s.value);
            let value = match op.as_str() {
                "sum" => values.sum(),
                "avg" => values.sum::<f64>() / members.len() as f64,
                "min" => members
                    .iter()
                    .map(|s| s.value)
                    .reduce(nan_min)
                    .unwrap_or(f64::NAN),
                "max" => members
                    .iter()
                    .map(|s| s.value)
                    .reduce(nan_max)
                    .unwrap_or(f64::NAN),
                "count" => members.len() as f64,
                "group" => 1.0,
                "stddev" | "stdvar" => {
                    let n = members.len() as f64;
                    let mean = members.iter().map(|s| s.value).sum::<f64>() / n;
                    let var = members
                        .iter()
                        .map(|s| (s.value - mean).powi(2))
                        .sum::<f64>()
                        / n;
                    if op == "stddev" { var.sqrt() } else { var }
                }
                "topk" | "bottomk" => {
                    let k = param.unwrap_or(0.0).max(0.0) as usize;
                    let mut members = members;
                    members.sort_by(|x, y| {
                        let order = x
                            .value
                            .partial_cmp(&y.value)
                            .unwrap_or(std::cmp::Ordering::Equal);
                        if op == "topk" { order.reverse() } else { order }
                    });
                    out.extend(members.into_iter().take(k));
                    continue;
                }
                other => return Err(format!("aggregation {other} is not supported")),
            };
            out.push(Sample { labels: key, value });
        }
        Ok(Value::Vector(out))
    }

    fn binary(&mut self, b: &BinaryExpr, t: i64) -> Result<Value, Error> {
        let op = b.op.to_string();
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let lhs = self.eval(&b.lhs, t)?;
        let rhs = self.eval(&b.rhs, t)?;
        let comparison = b.op.is_comparison_operator();
        match (lhs, rhs) {
            (Value::Scalar(x), Value::Scalar(y)) => {
                let v = apply(&op, x, y)?;
                Ok(Value::Scalar(if comparison {
                    f64::from(u8::from(v.is_some()))
                } else {
                    v.unwrap_or(f64::NAN)
                }))
            }
            (Value::Vector(v), Value::Scalar(y)) => Ok(Value::Vector(scalar_op(
                &op,
                v,
                y,
                false,
                comparison,
                return_bool,
            )?)),
            (Value::Scalar(x), Value::Vector(v)) => Ok(Value::Vector(scalar_op(
                &op,
                v,
                x,
                true,
                comparison,
                return_bool,
            )?)),
            (Value::Vector(l), Value::Vector(r)) => Ok(Value::Vector(vector_op(
                &op,
                b,
                l,
                r,
                comparison,
                return_bool,
            )?)),
            _ => Err(format!("operator {op} needs scalars or instant vectors")),
        }
    }
}

fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b < a { b } else { a }
}

fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b > a { b } else { a }
}

/// `x op y`: Some(result) for arithmetic; for comparisons Some(x) when
/// true, None when false.
fn apply(op: &str, x: f64, y: f64) -> Result<Option<f64>, Error> {
    let truth = |c: bool| if c { Some(x) } else { None };
    Ok(match op {
        "+" => Some(x + y),
        "-" => Some(x - y),
        "*" => Some(x * y),
        "/" => Some(x / y),
        "%" => Some(x % y),
        "^" => Some(x.powf(y)),
        "atan2" => Some(x.atan2(y)),
        "==" => truth(x == y),
        "!=" => truth(x != y),
        ">" => truth(x > y),
        "<" => truth(x < y),
        ">=" => truth(x >= y),
        "<=" => truth(x <= y),
        other => return Err(format!("operator {other} is not supported here")),
    })
}

fn scalar_op(
    op: &str,
    vector: Vec<Sample>,
    scalar: f64,
    scalar_on_left: bool,
    comparison: bool,
    return_bool: bool,
) -> Result<Vec<Sample>, Error> {
    let mut out = Vec::new();
    for s in vector {
        let (x, y) = if scalar_on_left {
            (scalar, s.value)
        } else {
            (s.value, scalar)
        };
        let result = apply(op, x, y)?;
        if comparison {
            if return_bool {
                out.push(Sample {
                    labels: drop_name(s.labels),
                    value: f64::from(u8::from(result.is_some())),
                });
            } else if result.is_some() {
                out.push(s);
            }
        } else if let Some(value) = result {
            out.push(Sample {
                labels: drop_name(s.labels),
                value,
            });
        }
    }
    Ok(out)
}

fn vector_op(
    op: &str,
    b: &BinaryExpr,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    comparison: bool,
    return_bool: bool,
) -> Result<Vec<Sample>, Error> {
    let modifier = b.modifier.as_ref();
    let matching = modifier.and_then(|m| m.matching.as_ref());
    let key = |labels: &Labels| -> Labels {
        match matching {
            Some(LabelModifier::Include(on)) => labels
                .iter()
                .filter(|(k, _)| on.labels.iter().any(|l| l == k))
                .cloned()
                .collect(),
            Some(LabelModifier::Exclude(ignoring)) => labels
                .iter()
                .filter(|(k, _)| k != "__name__" && !ignoring.labels.iter().any(|l| l == k))
                .cloned()
                .collect(),
            None => labels
                .iter()
                .filter(|(k, _)| k != "__name__")
                .cloned()
                .collect(),
        }
    };
    if matches!(op, "and" | "or" | "unless") {
        let right: std::collections::BTreeSet<Labels> =
            rhs.iter().map(|s| key(&s.labels)).collect();
        return Ok(match op {
            "and" => lhs
                .into_iter()
                .filter(|s| right.contains(&key(&s.labels)))
                .collect(),
            "unless" => lhs
                .into_iter()
                .filter(|s| !right.contains(&key(&s.labels)))
                .collect(),
            _ => {
                let left: std::collections::BTreeSet<Labels> =
                    lhs.iter().map(|s| key(&s.labels)).collect();
                let mut out = lhs;
                out.extend(rhs.into_iter().filter(|s| !left.contains(&key(&s.labels))));
                out
            }
        });
    }
    let card = modifier
        .map(|m| &m.card)
        .unwrap_or(&VectorMatchCardinality::OneToOne);
    // group_right: evaluate as group_left with the sides swapped.
    let (many, one, swapped, include) = match card {
        VectorMatchCardinality::OneToMany(include) => (rhs, lhs, true, Some(include)),
        VectorMatchCardinality::ManyToOne(include) => (lhs, rhs, false, Some(include)),
        _ => (lhs, rhs, false, None),
    };
    let mut by_key: HashMap<Labels, &Sample> = HashMap::new();
    for s in &one {
        if by_key.insert(key(&s.labels), s).is_some() {
            return Err(
                "many-to-many matching not allowed: matching labels must be unique on one side"
                    .into(),
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for s in many {
        let k = key(&s.labels);
        let Some(other) = by_key.get(&k) else {
            continue;
        };
        if include.is_none() && !seen.insert(k.clone()) {
            return Err(
                "many-to-many matching not allowed: matching labels must be unique on one side"
                    .into(),
            );
        }
        let (x, y) = if swapped {
            (other.value, s.value)
        } else {
            (s.value, other.value)
        };
        let result = apply(op, x, y)?;
        let mut labels = if comparison && !return_bool {
            s.labels.clone()
        } else {
            drop_name(s.labels.clone())
        };
        match (include, matching) {
            (None, Some(LabelModifier::Include(on))) => {
                labels.retain(|(k, _)| on.labels.iter().any(|l| l == k))
            }
            (None, Some(LabelModifier::Exclude(ignoring))) => {
                labels.retain(|(k, _)| !ignoring.labels.iter().any(|l| l == k))
            }
            (Some(include), _) => {
                for name in &include.labels {
                    labels.retain(|(k, _)| k != name);
                    if let Some(v) = get(&other.labels, name) {
                        labels.push((name.clone(), v.to_string()));
                    }
                }
                labels.sort();
            }
            _ => {}
        }
        if comparison {
            if return_bool {
                out.push(Sample {
                    labels,
                    value: f64::from(u8::from(result.is_some())),
                });
            } else if result.is_some() {
                // A filter keeps the left side's value.
                out.push(Sample {
                    labels,
                    value: if swapped { other.value } else { s.value },
                });
            }
        } else if let Some(value) = result {
            out.push(Sample { labels, value });
        }
    }
    Ok(out)
}

/// Prometheus's `extrapolatedRate`: the change over the samples in the
/// range, extrapolated to the range's edges unless a sample is missing
/// there, never below zero for a counter.
fn extrapolated(
    points: &[Point],
    range_start: i64,
    range_end: i64,
    counter: bool,
    per_second: bool,
) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let first = points[0];
    let last = points[points.len() - 1];
    let mut result = last.last - first.last;
    if counter {
        let mut previous = first.last;
        for p in &points[1..] {
            if p.last < previous {
                result += previous;
            }
            previous = p.last;
        }
    }
    let seconds = |ms: i64| ms as f64 / 1000.0;
    let mut to_start = seconds(first.time - range_start);
    let to_end = seconds(range_end - last.time);
    let sampled = seconds(last.time - first.time);
    let average = sampled / (points.len() - 1) as f64;
    if counter && result > 0.0 && first.last >= 0.0 {
        let to_zero = sampled * (first.last / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        average / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        average / 2.0
    };
    let mut factor = interval / sampled;
    if per_second {
        factor /= seconds(range_end - range_start);
    }
    Some(result * factor)
}

/// `irate` / `idelta`: from the last two samples.
fn instant(points: &[Point], rate: bool) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (a, b) = (points[points.len() - 2], points[points.len() - 1]);
    if !rate {
        return Some(b.last - a.last);
    }
    let change = if b.last < a.last {
        b.last
    } else {
        b.last - a.last
    };
    let seconds = (b.time - a.time) as f64 / 1000.0;
    (seconds > 0.0).then_some(change / seconds)
}

/// Least squares over (seconds from `at`, value): (slope, intercept at `at`).
fn regression(points: &[Point], at: i64) -> Option<(f64, f64)> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let (mut sx, mut sy, mut sxy, mut sxx) = (0.0, 0.0, 0.0, 0.0);
    let constant_x = points.iter().all(|p| p.time == points[0].time);
    for p in points {
        let x = (p.time - at) as f64 / 1000.0;
        sx += x;
        sy += p.last;
        sxy += x * p.last;
        sxx += x * x;
    }
    if constant_x {
        return Some((0.0, sy / n));
    }
    let covariance = sxy - sx * sy / n;
    let variance = sxx - sx * sx / n;
    let slope = covariance / variance;
    Some((slope, sy / n - slope * sx / n))
}

/// Groups buckets by their labels without `le` and `__name__`, then
/// interpolates linearly inside the bucket holding the rank, as
/// Prometheus's `bucketQuantile` does.
fn histogram_quantile(q: f64, vector: Vec<Sample>) -> Vec<Sample> {
    let mut groups: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
    for s in vector {
        let Some(le) = get(&s.labels, "le").and_then(|v| {
            v.parse::<f64>()
                .ok()
                .or_else(|| (v == "+Inf").then_some(f64::INFINITY))
        }) else {
            continue;
        };
        let mut labels = drop_name(s.labels);
        labels.retain(|(k, _)| k != "le");
        groups.entry(labels).or_default().push((le, s.value));
    }
    groups
        .into_iter()
        .map(|(labels, mut buckets)| {
            buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
            Sample {
                labels,
                value: bucket_quantile(q, &mut buckets),
            }
        })
        .collect()
}

fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if buckets.len() < 2 || buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Counts must not fall from one bucket to the next (scrape races).
    let mut max = f64::NEG_INFINITY;
    for b in buckets.iter_mut() {
        max = max.max(b.1);
        b.1 = max;
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = buckets
        .partition_point(|x| x.1 < rank)
        .min(buckets.len() - 1);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (mut start, end, mut count) = (0.0, buckets[b].0, buckets[b].1);
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// An instant query's answer at `t`.
pub fn instant_query(engine: &Engine, query: &str, t: i64) -> Result<Value, Error> {
    let expr = parse(query)?;
    Evaluator::new(engine, t, t, 0).eval(&expr, t)
}

/// A range query's answer: one series per label set, a point per step
/// where it has a value.
pub fn range_query(
    engine: &Engine,
    query: &str,
    start: i64,
    end: i64,
    step: i64,
) -> Result<RangeResult, Error> {
    if step <= 0 {
        return Err("step must be positive".into());
    }
    if (end - start) / step > 11_000 {
        return Err("exceeded maximum resolution of 11,000 points per timeseries".into());
    }
    let expr = parse(query)?;
    let mut evaluator = Evaluator::new(engine, start, end, step);
    let mut out: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    let mut t = start;
    while t <= end {
        match evaluator.eval(&expr, t)? {
            Value::Scalar(v) => out.entry(Vec::new()).or_default().push((t, v)),
            Value::Vector(v) => {
                for s in v {
                    out.entry(s.labels).or_default().push((t, s.value));
                }
            }
            _ => return Err("a range query needs a scalar or instant vector expression".into()),
        }
        t += step;
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tier::Tier;

    fn engine() -> Engine {
        let mut e = Engine::new(Tier::defaults(), 1000, u64::MAX);
        for (instance, slope) in [("a", 1.0), ("b", 2.0)] {
            let labels: Labels = vec![
                ("__name__".into(), "requests_total".into()),
                ("instance".into(), instance.into()),
                ("job".into(), "app".into()),
            ];
            for i in 0..=60 {
                e.append(&labels, i * 10_000, i as f64 * 10.0 * slope, false);
            }
        }
        e
    }

    fn vector(value: Value) -> Vec<Sample> {
        match value {
            Value::Vector(v) => v,
            other => panic!("not a vector: {other:?}"),
        }
    }

    #[test]
    fn rate_of_a_steady_counter_is_its_slope() {
        let e = engine();
        let v =
            vector(instant_query(&e, "rate(requests_total{instance=\"a\"}[1m])", 600_000).unwrap());
        assert_eq!(v.len(), 1);
        assert!((v[0].value - 1.0).abs() < 1e-9, "{}", v[0].value);
        assert_eq!(get(&v[0].labels, "__name__"), None);
    }

    #[test]
    fn sum_by_and_matchers() {
        let e = engine();
        let v = vector(
            instant_query(
                &e,
                "sum by (job) (requests_total{instance=~\"a|b\"})",
                600_000,
            )
            .unwrap(),
        );
        assert_eq!(
            v,
            vec![Sample {
                labels: vec![("job".into(), "app".into())],
                value: 1800.0
            }]
        );
        let v = vector(instant_query(&e, "requests_total{instance!=\"a\"}", 600_000).unwrap());
        assert_eq!(v.len(), 1);
        let v = vector(instant_query(&e, "requests_total{instance!~\"a\"}", 600_000).unwrap());
        assert_eq!(get(&v[0].labels, "instance"), Some("b"));
    }

    #[test]
    fn vector_matching_and_scalars() {
        let e = engine();
        let q =
            "requests_total{instance=\"b\"} / ignoring(instance) requests_total{instance=\"a\"}";
        let v = vector(instant_query(&e, q, 600_000).unwrap());
        assert_eq!(v[0].value, 2.0);
        let v = vector(instant_query(&e, "requests_total > 700", 600_000).unwrap());
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn histogram_quantile_interpolates() {
        let mut buckets = vec![(0.1, 10.0), (1.0, 30.0), (f64::INFINITY, 40.0)];
        assert!((bucket_quantile(0.5, &mut buckets) - 0.55).abs() < 1e-9);
        let mut buckets = vec![(0.1, 10.0), (1.0, 30.0), (f64::INFINITY, 40.0)];
        assert_eq!(bucket_quantile(0.99, &mut buckets), 1.0);
    }

    #[test]
    fn predict_linear_extends_the_line() {
        let e = engine();
        let v = vector(
            instant_query(
                &e,
                "predict_linear(requests_total{instance=\"a\"}[5m], 60)",
                600_000,
            )
            .unwrap(),
        );
        assert!((v[0].value - 660.0).abs() < 1e-6, "{}", v[0].value);
    }

    #[test]
    fn unsupported_parts_are_errors_not_panics() {
        let e = engine();
        assert!(
            instant_query(&e, "rate(requests_total[5m:1m])", 0)
                .unwrap_err()
                .contains("subqueries")
        );
        assert!(
            instant_query(&e, "sum(", 0)
                .unwrap_err()
                .starts_with("bad query")
        );
    }
}
