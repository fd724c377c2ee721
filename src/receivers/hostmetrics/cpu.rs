//! `cpu` and `load` scrapers: CPU time and utilization by mode (from
//! /proc/stat), frequency (from /proc/cpuinfo), and load averages.
//!
//! Utilization is the share of ticks each mode took between two readings,
//! so the scraper reads once when it is built: the first scrape already has
//! a baseline and reports a real figure.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::builder::{MetricsBuilder, Number, int_attribute, string_attribute};
use super::procfs::{self, CpuTimes};
use super::{Scraper, read};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuConfig {
    /// Also report each logical core, not just the whole machine.
    #[serde(default)]
    pub per_cpu: bool,
}

pub struct CpuScraper {
    config: CpuConfig,
    ticks_per_second: f64,
    previous: BTreeMap<Option<u32>, CpuTimes>,
}

impl CpuScraper {
    pub fn new(config: CpuConfig) -> Self {
        let previous = read("/proc/stat")
            .map(|stat| procfs::cpu_times(&stat).into_iter().collect())
            .unwrap_or_default();
        CpuScraper {
            config,
            ticks_per_second: procfs::clock_ticks_per_second(),
            previous,
        }
    }
}

impl Scraper for CpuScraper {
    fn scrape(&mut self, out: &mut MetricsBuilder) -> Result<(), String> {
        let stat = read("/proc/stat")?;
        let mut time = Vec::new();
        let mut utilization = Vec::new();
        for (core, times) in procfs::cpu_times(&stat) {
            // The whole machine, or each core: never both, so sums stay sums.
            if core.is_some() != self.config.per_cpu {
                continue;
            }
            let core_attribute = core.map(|c| int_attribute("cpu.logical_number", c as i64));
            let attributes = |mode: &str| {
                let mut attributes = vec![string_attribute("cpu.mode", mode)];
                attributes.extend(core_attribute.clone());
                attributes
            };
            for (mode, ticks) in times.modes() {
                time.push((
                    Number::Double(ticks as f64 / self.ticks_per_second),
                    attributes(mode),
                ));
            }
            if let Some(before) = self.previous.get(&core) {
                let elapsed = times.total().saturating_sub(before.total());
                if elapsed > 0 {
                    for ((mode, now), (_, then)) in times.modes().iter().zip(before.modes()) {
                        let share = now.saturating_sub(then) as f64 / elapsed as f64;
                        utilization.push((Number::Double(share), attributes(mode)));
                    }
                }
            }
            self.previous.insert(core, times);
        }
        out.sum(
            "system.cpu.time",
            "s",
            "Seconds each logical CPU spent in each mode.",
            true,
            time,
        );
        out.gauge(
            "system.cpu.utilization",
            "1",
            "Share of CPU time spent in each mode since the previous scrape (0 to 1).",
            utilization,
        );
        if let Ok(info) = read("/proc/cpuinfo") {
            let frequencies: Vec<_> = info
                .lines()
                .filter(|l| l.starts_with("cpu MHz"))
                .filter_map(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
                .enumerate()
                .map(|(core, mhz)| {
                    (
                        Number::Double(mhz * 1e6),
                        vec![int_attribute("cpu.logical_number", core as i64)],
                    )
                })
                .collect();
            out.gauge(
                "system.cpu.frequency",
                "Hz",
                "Current frequency of each logical CPU.",
                frequencies,
            );
        }
        out.gauge(
            "system.cpu.logical.count",
            "{cpu}",
            "Logical CPUs online.",
            vec![(
                Number::from(self.previous.keys().filter(|k| k.is_some()).count() as u64),
                vec![],
            )],
        );
        Ok(())
    }
}

pub struct LoadScraper;

impl Scraper for LoadScraper {
    fn scrape(&mut self, out: &mut MetricsBuilder) -> Result<(), String> {
        let load = sysinfo::System::load_average().map_err(|e| format!("load average: {e}"))?;
        for (name, value) in [
            ("system.cpu.load_average.1m", load.one),
            ("system.cpu.load_average.5m", load.five),
            ("system.cpu.load_average.15m", load.fifteen),
        ] {
            out.gauge(
                name,
                "{thread}",
                "Average runnable threads over the window.",
                vec![(Number::Double(value), vec![])],
            );
        }
        Ok(())
    }
}
