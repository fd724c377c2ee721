use super::*;
use crate::otlp::value::{int_kv, string_kv};
use opentelemetry_proto::tonic::trace::v1::{Span, Status, status::StatusCode};

fn config(policies: &str, extra: &str) -> Result<TailSamplingConfig, Vec<String>> {
    let loaded = crate::plan::load_str(
        &format!(
            "receivers: {{ otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }} }}\nprocessors:\n  tail_sampling:\n    decision_wait: 1s\n{extra}    policies:\n{policies}\nexporters: {{ debug: {{}} }}\nservice: {{ pipelines: {{ traces: {{ receivers: [otlp], processors: [tail_sampling], exporters: [debug] }} }} }}\n"
        ),
        "t.yaml",
    );
    match loaded {
        Ok(loaded) => match loaded.plan.processors.values().next() {
            Some(c) => Ok(crate::components::processor_as::<TailSamplingConfig>(c)
                .unwrap()
                .clone()),
            _ => panic!("no tail_sampling"),
        },
        Err(e) => Err(e.errors.iter().map(|e| e.to_string()).collect()),
    }
}

/// A trace id ending in `n`, its other bytes spread by splitmix64 as a
/// random id's would be (FNV mixes the last bytes into the top bits
/// poorly, so ids differing only there would all hash alike).
fn id(n: u32) -> Vec<u8> {
    let mut z = u64::from(n).wrapping_add(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^= z >> 31;
    let mut id = z.to_be_bytes().to_vec();
    id.extend(&z.rotate_left(17).to_be_bytes()[..4]);
    id.extend(n.to_be_bytes());
    id
}

struct SpanSpec {
    trace: u32,
    millis: u64,
    error: bool,
    attributes: Vec<opentelemetry_proto::tonic::common::v1::KeyValue>,
}

fn spec(trace: u32) -> SpanSpec {
    SpanSpec {
        trace,
        millis: 10,
        error: false,
        attributes: vec![],
    }
}

fn request(spans: Vec<SpanSpec>) -> Batch {
    let spans = spans
        .into_iter()
        .map(|s| Span {
            trace_id: id(s.trace),
            span_id: vec![1; 8],
            name: format!("t{}", s.trace),
            start_time_unix_nano: 1_000_000_000,
            end_time_unix_nano: 1_000_000_000 + s.millis * 1_000_000,
            status: s.error.then(|| Status {
                code: StatusCode::Error as i32,
                message: "boom".into(),
            }),
            attributes: s.attributes,
            ..Default::default()
        })
        .collect();
    Batch::Traces(Arc::new(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }))
}

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// Trace numbers in what the processor emitted.
fn kept(out: &[Batch]) -> Vec<u32> {
    let mut kept: Vec<u32> = out
        .iter()
        .filter_map(|b| match b {
            Batch::Traces(r) => Some(r),
            _ => None,
        })
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| u32::from_be_bytes(s.trace_id[12..].try_into().unwrap()))
        .collect();
    kept.dedup();
    kept
}

/// Sends `spans` at t0 and ticks past the decision wait.
fn run(policies: &str, spans: Vec<SpanSpec>) -> Vec<u32> {
    let mut p = TailSampling::new(&config(policies, "").unwrap());
    let mut out = Vec::new();
    p.process(request(spans), t0(), &mut out);
    assert!(out.is_empty(), "nothing leaves before the decision wait");
    p.tick(t0() + Duration::from_millis(999), &mut out);
    assert!(out.is_empty(), "nor just before it ends");
    p.tick(t0() + Duration::from_secs(1), &mut out);
    kept(&out)
}

#[test]
fn keeps_traces_with_errors_or_slow_spans_and_drops_the_rest() {
    let policies = "      - { name: errors, type: status_code, status_code: { status_codes: [ERROR] } }\n      - { name: slow, type: latency, latency: { threshold_ms: 500 } }";
    let spans = vec![
        spec(1),
        SpanSpec {
            error: true,
            ..spec(2)
        },
        SpanSpec {
            millis: 700,
            ..spec(3)
        },
        spec(4),
        spec(2),
    ];
    assert_eq!(run(policies, spans), vec![2, 3]);
}

#[test]
fn latency_has_an_upper_bound_and_span_count_a_range() {
    let latency = "      - { name: l, type: latency, latency: { threshold_ms: 100, upper_threshold_ms: 200 } }";
    let spans = vec![
        SpanSpec {
            millis: 50,
            ..spec(1)
        },
        SpanSpec {
            millis: 150,
            ..spec(2)
        },
        SpanSpec {
            millis: 250,
            ..spec(3)
        },
    ];
    assert_eq!(run(latency, spans), vec![2]);
    let count = "      - { name: c, type: span_count, span_count: { min_spans: 2, max_spans: 3 } }";
    let spans = vec![
        spec(1),
        spec(2),
        spec(2),
        spec(3),
        spec(3),
        spec(3),
        spec(3),
    ];
    assert_eq!(run(count, spans), vec![2]);
}

#[test]
fn attribute_policies_match_exactly_by_regex_by_range_and_inverted() {
    let attr = |trace, key: &str, value: &str| SpanSpec {
        attributes: vec![string_kv(key, value)],
        ..spec(trace)
    };
    let exact = "      - { name: s, type: string_attribute, string_attribute: { key: tier, values: [gold, silver] } }";
    assert_eq!(
        run(
            exact,
            vec![
                attr(1, "tier", "gold"),
                attr(2, "tier", "bronze"),
                attr(3, "other", "gold")
            ]
        ),
        vec![1]
    );
    let regex = "      - { name: s, type: string_attribute, string_attribute: { key: http.route, values: ['^/api/.*'], enabled_regex_matching: true } }";
    assert_eq!(
        run(
            regex,
            vec![
                attr(1, "http.route", "/api/v1"),
                attr(2, "http.route", "/health")
            ]
        ),
        vec![1]
    );
    // An inverted match drops health checks whatever else samples them.
    let inverted = "      - { name: all, type: always_sample }\n      - { name: no-health, type: string_attribute, string_attribute: { key: http.route, values: [/health], invert_match: true } }";
    assert_eq!(
        run(
            inverted,
            vec![
                attr(1, "http.route", "/api/v1"),
                attr(2, "http.route", "/health")
            ]
        ),
        vec![1]
    );
    let numeric = "      - { name: n, type: numeric_attribute, numeric_attribute: { key: http.status_code, min_value: 500, max_value: 599 } }";
    let code = |trace, code| SpanSpec {
        attributes: vec![int_kv("http.status_code", code)],
        ..spec(trace)
    };
    assert_eq!(
        run(numeric, vec![code(1, 200), code(2, 503), code(3, 600)]),
        vec![2]
    );
}

#[test]
fn and_needs_every_sub_policy() {
    let and = "      - name: slow-errors\n        type: and\n        and:\n          and_sub_policy:\n            - { name: e, type: status_code, status_code: { status_codes: [ERROR] } }\n            - { name: l, type: latency, latency: { threshold_ms: 100 } }";
    let spans = vec![
        SpanSpec {
            error: true,
            ..spec(1)
        },
        SpanSpec {
            millis: 200,
            ..spec(2)
        },
        SpanSpec {
            error: true,
            millis: 200,
            ..spec(3)
        },
    ];
    assert_eq!(run(and, spans), vec![3]);
}

#[test]
fn rate_limiting_and_composite_count_spans_per_second_of_the_clock() {
    let rate = "      - { name: r, type: rate_limiting, rate_limiting: { spans_per_second: 3 } }";
    // Traces of 2 spans: the first fits, the second would make 4.
    let spans = vec![spec(1), spec(1), spec(2), spec(2), spec(3)];
    assert_eq!(run(rate, spans), vec![1, 3]);
    // Composite: errors get 50 % of 4 spans/s, everything else 25 %.
    let composite = "      - name: c\n        type: composite\n        composite:\n          max_total_spans_per_second: 4\n          policy_order: [errors, rest]\n          composite_sub_policy:\n            - { name: errors, type: status_code, status_code: { status_codes: [ERROR] } }\n            - { name: rest, type: always_sample }\n          rate_allocation:\n            - { policy: errors, percent: 50 }\n            - { policy: rest, percent: 25 }";
    let spans = vec![
        SpanSpec {
            error: true,
            ..spec(1)
        },
        SpanSpec {
            error: true,
            ..spec(2)
        },
        SpanSpec {
            error: true,
            ..spec(3)
        },
        spec(4),
        spec(5),
    ];
    assert_eq!(run(composite, spans), vec![1, 2, 4]);
}

#[test]
fn probabilistic_keeps_about_its_share_by_trace_id() {
    let policies =
        "      - { name: p, type: probabilistic, probabilistic: { sampling_percentage: 20 } }";
    let kept = run(policies, (0..5000).map(spec).collect()).len();
    // Binomial(5000, 0.2): sigma 28; 4 sigma.
    assert!((888..=1112).contains(&kept), "{kept}");
}

#[test]
fn num_traces_bounds_memory_by_evicting_the_oldest_and_counting_it() {
    let mut p = TailSampling::new(
        &config(
            "      - { name: all, type: always_sample }",
            "    num_traces: 100\n",
        )
        .unwrap(),
    );
    let mut out = Vec::new();
    for n in 0..1000 {
        p.process(
            request(vec![spec(n)]),
            t0() + Duration::from_millis(n.into()),
            &mut out,
        );
        assert!(p.held() <= 100);
    }
    assert_eq!(p.counters.evicted.get(), 900);
    assert_eq!(p.counters.held.get(), 100);
    p.flush(t0() + Duration::from_secs(2), &mut out);
    assert_eq!(kept(&out), (900..1000).collect::<Vec<_>>());
    assert_eq!(p.counters.sampled.get(), 100);
}

#[test]
fn late_spans_follow_the_decision_and_replay_decides_in_event_time() {
    let mut p = TailSampling::new(
        &config(
            "      - { name: e, type: status_code, status_code: { status_codes: [ERROR] } }",
            "",
        )
        .unwrap(),
    );
    let mut out = Vec::new();
    // Event time a year ago: decisions follow the times passed in.
    let past = t0() - Duration::from_secs(365 * 86_400);
    p.process(
        request(vec![
            SpanSpec {
                error: true,
                ..spec(1)
            },
            spec(2),
        ]),
        past,
        &mut out,
    );
    p.tick(past + Duration::from_secs(1), &mut out);
    assert_eq!(kept(&out), vec![1]);
    out.clear();
    p.process(
        request(vec![spec(1), spec(2)]),
        past + Duration::from_secs(2),
        &mut out,
    );
    assert_eq!(
        kept(&out),
        vec![1],
        "a late span of a kept trace passes at once"
    );
    assert_eq!(p.counters.late.get(), 2);
    assert_eq!(p.counters.not_sampled.get(), 1);
}

#[test]
fn config_errors_name_the_policy_and_what_was_expected() {
    let e = config(
        "      - { name: x, type: ottl_condition, ottl_condition: {} }",
        "",
    )
    .unwrap_err();
    assert!(
        e[0].contains("processors.tail_sampling.policies[0].type"),
        "{e:?}"
    );
    assert!(
        e[0].contains("`ottl_condition` policy is not supported by sidewatch"),
        "{e:?}"
    );
    let e = config("      - { name: x, type: latency, latncy: {} }", "").unwrap_err();
    assert!(e[0].contains("unknown key `latncy`"), "{e:?}");
    let e = config(
        "      - { name: x, type: status_code, status_code: { status_codes: [FAILED] } }",
        "",
    )
    .unwrap_err();
    assert!(
        e[0].contains("policies[0].status_code.status_codes[0]")
            && e[0].contains("expected OK, ERROR or UNSET"),
        "{e:?}"
    );
    let e = config(
        "      - { name: x, type: numeric_attribute, numeric_attribute: { key: k } }",
        "",
    )
    .unwrap_err();
    assert!(e[0].contains("set min_value, max_value or both"), "{e:?}");
    let e = config(
        "      - { name: x, type: always_sample }\n      - { name: x, type: always_sample }",
        "",
    )
    .unwrap_err();
    assert!(e[0].contains("two policies are named `x`"), "{e:?}");
    let e = config("      - name: c\n        type: composite\n        composite: { max_total_spans_per_second: 1, policy_order: [nope], composite_sub_policy: [{ name: a, type: always_sample }] }", "").unwrap_err();
    assert!(
        e[0].contains("`nope` is not one of composite_sub_policy"),
        "{e:?}"
    );
}
