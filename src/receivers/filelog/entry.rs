//! One log entry on its way from a file to a log record: what the
//! operators read and change, and how entries become one OTLP batch
//! (one `ResourceLogs` per distinct set of resource attributes).

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    pub body: Option<AnyValue>,
    pub attributes: Vec<KeyValue>,
    pub resource: Vec<KeyValue>,
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
    pub severity_number: i32,
    pub severity_text: String,
}

impl Entry {
    fn into_record(self) -> (Vec<KeyValue>, LogRecord) {
        (
            self.resource,
            LogRecord {
                time_unix_nano: self.time_unix_nano,
                observed_time_unix_nano: self.observed_time_unix_nano,
                severity_number: self.severity_number,
                severity_text: self.severity_text,
                body: self.body,
                attributes: self.attributes,
                ..Default::default()
            },
        )
    }
}

/// Entries in order as one logs request; entries with equal resource
/// attributes share a `ResourceLogs`, keeping their relative order.
pub fn to_request(entries: Vec<Entry>) -> ExportLogsServiceRequest {
    let mut resource_logs: Vec<ResourceLogs> = Vec::new();
    for entry in entries {
        let (resource, record) = entry.into_record();
        let at = resource_logs.iter().position(|r| {
            r.resource
                .as_ref()
                .map(|res| res.attributes.as_slice())
                .unwrap_or_default()
                == resource.as_slice()
        });
        let at = at.unwrap_or_else(|| {
            resource_logs.push(ResourceLogs {
                resource: (!resource.is_empty()).then(|| Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "sidewatch/filelog".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            });
            resource_logs.len() - 1
        });
        resource_logs[at].scope_logs[0].log_records.push(record);
    }
    ExportLogsServiceRequest { resource_logs }
}
