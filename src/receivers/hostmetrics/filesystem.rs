//! `filesystem` scraper: space and inodes per mount, from statvfs(3) of
//! each mount in /proc/self/mounts. Pseudo filesystems (proc, sysfs,
//! cgroup, ...) are left out by default; lists can include or exclude mount
//! points and types.
//!
//! Used, free and reserved follow df(1): free is what unprivileged users
//! may still write, reserved is kept for root, and utilization is
//! used / (used + free), df's Use%.

use std::collections::BTreeSet;
use std::ffi::CString;

use serde::Deserialize;

use super::builder::{MetricsBuilder, Number, string_attribute};
use super::filter::NameFilter;
use super::procfs::{self, Mount};
use super::{Scraper, read};

const PSEUDO_FILESYSTEMS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "proc",
    "procfs",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "sysfs",
    "tracefs",
    "squashfs",
];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemConfig {
    #[serde(default)]
    pub mount_points: NameFilter,
    /// Filesystem types; an empty `include` keeps every non-pseudo type.
    #[serde(default)]
    pub fs_types: NameFilter,
    /// Report pseudo filesystems too.
    #[serde(default)]
    pub include_virtual_filesystems: bool,
}

/// Space and inodes of one filesystem, in bytes and counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub used: u64,
    pub free: u64,
    pub reserved: u64,
    pub inodes_used: u64,
    pub inodes_free: u64,
}

impl Usage {
    pub fn utilization(&self) -> f64 {
        let denominator = self.used + self.free;
        if denominator == 0 {
            0.0
        } else {
            self.used as f64 / denominator as f64
        }
    }
}

pub fn statvfs(path: &str) -> Option<Usage> {
    let path = CString::new(path).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `stat` a valid out-pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    let unit = stat.f_frsize as u64;
    let blocks = stat.f_blocks as u64;
    let free_all = stat.f_bfree as u64;
    let available = stat.f_bavail as u64;
    Some(Usage {
        used: blocks.saturating_sub(free_all) * unit,
        free: available * unit,
        reserved: free_all.saturating_sub(available) * unit,
        inodes_used: (stat.f_files as u64).saturating_sub(stat.f_ffree as u64),
        inodes_free: stat.f_ffree as u64,
    })
}

pub struct FilesystemScraper {
    pub config: FilesystemConfig,
}

impl FilesystemScraper {
    fn keeps(&self, mount: &Mount) -> bool {
        (self.config.include_virtual_filesystems
            || !PSEUDO_FILESYSTEMS.contains(&mount.fs_type.as_str()))
            && self.config.mount_points.keeps(&mount.mount_point)
            && self.config.fs_types.keeps(&mount.fs_type)
    }
}

impl Scraper for FilesystemScraper {
    fn scrape(&mut self, out: &mut MetricsBuilder) -> Result<(), String> {
        let mounts = procfs::mounts(&read("/proc/self/mounts")?);
        let (mut usage, mut utilization, mut inodes) = (Vec::new(), Vec::new(), Vec::new());
        let mut seen = BTreeSet::new();
        for mount in mounts.iter().filter(|m| self.keeps(m)) {
            // A mount point mounted over is listed twice; the last one is visible.
            if !seen.insert(mount.mount_point.clone()) {
                continue;
            }
            let Some(u) = statvfs(&mount.mount_point) else {
                continue;
            };
            let attributes = |state: Option<&str>| {
                let mut a = vec![
                    string_attribute("system.device", mount.device.clone()),
                    string_attribute("system.filesystem.mountpoint", mount.mount_point.clone()),
                    string_attribute("system.filesystem.type", mount.fs_type.clone()),
                    string_attribute(
                        "system.filesystem.mode",
                        if mount.read_only { "ro" } else { "rw" },
                    ),
                ];
                if let Some(state) = state {
                    a.push(string_attribute("system.filesystem.state", state));
                }
                a
            };
            usage.push((Number::from(u.used), attributes(Some("used"))));
            usage.push((Number::from(u.free), attributes(Some("free"))));
            usage.push((Number::from(u.reserved), attributes(Some("reserved"))));
            utilization.push((Number::Double(u.utilization()), attributes(None)));
            inodes.push((Number::from(u.inodes_used), attributes(Some("used"))));
            inodes.push((Number::from(u.inodes_free), attributes(Some("free"))));
        }
        out.sum(
            "system.filesystem.usage",
            "By",
            "Space used, free and reserved for root.",
            false,
            usage,
        );
        out.gauge(
            "system.filesystem.utilization",
            "1",
            "Used share of the space users can write (df's Use%).",
            utilization,
        );
        out.sum(
            "system.filesystem.inodes.usage",
            "{inode}",
            "Inodes used and free.",
            false,
            inodes,
        );
        Ok(())
    }
}
