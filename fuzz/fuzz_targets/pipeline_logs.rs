//! Arbitrary decoded log requests through every logs processor (batch):
//! nothing panics, and the wire scanner judges log-record ids as the
//! decoded check does (issue 13, items 5, 6).
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
exporters:
  debug: {}
service:
  pipelines:
    logs: { receivers: [otlp], processors: [batch], exporters: [debug] }
"#;

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let mut batches = Vec::new();
    let mut steps = Vec::new();
    for _ in 0..u.int_in_range(1..=4)? {
        let request = structured::logs(&mut u)?;
        let scanned = scan(schema_of(Signal::Logs), &request.encode_to_vec()).is_ok();
        assert_eq!(
            scanned,
            request.check_ids().is_ok(),
            "the scanner and the decoded id check disagree"
        );
        batches.push(Batch::Logs(request.into()));
        steps.push(u.int_in_range(0..=30_000u16)?);
    }
    let mut components = structured::components(CONFIG);
    structured::drive(&mut components, &batches, &steps);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
