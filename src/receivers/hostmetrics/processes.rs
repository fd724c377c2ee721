//! `processes` scraper (counts by status, processes created) and `process`
//! scraper (CPU, memory, descriptors and threads of chosen processes, and
//! always of sidewatch itself), from /proc.

use std::collections::{BTreeMap, HashMap};

use opentelemetry_proto::tonic::common::v1::KeyValue;
use serde::Deserialize;

use super::builder::{MetricsBuilder, Number, int_attribute, string_attribute};
use super::{Scraper, procfs, read};

pub struct ProcessesScraper;

/// Status names as the Collector reports them.
fn status_name(state: char) -> &'static str {
    match state {
        'R' => "running",
        'S' => "sleeping",
        'D' => "blocked",
        'T' | 't' => "stopped",
        'Z' => "zombies",
        'I' => "idle",
        'X' | 'x' => "dead",
        _ => "unknown",
    }
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

impl Scraper for ProcessesScraper {
    fn scrape(&mut self, out: &mut MetricsBuilder) -> Result<(), String> {
        let mut counts: BTreeMap<&str, u64> =
            ["running", "sleeping", "blocked", "stopped", "zombies"]
                .into_iter()
                .map(|s| (s, 0))
                .collect();
        for pid in pids() {
            // A process may exit between listing and reading: skip it.
            if let Some(stat) = read(&format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|t| procfs::process_stat(&t))
            {
                *counts.entry(status_name(stat.state)).or_default() += 1;
            }
        }
        out.sum(
            "system.processes.count",
            "{process}",
            "Processes by status.",
            false,
            counts
                .into_iter()
                .map(|(status, n)| {
                    (
                        Number::from(n),
                        vec![string_attribute("system.process.status", status)],
                    )
                })
                .collect(),
        );
        if let Some(created) = read("/proc/stat")
            .ok()
            .and_then(|s| procfs::stat_counter(&s, "processes"))
        {
            out.sum(
                "system.processes.created",
                "{process}",
                "Processes created since boot.",
                true,
                vec![(Number::from(created), vec![])],
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// Processes whose name (comm) or executable matches one of these
    /// whole-name regular expressions; sidewatch itself is always included.
    #[serde(default, with = "super::filter::regex_list")]
    pub names: Vec<regex::Regex>,
}

/// Per-process metrics, each process as its own resource.
pub struct ProcessScraper {
    config: ProcessConfig,
    ticks_per_second: f64,
    page_size: u64,
    own_pid: u32,
    previous_ticks: HashMap<u32, (u64, std::time::Instant)>,
}

impl ProcessScraper {
    pub fn new(config: ProcessConfig) -> Self {
        ProcessScraper {
            config,
            ticks_per_second: procfs::clock_ticks_per_second(),
            page_size: procfs::page_size(),
            own_pid: std::process::id(),
            previous_ticks: HashMap::new(),
        }
    }

    fn matches(&self, pid: u32) -> Option<(String, String)> {
        let name = read(&format!("/proc/{pid}/comm")).ok()?.trim().to_string();
        let executable = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let exe_name = executable
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let wanted = pid == self.own_pid
            || self
                .config
                .names
                .iter()
                .any(|r| r.is_match(&name) || r.is_match(&exe_name));
        wanted.then_some((name, executable))
    }

    /// One builder per matched process, with its resource attributes.
    pub fn scrape_processes(
        &mut self,
        now: u64,
        start: u64,
    ) -> Vec<(Vec<KeyValue>, MetricsBuilder)> {
        let mut resources = Vec::new();
        let candidates = if self.config.names.is_empty() {
            vec![self.own_pid]
        } else {
            pids()
        };
        let mut seen = HashMap::new();
        for pid in candidates {
            let Some((name, executable)) = self.matches(pid) else {
                continue;
            };
            let Some(stat) = read(&format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|t| procfs::process_stat(&t))
            else {
                continue;
            };
            let status =
                procfs::key_values(&read(&format!("/proc/{pid}/status")).unwrap_or_default());
            let mut out = MetricsBuilder::new(now, start);
            let ticks = stat.user_ticks + stat.system_ticks;
            out.sum(
                "process.cpu.time",
                "s",
                "CPU seconds used, by mode.",
                true,
                vec![
                    (
                        Number::Double(stat.user_ticks as f64 / self.ticks_per_second),
                        vec![string_attribute("cpu.mode", "user")],
                    ),
                    (
                        Number::Double(stat.system_ticks as f64 / self.ticks_per_second),
                        vec![string_attribute("cpu.mode", "system")],
                    ),
                ],
            );
            let at = std::time::Instant::now();
            if let Some((before, then)) = self.previous_ticks.get(&pid) {
                let seconds = at.duration_since(*then).as_secs_f64();
                if seconds > 0.0 {
                    let cores =
                        ticks.saturating_sub(*before) as f64 / self.ticks_per_second / seconds;
                    out.gauge(
                        "process.cpu.utilization",
                        "1",
                        "CPU used since the previous scrape, in cores (1 = one core busy).",
                        vec![(Number::Double(cores), vec![])],
                    );
                }
            }
            seen.insert(pid, (ticks, at));
            let rss = status
                .get("VmRSS")
                .copied()
                .unwrap_or(stat.rss_pages * self.page_size);
            out.sum(
                "process.memory.usage",
                "By",
                "Resident set size.",
                false,
                vec![(Number::from(rss), vec![])],
            );
            out.sum(
                "process.memory.virtual",
                "By",
                "Virtual memory size.",
                false,
                vec![(Number::from(stat.virtual_bytes), vec![])],
            );
            let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|d| d.count() as u64)
                .ok();
            if let Some(fds) = fds {
                out.sum(
                    "process.open_file_descriptor.count",
                    "{file_descriptor}",
                    "Open file descriptors.",
                    false,
                    vec![(Number::from(fds), vec![])],
                );
            }
            out.sum(
                "process.thread.count",
                "{thread}",
                "Threads.",
                false,
                vec![(Number::from(stat.threads), vec![])],
            );
            let resource = vec![
                int_attribute("process.pid", pid as i64),
                string_attribute("process.executable.name", name),
                string_attribute("process.executable.path", executable),
            ];
            resources.push((resource, out));
        }
        self.previous_ticks = seen;
        resources
    }
}
