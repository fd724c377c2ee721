//! `memory` and `paging` scrapers, from /proc/meminfo, /proc/swaps and
//! /proc/vmstat.
//!
//! States follow the Collector's hostmetrics receiver: used = total - free
//! - buffers - cached - slab reclaimable, so the states add up to total.

use super::builder::{MetricsBuilder, Number, string_attribute};
use super::procfs;
use super::{Scraper, read};

pub struct MemoryScraper;

impl Scraper for MemoryScraper {
    fn scrape(&mut self, out: &mut MetricsBuilder) -> Result<(), String> {
        let info = procfs::key_values(&read("/proc/meminfo")?);
        let get = |key: &str| info.get(key).copied().unwrap_or(0);
        let total = get("MemTotal");
        let free = get("MemFree");
        let buffers = get("Buffers");
        let cached = get("Cached");
        let reclaimable = get("SReclaimable");
        let unreclaimable = get("SUnreclaim");
        let used = total.saturating_sub(free + buffers + cached + reclaimable);
        let states = [
            ("used", used),
            ("free", free),
            ("buffered", buffers),
            ("cached", cached),
            ("slab_reclaimable", reclaimable),
            ("slab_unreclaimable", unreclaimable),
        ];
        let state = |s: &str| vec![string_attribute("system.memory.state", s)];
        out.sum(
            "system.memory.usage",
            "By",
            "Bytes of memory in each state.",
            false,
            states
                .iter()
                .map(|(s, v)| (Number::from(*v), state(s)))
                .collect(),
        );
        if total > 0 {
            out.gauge(
                "system.memory.utilization",
                "1",
                "Share of memory in each state (0 to 1).",
                states
                    .iter()
                    .map(|(s, v)| (Number::Double(*v as f64 / total as f64), state(s)))
                    .collect(),
            );
        }
        out.sum(
            "system.memory.limit",
            "By",
            "Total usable memory.",
            false,
            vec![(Number::from(total), vec![])],
        );
        out.sum(
            "system.linux.memory.available",
            "By",
            "Memory available for new work without swapping (MemAvailable).",
            false,
            vec![(Number::from(get("MemAvailable")), vec![])],
        );

        Ok(())
    }
}

/// `paging`, as the Collector splits it from `memory`: swap space per
/// device (/proc/swaps; the /proc/meminfo totals when there is none), page
/// faults and swap operations (/proc/vmstat).
pub struct PagingScraper;

/// (device, used bytes, free bytes) per line of /proc/swaps, whose sizes
/// are in KiB.
fn swap_devices(text: &str) -> Vec<(String, u64, u64)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let size: u64 = fields.get(2)?.parse().ok()?;
            let used: u64 = fields.get(3)?.parse().ok()?;
            Some((
                fields[0].to_string(),
                used * 1024,
                size.saturating_sub(used) * 1024,
            ))
        })
        .collect()
}

impl Scraper for PagingScraper {
    fn scrape(&mut self, out: &mut MetricsBuilder) -> Result<(), String> {
        let devices = read("/proc/swaps")
            .map(|t| swap_devices(&t))
            .unwrap_or_default();
        let mut points = Vec::new();
        for (device, used, free) in &devices {
            for (state, value) in [("used", used), ("free", free)] {
                points.push((
                    Number::from(*value),
                    vec![
                        string_attribute("device", device.clone()),
                        string_attribute("system.paging.state", state),
                    ],
                ));
            }
        }
        if devices.is_empty() {
            let info = procfs::key_values(&read("/proc/meminfo")?);
            let get = |key: &str| info.get(key).copied().unwrap_or(0);
            let swap_total = get("SwapTotal");
            let swap_free = get("SwapFree");
            points = vec![
                (
                    Number::from(swap_total.saturating_sub(swap_free)),
                    vec![string_attribute("system.paging.state", "used")],
                ),
                (
                    Number::from(swap_free),
                    vec![string_attribute("system.paging.state", "free")],
                ),
            ];
        }
        out.sum(
            "system.paging.usage",
            "By",
            "Swap space in use and free.",
            false,
            points,
        );
        if let Ok(vmstat) = read("/proc/vmstat") {
            let counters: std::collections::BTreeMap<&str, u64> = vmstat
                .lines()
                .filter_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    Some((k, v.trim().parse().ok()?))
                })
                .collect();
            let count = |k: &str| counters.get(k).copied().unwrap_or(0);
            out.sum(
                "system.paging.faults",
                "{fault}",
                "Page faults, minor and major.",
                true,
                vec![
                    (
                        Number::from(count("pgfault").saturating_sub(count("pgmajfault"))),
                        vec![string_attribute("system.paging.type", "minor")],
                    ),
                    (
                        Number::from(count("pgmajfault")),
                        vec![string_attribute("system.paging.type", "major")],
                    ),
                ],
            );
            out.sum(
                "system.paging.operations",
                "{operation}",
                "Pages swapped in and out.",
                true,
                vec![
                    (
                        Number::from(count("pswpin")),
                        vec![string_attribute("system.paging.direction", "in")],
                    ),
                    (
                        Number::from(count("pswpout")),
                        vec![string_attribute("system.paging.direction", "out")],
                    ),
                ],
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_swap_devices_in_bytes() {
        let text = "Filename\tType\tSize\tUsed\tPriority\n/dev/sda2 partition 1000 250 -2\n/swapfile file 10 0 -3\n";
        assert_eq!(
            swap_devices(text),
            vec![
                ("/dev/sda2".to_string(), 250 * 1024, 750 * 1024),
                ("/swapfile".to_string(), 0, 10 * 1024),
            ]
        );
    }
}
