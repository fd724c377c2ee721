use super::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

fn config(yaml: &str) -> ProbabilisticSamplerConfig {
    let raw: RawProbabilisticSamplerConfig = yaml_serde::from_str(yaml).unwrap();
    raw.compile().unwrap()
}

fn span(trace_id: &[u8], trace_state: &str, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: trace_id.to_vec(),
        span_id: vec![0xfe; 8],
        trace_state: trace_state.into(),
        name: "s".into(),
        attributes,
        ..Default::default()
    }
}

/// The span after sampling, if kept.
fn decide(yaml: &str, span: Span) -> Option<Span> {
    let sampler = ProbabilisticSampler::new(&config(yaml));
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    match sampler.sample(Batch::Traces(Arc::new(request))).0 {
        Batch::Traces(r) => r
            .resource_spans
            .first()
            .map(|rs| rs.scope_spans[0].spans[0].clone()),
        _ => unreachable!(),
    }
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// The trace id of the Collector's tracestate tests: randomness
/// 0x80000000000000, kept at 50 % and not at 49 %.
fn half_id() -> Vec<u8> {
    let mut id = vec![0xfe; 9];
    id.extend([0x80, 0, 0, 0, 0, 0, 0]);
    id
}

#[test]
fn hash_seed_keeps_the_trace_ids_the_collector_keeps() {
    // (trace id, seed, low 14 bits of FNV-1a(seed LE ++ id)), computed
    // from the Collector's algorithm by an independent script
    // (Python, not this code). Kept at p % when bucket < p * 163.84.
    let vectors = [
        ("3f253d1c501e25ac6a2e1d719ac94d46", 0, 11287),
        ("3f253d1c501e25ac6a2e1d719ac94d46", 22, 3605),
        ("c912a7389e0ddbf3c95931560c14414d", 0, 4573),
        ("c912a7389e0ddbf3c95931560c14414d", 22, 14219),
        ("b8988552df318aeb89ac8bb04f29659e", 0, 6184),
        ("4e1e376cf2370c4e6e50ae2f3ebc3505", 22, 3404),
        ("7352e2e19e0d1a8736d1730a5ca4deeb", 22, 5826),
    ];
    assert_eq!(
        hash_seed::hash(&hex("3f253d1c501e25ac6a2e1d719ac94d46"), 22),
        0xa7718e15
    );
    for (id, seed, bucket) in vectors {
        for pct in [1.0f32, 25.0, 33.33, 50.0, 75.0, 99.0] {
            let expected = (bucket as u32) < (pct * 163.84) as u32;
            let yaml =
                format!("{{ mode: hash_seed, hash_seed: {seed}, sampling_percentage: {pct} }}");
            let kept = decide(&yaml, span(&hex(id), "", vec![]));
            assert_eq!(kept.is_some(), expected, "{id} seed {seed} at {pct} %");
        }
    }
}

#[test]
fn hash_seed_writes_randomness_and_threshold_when_kept() {
    let kept = decide(
        "{ hash_seed: 22, sampling_percentage: 50 }",
        span(&hex("3f253d1c501e25ac6a2e1d719ac94d46"), "congo=x", vec![]),
    )
    .unwrap();
    let state = TraceState::parse(&kept.trace_state).unwrap();
    assert_eq!(state.threshold.unwrap().tvalue().unwrap(), "8");
    let rv = state.randomness.unwrap().1;
    assert!(state.threshold.unwrap().should_sample(rv));
    assert!(
        kept.trace_state.ends_with(",congo=x"),
        "{}",
        kept.trace_state
    );
}

#[test]
fn consistent_modes_follow_the_collectors_tracestate_vectors() {
    // (percentage, precision, arriving tracestate, expected after
    // equalizing, after proportional); None: dropped.
    type Case = (
        f32,
        u32,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
    );
    let cases: [Case; 12] = [
        (100.0, 4, "", Some("ot=th:0"), Some("ot=th:0")),
        (50.0, 4, "", Some("ot=th:8"), Some("ot=th:8")),
        (
            1.0,
            14,
            "ot=rv:FD70A3D70A3D71",
            Some("ot=rv:FD70A3D70A3D71;th:fd70a3d70a3d71"),
            Some("ot=rv:FD70A3D70A3D71;th:fd70a3d70a3d71"),
        ),
        (
            1.0,
            3,
            "ot=rv:FD70A3D70A3D71",
            Some("ot=rv:FD70A3D70A3D71;th:fd7"),
            Some("ot=rv:FD70A3D70A3D71;th:fd7"),
        ),
        (1.0, 14, "ot=rv:FD70A3D70A3D70", None, None),
        (49.0, 4, "", None, None),
        (
            1.0,
            14,
            "ot=rv:fd70B000000000",
            Some("ot=rv:fd70B000000000;th:fd70a3d70a3d71"),
            Some("ot=rv:fd70B000000000;th:fd70a3d70a3d71"),
        ),
        (
            50.0,
            4,
            "ot=rv:90000000000000;th:80000000000000",
            Some("ot=rv:90000000000000;th:8"),
            None,
        ),
        (
            50.0,
            4,
            "ot=rv:c0000000000000;th:8",
            Some("ot=rv:c0000000000000;th:8"),
            Some("ot=rv:c0000000000000;th:c"),
        ),
        (
            100.0,
            4,
            "ot=rv:40000000000000;th:8",
            Some("ot=rv:40000000000000;th:0"),
            Some("ot=rv:40000000000000;th:0"),
        ),
        (
            40.0,
            3,
            "ot=rv:a0000000000000",
            Some("ot=rv:a0000000000000;th:99a"),
            Some("ot=rv:a0000000000000;th:99a"),
        ),
        (
            60.0,
            4,
            "ot=rv:70000000000000;th:8",
            Some("ot=rv:70000000000000;th:6666"),
            Some("ot=rv:70000000000000;th:6666"),
        ),
    ];
    for (pct, precision, arriving, equalizing, proportional) in cases {
        for (mode, expected) in [("equalizing", equalizing), ("proportional", proportional)] {
            let yaml = format!(
                "{{ mode: {mode}, sampling_percentage: {pct}, sampling_precision: {precision} }}"
            );
            let kept = decide(&yaml, span(&half_id(), arriving, vec![]));
            assert_eq!(
                kept.map(|s| s.trace_state),
                expected.map(str::to_string),
                "{mode} {pct} % from `{arriving}`"
            );
        }
    }
    // The 50 % trace id with no seed defaults to proportional.
    assert!(decide("{ sampling_percentage: 50 }", span(&half_id(), "", vec![])).is_some());
}

#[test]
fn sampling_priority_overrides_the_percentage() {
    let priority = |value| vec![crate::otlp::value::key_value("sampling.priority", value)];
    use any_value::Value as V;
    for (value, at, kept) in [
        (V::IntValue(2), 1.0, true),
        (V::IntValue(0), 99.0, false),
        (V::DoubleValue(0.0), 99.0, false),
        (V::StringValue("0.5".into()), 1.0, true),
        (V::StringValue("NaN".into()), 100.0, true),
        (V::IntValue(-1), 100.0, true),
    ] {
        let yaml = format!("{{ sampling_percentage: {at} }}");
        let got = decide(&yaml, span(&half_id(), "", priority(value.clone())));
        assert_eq!(got.is_some(), kept, "{value:?} at {at} %");
    }
}

#[test]
fn a_zero_trace_id_fails_closed_unless_told_otherwise() {
    assert!(decide("{ sampling_percentage: 100 }", span(&[0; 16], "", vec![])).is_none());
    let open = "{ sampling_percentage: 1, fail_closed: false }";
    assert!(decide(open, span(&[0; 16], "", vec![])).is_some());
    // A malformed ot member is a failure too.
    assert!(
        decide(
            "{ sampling_percentage: 100 }",
            span(&half_id(), "ot=th:zz", vec![])
        )
        .is_none()
    );
}

#[test]
fn keeps_the_configured_fraction_of_many_traces() {
    // 20 000 trace ids from a fixed xorshift; 3 sigma of a binomial at
    // p = 0.25 is about 0.9 %.
    let mut x = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let ids: Vec<Vec<u8>> = (0..20_000)
        .map(|_| [next().to_be_bytes(), next().to_be_bytes()].concat())
        .collect();
    for mode in ["hash_seed", "proportional"] {
        let sampler = ProbabilisticSampler::new(&config(&format!(
            "{{ mode: {mode}, hash_seed: 7, sampling_percentage: 25 }}"
        )));
        let kept = ids
            .iter()
            .filter(|id| sampler.span(&mut span(id, "", vec![])))
            .count();
        let fraction = kept as f64 / ids.len() as f64;
        assert!((fraction - 0.25).abs() < 0.0093, "{mode}: {fraction}");
    }
}

#[test]
fn logs_hash_the_trace_id_or_the_named_attribute() {
    use opentelemetry_proto::tonic::logs::v1::LogRecord;
    let sampler = |yaml: &str| ProbabilisticSampler::new(&config(yaml));
    let id = hex("3f253d1c501e25ac6a2e1d719ac94d46"); // bucket 3605 at seed 22
    let record = |attributes| LogRecord {
        trace_id: id.clone(),
        attributes,
        ..Default::default()
    };
    assert!(sampler("{ hash_seed: 22, sampling_percentage: 25 }").log(&record(vec![])));
    assert!(!sampler("{ hash_seed: 22, sampling_percentage: 20 }").log(&record(vec![])));
    // By attribute: the same bytes as a trace id give the same decision.
    let by_attribute =
        "{ hash_seed: 22, sampling_percentage: 25, attribute_source: record, from_attribute: rid }";
    let attribute = vec![crate::otlp::value::key_value(
        "rid",
        any_value::Value::BytesValue(id.clone()),
    )];
    assert!(sampler(by_attribute).log(&record(attribute)));
    // No attribute: fails closed.
    assert!(!sampler(by_attribute).log(&record(vec![])));
    // A priority of 100 % keeps, 0 drops.
    let with_priority = "{ hash_seed: 22, sampling_percentage: 1, sampling_priority: prio }";
    let prio = |v| {
        vec![crate::otlp::value::key_value(
            "prio",
            any_value::Value::IntValue(v),
        )]
    };
    assert!(sampler(with_priority).log(&record(prio(100))));
    assert!(
        !sampler("{ hash_seed: 22, sampling_percentage: 100, sampling_priority: prio }")
            .log(&record(prio(0)))
    );
}

#[test]
fn refuses_what_the_collector_refuses() {
    let errors = |yaml: &str| {
        let raw: RawProbabilisticSamplerConfig = yaml_serde::from_str(yaml).unwrap();
        raw.compile().unwrap_err()
    };
    assert_eq!(
        errors("{ sampling_percentage: -1 }")[0].0,
        "sampling_percentage"
    );
    assert_eq!(
        errors("{ sampling_percentage: 5, sampling_precision: 0 }")[0].0,
        "sampling_precision"
    );
    assert_eq!(
        errors("{ sampling_percentage: 5, sampling_precision: 15 }")[0].0,
        "sampling_precision"
    );
    assert_eq!(
        errors("{ sampling_percentage: 5, attribute_source: record }")[0].0,
        "from_attribute"
    );
}
