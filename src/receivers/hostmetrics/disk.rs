//! `disk` scraper: bytes, operations and busy time per block device, from
//! /proc/diskstats (sectors there are always 512 bytes).

use serde::Deserialize;

use super::builder::{MetricsBuilder, Number, string_attribute};
use super::filter::NameFilter;
use super::procfs;
use super::{Scraper, read};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    /// Device names; loop and ram devices are left out by default.
    #[serde(default = "default_devices")]
    pub devices: NameFilter,
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            devices: default_devices(),
        }
    }
}

fn default_devices() -> NameFilter {
    NameFilter {
        include: Vec::new(),
        exclude: vec![regex::Regex::new("^(?:loop\\d+|ram\\d+)$").expect("valid pattern")],
    }
}

pub struct DiskScraper {
    pub config: DiskConfig,
}

impl Scraper for DiskScraper {
    fn scrape(&mut self, out: &mut MetricsBuilder) -> Result<(), String> {
        let stats = procfs::disk_stats(&read("/proc/diskstats")?);
        let (mut io, mut operations, mut io_time, mut operation_time) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (device, c) in stats.iter().filter(|(d, _)| self.config.devices.keeps(d)) {
            let with = |direction: &str| {
                vec![
                    string_attribute("system.device", device.clone()),
                    string_attribute("disk.io.direction", direction),
                ]
            };
            io.push((Number::from(c.read_sectors * 512), with("read")));
            io.push((Number::from(c.write_sectors * 512), with("write")));
            operations.push((Number::from(c.reads), with("read")));
            operations.push((Number::from(c.writes), with("write")));
            operation_time.push((Number::Double(c.read_millis as f64 / 1000.0), with("read")));
            operation_time.push((
                Number::Double(c.write_millis as f64 / 1000.0),
                with("write"),
            ));
            io_time.push((
                Number::Double(c.io_millis as f64 / 1000.0),
                vec![string_attribute("system.device", device.clone())],
            ));
        }
        out.sum("system.disk.io", "By", "Bytes read and written.", true, io);
        out.sum(
            "system.disk.operations",
            "{operation}",
            "Reads and writes completed.",
            true,
            operations,
        );
        out.sum(
            "system.disk.io_time",
            "s",
            "Time the device had I/O in flight.",
            true,
            io_time,
        );
        out.sum(
            "system.disk.operation_time",
            "s",
            "Time spent in reads and writes.",
            true,
            operation_time,
        );
        Ok(())
    }
}
