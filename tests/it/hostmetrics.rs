//! hostmetrics against the kernel's own numbers, each within a stated
//! tolerance: memory vs /proc/meminfo, filesystem vs df(1), network vs
//! /proc/net/dev, process RSS vs /proc/<pid>/status, and a busy child
//! process reads close to one core.

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{NumberDataPoint, number_data_point};
use sidewatch::receivers::hostmetrics::{HostMetricsConfig, HostScrapers};

fn scrapers(yaml: &str) -> HostScrapers {
    let config: HostMetricsConfig = yaml_serde::from_str(yaml).unwrap();
    HostScrapers::new(&config.scrapers)
}

fn text(kv: &[opentelemetry_proto::tonic::common::v1::KeyValue], key: &str) -> Option<String> {
    kv.iter()
        .find(|a| a.key == key)
        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            Value::IntValue(i) => Some(i.to_string()),
            _ => None,
        })
}

/// The value of metric `name` whose point and resource attributes include
/// every (key, value) in `wanted`.
fn value(
    request: &ExportMetricsServiceRequest,
    name: &str,
    wanted: &[(&str, &str)],
) -> Option<f64> {
    for resource in &request.resource_metrics {
        let resource_attrs = resource
            .resource
            .as_ref()
            .map(|r| r.attributes.clone())
            .unwrap_or_default();
        for metric in resource
            .scope_metrics
            .iter()
            .flat_map(|s| &s.metrics)
            .filter(|m| m.name == name)
        {
            let points: &[NumberDataPoint] = match &metric.data {
                Some(Data::Gauge(g)) => &g.data_points,
                Some(Data::Sum(s)) => &s.data_points,
                _ => continue,
            };
            for point in points {
                let matches = wanted.iter().all(|(k, v)| {
                    text(&point.attributes, k)
                        .or_else(|| text(&resource_attrs, k))
                        .as_deref()
                        == Some(*v)
                });
                if matches {
                    return Some(match point.value {
                        Some(number_data_point::Value::AsDouble(d)) => d,
                        Some(number_data_point::Value::AsInt(i)) => i as f64,
                        None => continue,
                    });
                }
            }
        }
    }
    None
}

fn meminfo(key: &str) -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap()
        * 1024.0
}

#[test]
fn memory_matches_proc_meminfo() {
    let request = scrapers("scrapers: [memory]").scrape(SystemTime::now());
    assert_eq!(
        value(&request, "system.memory.limit", &[]),
        Some(meminfo("MemTotal")),
        "exact"
    );
    // Free memory moves between two reads: within 5 % of total.
    let free = value(
        &request,
        "system.memory.usage",
        &[("system.memory.state", "free")],
    )
    .unwrap();
    assert!(
        (free - meminfo("MemFree")).abs() < 0.05 * meminfo("MemTotal"),
        "free {free}"
    );
    let states: f64 = ["used", "free", "buffered", "cached", "slab_reclaimable"]
        .iter()
        .map(|s| {
            value(
                &request,
                "system.memory.usage",
                &[("system.memory.state", s)],
            )
            .unwrap()
        })
        .sum();
    assert_eq!(states, meminfo("MemTotal"), "states add up to the total");
    let utilization = value(
        &request,
        "system.memory.utilization",
        &[("system.memory.state", "used")],
    )
    .unwrap();
    assert!((0.0..=1.0).contains(&utilization));
}

#[test]
fn root_filesystem_matches_df() {
    let request = scrapers("scrapers: [filesystem]").scrape(SystemTime::now());
    let df = Command::new("df")
        .args(["-B1", "--output=used,avail", "/"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&df.stdout);
    let numbers: Vec<f64> = text
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let (df_used, df_available) = (numbers[0], numbers[1]);
    let at = |state: &str| {
        value(
            &request,
            "system.filesystem.usage",
            &[
                ("system.filesystem.mountpoint", "/"),
                ("system.filesystem.state", state),
            ],
        )
        .unwrap()
    };
    // Other processes write meanwhile: 1 % of the filesystem, or 64 MiB.
    let tolerance = (0.01 * (df_used + df_available)).max(64.0 * 1024.0 * 1024.0);
    assert!(
        (at("used") - df_used).abs() < tolerance,
        "used {} vs df {df_used}",
        at("used")
    );
    assert!(
        (at("free") - df_available).abs() < tolerance,
        "free {} vs df {df_available}",
        at("free")
    );
    let utilization = value(
        &request,
        "system.filesystem.utilization",
        &[("system.filesystem.mountpoint", "/")],
    )
    .unwrap();
    assert!((utilization - df_used / (df_used + df_available)).abs() < 0.01);
    assert!(
        value(
            &request,
            "system.filesystem.usage",
            &[("system.filesystem.mountpoint", "/proc")]
        )
        .is_none(),
        "pseudo filesystems are left out"
    );
}

fn loopback_received_bytes() -> f64 {
    let text = std::fs::read_to_string("/proc/net/dev").unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("lo:"))
        .unwrap();
    line.split(':')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn network_counters_match_proc_net_dev() {
    let mut scrapers = scrapers("scrapers: { network: { interfaces: { include: [lo] } } }");
    let before = loopback_received_bytes();
    let request = scrapers.scrape(SystemTime::now());
    let after = loopback_received_bytes();
    let scraped = value(
        &request,
        "system.network.io",
        &[
            ("network.interface.name", "lo"),
            ("network.io.direction", "receive"),
        ],
    )
    .unwrap();
    assert!(
        before <= scraped && scraped <= after,
        "{before} <= {scraped} <= {after}"
    );
    assert!(
        value(
            &request,
            "system.network.io",
            &[("network.interface.name", "eth0")]
        )
        .is_none(),
        "include list honoured"
    );
    // Connection tracking sees a socket we hold open in LISTEN.
    let _listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let request = scrapers.scrape(SystemTime::now());
    let listening = value(
        &request,
        "system.network.connections",
        &[
            ("network.transport", "tcp"),
            ("network.connection.state", "LISTEN"),
        ],
    )
    .unwrap();
    assert!(listening >= 1.0);
}

/// The hostmetrics receiver of the embedded default pipeline.
fn default_pipeline_scrapers() -> HostScrapers {
    let loaded = sidewatch::plan::load_str(
        sidewatch::config::DEFAULT_PIPELINE,
        "embedded default pipeline",
    )
    .unwrap();
    let config = loaded
        .plan
        .receivers
        .values()
        .find_map(|r| {
            sidewatch::components::receiver_as::<
                    sidewatch::receivers::hostmetrics::HostMetricsConfig,
                >(r)
                .cloned()
        })
        .expect("the default pipeline has a hostmetrics receiver");
    HostScrapers::new(&config.scrapers)
}

#[test]
fn connection_tracking_is_on_unless_switched_off() {
    let _listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listening = |mut scrapers: HostScrapers| {
        value(
            &scrapers.scrape(SystemTime::now()),
            "system.network.connections",
            &[
                ("network.transport", "tcp"),
                ("network.connection.state", "LISTEN"),
            ],
        )
    };
    for (how, scrapers) in [
        ("the default pipeline", default_pipeline_scrapers()),
        ("no scrapers listed", scrapers("collection_interval: 10s")),
        ("scrapers: [network]", scrapers("scrapers: [network]")),
        ("network: {}", scrapers("scrapers: { network: {} }")),
        (
            "network with only interfaces set",
            scrapers("scrapers: { network: { interfaces: { include: [lo] } } }"),
        ),
    ] {
        let count = listening(scrapers);
        assert!(
            count.is_some_and(|c| c >= 1.0),
            "{how}: expected system.network.connections counting our LISTEN socket, got {count:?}"
        );
    }
    assert_eq!(
        listening(scrapers("scrapers: { network: { connections: false } }")),
        None,
        "connections: false switches it off"
    );
}

#[test]
fn own_process_rss_matches_proc_status() {
    let request = scrapers("scrapers: [process]").scrape(SystemTime::now());
    let pid = std::process::id().to_string();
    let rss = value(&request, "process.memory.usage", &[("process.pid", &pid)])
        .expect("sidewatch always reports itself");
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let vm_rss: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap()
        * 1024.0;
    // Tests in other threads allocate meanwhile: within 10 % or 8 MiB.
    assert!(
        (rss - vm_rss).abs() < (0.1 * vm_rss).max(8.0 * 1024.0 * 1024.0),
        "{rss} vs {vm_rss}"
    );
    assert!(value(&request, "process.thread.count", &[("process.pid", &pid)]).unwrap() >= 1.0);
    assert!(
        value(
            &request,
            "process.open_file_descriptor.count",
            &[("process.pid", &pid)]
        )
        .unwrap()
            >= 3.0
    );
}

/// CPU seconds the kernel has charged to `pid` (utime + stime).
fn kernel_cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// A busy-looping child: our utilization matches what the kernel charged
/// it over the same interval (how close to one core it gets depends on
/// what else the 2-core machine runs, so that is only a sanity floor).
#[test]
fn a_busy_child_process_reads_close_to_one_core() {
    let mut child = Command::new("yes").stdout(Stdio::null()).spawn().unwrap();
    let pid = child.id().to_string();
    let mut scrapers = scrapers("scrapers: { process: { names: [yes] } }");
    std::thread::sleep(Duration::from_millis(300));
    let (start, kernel_start) = (std::time::Instant::now(), kernel_cpu_seconds(&pid));
    scrapers.scrape(SystemTime::now());
    std::thread::sleep(Duration::from_secs(2));
    let request = scrapers.scrape(SystemTime::now());
    let kernel = (kernel_cpu_seconds(&pid) - kernel_start) / start.elapsed().as_secs_f64();
    child.kill().unwrap();
    child.wait().unwrap();
    let cores = value(
        &request,
        "process.cpu.utilization",
        &[("process.pid", &pid)],
    )
    .expect("the busy child is reported");
    assert!(kernel > 0.05, "the child barely ran ({kernel} cores)");
    assert!(
        (cores - kernel).abs() <= 0.1,
        "busy child: we read {cores} cores, the kernel charged {kernel}"
    );
}

#[test]
fn the_first_cpu_scrape_already_has_utilization() {
    let mut scrapers = scrapers("scrapers: [cpu]");
    std::thread::sleep(Duration::from_millis(200));
    let request = scrapers.scrape(SystemTime::now());
    let shares: f64 = [
        "user",
        "nice",
        "system",
        "idle",
        "iowait",
        "interrupt",
        "softirq",
        "steal",
    ]
    .iter()
    .map(|mode| {
        value(&request, "system.cpu.utilization", &[("cpu.mode", mode)])
            .expect("utilization on the first scrape")
    })
    .sum();
    assert!(
        (shares - 1.0).abs() < 1e-9,
        "modes add up to 1, got {shares}"
    );
}
