//! `cgroup` scraper: CPU, memory and I/O of cgroup v2 groups, so sidewatch
//! running as a sidecar reports its container's figures. Its own group
//! (from /proc/self/cgroup) is always scraped; more can be configured. On
//! hosts still on cgroup v1 (or hybrid), sidewatch's own group is read
//! from the v1 memory and cpuacct controllers instead.

use serde::Deserialize;

use super::builder::{MetricsBuilder, Number, string_attribute};
use super::{procfs, read};

/// Where the v2 hierarchy is mounted: alone, or beside v1 (hybrid).
fn v2_root() -> Option<&'static str> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .find(|root| std::path::Path::new(&format!("{root}/cgroup.controllers")).exists())
}

/// This process's group in a v1 controller, like `memory`.
fn own_v1_group(controller: &str) -> Option<String> {
    let text = read("/proc/self/cgroup").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == controller)
            .then(|| path.trim().to_string())
    })
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CgroupConfig {
    /// Extra groups, as paths under /sys/fs/cgroup (e.g. `/system.slice/nginx.service`).
    #[serde(default)]
    pub paths: Vec<String>,
}

/// The v2 cgroup of this process, like `/user.slice/session.scope`.
pub fn own_cgroup() -> Option<String> {
    let text = read("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().to_string())
}

pub struct CgroupScraper {
    paths: Vec<String>,
}

impl CgroupScraper {
    pub fn new(config: CgroupConfig) -> Self {
        let mut paths: Vec<String> = own_cgroup().into_iter().collect();
        paths.extend(config.paths);
        paths.dedup();
        CgroupScraper { paths }
    }

    pub fn scrape(
        &mut self,
        now: u64,
        start: u64,
    ) -> Vec<(
        Vec<opentelemetry_proto::tonic::common::v1::KeyValue>,
        MetricsBuilder,
    )> {
        let mut resources = Vec::new();
        let Some(root) = v2_root() else {
            return self.scrape_v1(now, start).into_iter().collect();
        };
        for path in &self.paths {
            let dir = format!("{root}{}", if path == "/" { "" } else { path });
            let Ok(cpu_stat) = read(&format!("{dir}/cpu.stat")) else {
                continue;
            };
            let mut out = MetricsBuilder::new(now, start);
            let cpu = procfs::key_values(&cpu_stat.replace(' ', ": "));
            let seconds = |k: &str| cpu.get(k).map(|us| *us as f64 / 1e6);
            if let (Some(user), Some(system)) = (seconds("user_usec"), seconds("system_usec")) {
                out.sum(
                    "container.cpu.time",
                    "s",
                    "CPU seconds used by the group, by mode.",
                    true,
                    vec![
                        (
                            Number::Double(user),
                            vec![string_attribute("cpu.mode", "user")],
                        ),
                        (
                            Number::Double(system),
                            vec![string_attribute("cpu.mode", "system")],
                        ),
                    ],
                );
            }
            if let Some(current) = read(&format!("{dir}/memory.current"))
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
            {
                out.sum(
                    "container.memory.usage",
                    "By",
                    "Memory charged to the group.",
                    false,
                    vec![(Number::from(current), vec![])],
                );
            }
            // "max" means no limit: report none rather than a made-up number.
            if let Some(limit) = read(&format!("{dir}/memory.max"))
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
            {
                out.sum(
                    "container.memory.limit",
                    "By",
                    "The group's memory limit.",
                    false,
                    vec![(Number::from(limit), vec![])],
                );
            }
            if let Ok(io) = read(&format!("{dir}/io.stat")) {
                let (mut read_bytes, mut written_bytes) = (0u64, 0u64);
                for line in io.lines() {
                    for field in line.split_whitespace().skip(1) {
                        if let Some(v) = field.strip_prefix("rbytes=") {
                            read_bytes += v.parse::<u64>().unwrap_or(0);
                        } else if let Some(v) = field.strip_prefix("wbytes=") {
                            written_bytes += v.parse::<u64>().unwrap_or(0);
                        }
                    }
                }
                out.sum(
                    "container.disk.io",
                    "By",
                    "Bytes the group read and wrote.",
                    true,
                    vec![
                        (
                            Number::from(read_bytes),
                            vec![string_attribute("disk.io.direction", "read")],
                        ),
                        (
                            Number::from(written_bytes),
                            vec![string_attribute("disk.io.direction", "write")],
                        ),
                    ],
                );
            }
            resources.push((vec![string_attribute("cgroup.path", path.clone())], out));
        }
        resources
    }

    fn scrape_v1(
        &self,
        now: u64,
        start: u64,
    ) -> Option<(
        Vec<opentelemetry_proto::tonic::common::v1::KeyValue>,
        MetricsBuilder,
    )> {
        let mut out = MetricsBuilder::new(now, start);
        let memory = own_v1_group("memory")?;
        let memory_dir = format!(
            "/sys/fs/cgroup/memory{}",
            if memory == "/" { "" } else { &memory }
        );
        let number = |file: String| read(&file).ok().and_then(|t| t.trim().parse::<u64>().ok());
        if let Some(usage) = number(format!("{memory_dir}/memory.usage_in_bytes")) {
            out.sum(
                "container.memory.usage",
                "By",
                "Memory charged to the group.",
                false,
                vec![(Number::from(usage), vec![])],
            );
        }
        // v1 writes "no limit" as a page-rounded i64::MAX.
        if let Some(limit) =
            number(format!("{memory_dir}/memory.limit_in_bytes")).filter(|l| *l < (1 << 62))
        {
            out.sum(
                "container.memory.limit",
                "By",
                "The group's memory limit.",
                false,
                vec![(Number::from(limit), vec![])],
            );
        }
        if let Some(cpu) = own_v1_group("cpuacct") {
            let cpu_dir = format!(
                "/sys/fs/cgroup/cpuacct{}",
                if cpu == "/" { "" } else { &cpu }
            );
            if let (Some(user), Some(system)) = (
                number(format!("{cpu_dir}/cpuacct.usage_user")),
                number(format!("{cpu_dir}/cpuacct.usage_sys")),
            ) {
                out.sum(
                    "container.cpu.time",
                    "s",
                    "CPU seconds used by the group, by mode.",
                    true,
                    vec![
                        (
                            Number::Double(user as f64 / 1e9),
                            vec![string_attribute("cpu.mode", "user")],
                        ),
                        (
                            Number::Double(system as f64 / 1e9),
                            vec![string_attribute("cpu.mode", "system")],
                        ),
                    ],
                );
            }
        }
        Some((vec![string_attribute("cgroup.path", memory)], out))
    }
}
