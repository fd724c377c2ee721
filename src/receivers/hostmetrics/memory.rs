//! `memory` and `paging` scrapers, from /proc/meminfo and /proc/vmstat.
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

        let swap_total = get("SwapTotal");
        let swap_free = get("SwapFree");
        out.sum(
            "system.paging.usage",
            "By",
            "Swap space in use and free.",
            false,
            vec![
                (
                    Number::from(swap_total.saturating_sub(swap_free)),
                    vec![string_attribute("system.paging.state", "used")],
                ),
                (
                    Number::from(swap_free),
                    vec![string_attribute("system.paging.state", "free")],
                ),
            ],
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
