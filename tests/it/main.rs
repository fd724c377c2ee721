//! Black-box tests: sidewatch with real OTLP clients (the OpenTelemetry
//! SDK, raw HTTP and gRPC) and a real OTLP backend, all on 127.0.0.1.

mod alert_delivery;
mod alert_events;
mod alerting;
mod alerts_api;
mod anomaly;
mod anomaly_incidents;
mod auth;
mod backend;
mod backpressure;
mod bad_input;
mod bombs;
mod cardinality;
mod certs;
mod checks_alerts;
mod checks_dns;
mod checks_http;
mod checks_icmp;
mod checks_scheduling;
mod checks_support;
mod checks_tcp;
mod checks_tls;
mod compiled_builds;
mod config_errors;
mod config_unit_tests;
mod connection_deadlines;
mod cors;
mod count;
mod dashboard;
mod data_model;
mod database_alerts;
mod early_answers;
mod email;
mod endpoint_errors;
mod exec;
mod external;
mod filelog;
mod fuzz;
mod grpc_compression;
mod harness;
mod hostmetrics;
mod id_lengths;
mod influxdb;
mod kafka;
mod layers;
mod loadbalancing;
mod logpatterns;
mod logs;
mod logs_pipeline;
mod memory_limit;
mod mysql;
mod otelcol;
mod otlphttp_chain;
mod ottl;
mod own_metrics_sdk;
mod percentiles;
mod persistent_queue;
mod postgresql;
mod postgresql_replication;
mod postgresql_tls;
mod probabilistic_sampler;
mod prometheus;
mod prometheus_receiver;
mod queue_batching;
mod rapid_reset;
mod raw_grpc;
mod red;
mod redis;
mod remote_write;
mod replay;
mod retry;
mod sdk_end_to_end;
mod shutdown;
mod slow_bodies;
mod spanmetrics;
mod store;
mod store_compat;
mod tail_sampling;
mod telemetry;
mod tls;
mod webhook_sink;
mod zipkin;

/// reqwest (built with `rustls-no-provider`, as sidewatch is) needs a
/// process-wide rustls provider before any client is built, TLS or not;
/// tests build clients before any collector starts, so install it first.
#[used]
#[unsafe(link_section = ".init_array")]
static INSTALL_TLS_PROVIDER: extern "C" fn() = {
    extern "C" fn install() {
        sidewatch::tls::install_provider();
    }
    install
};
