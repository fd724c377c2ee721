//! Arbitrary decoded trace requests (ids of any length, any times and
//! kinds) through every traces processor and connector (red, batch), and
//! the receivers' id check: nothing panics, and the wire scanner judges
//! the encoded request as the decoded check does (issue 13, items 5, 6).
#![no_main]

mod structured;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use sidewatch::datamodel::ids::CheckIds;
use sidewatch::signal::{Batch, Signal};
use sidewatch::signal::schema_of;
use sidewatch::wire::scan::scan;

const CONFIG: &str = r#"
receivers:
  otlp: { protocols: { grpc: { endpoint: 127.0.0.1:0 } } }
processors:
  batch: { send_batch_size: 3, send_batch_max_size: 5, timeout: 1s }
connectors:
  red:
    dimensions: [service.name, http.route, http.response.status_code]
    windows: [1m, 5m]
    sub_windows: 3
    emit_interval: 1s
    max_series: 8
exporters:
  debug: {}
service:
  pipelines:
    traces: { receivers: [otlp], processors: [batch], exporters: [red] }
    metrics: { receivers: [red], exporters: [debug] }
"#;

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let mut batches = Vec::new();
    let mut steps = Vec::new();
    for _ in 0..u.int_in_range(1..=4)? {
        let request = structured::traces(&mut u)?;
        let scanned = scan(schema_of(Signal::Traces), &request.encode_to_vec()).is_ok();
        assert_eq!(
            scanned,
            request.check_ids().is_ok(),
            "the scanner and the decoded id check disagree"
        );
        batches.push(Batch::Traces(request.into()));
        steps.push(u.int_in_range(0..=30_000u16)?);
    }
    let mut components = structured::components(CONFIG);
    structured::drive(&mut components, &batches, &steps);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
