//! Parsers for the /proc and /sys files the scrapers read. Each takes the
//! file's text, so tests feed them fixed samples.

use std::collections::BTreeMap;

/// Clock ticks per second for /proc times (USER_HZ).
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as u64 } else { 4096 }
}

/// `key: value kB` lines (meminfo, status) as bytes or plain numbers.
pub fn key_values(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let mut parts = rest.split_whitespace();
            let value: u64 = parts.next()?.parse().ok()?;
            let scale = if parts.next() == Some("kB") { 1024 } else { 1 };
            Some((key.trim().to_string(), value * scale))
        })
        .collect()
}

/// CPU times in ticks, in /proc/stat's column order.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTimes {
    /// Modes as the semantic conventions name them (`cpu.mode`).
    pub fn modes(&self) -> [(&'static str, u64); 8] {
        [
            ("user", self.user),
            ("nice", self.nice),
            ("system", self.system),
            ("idle", self.idle),
            ("iowait", self.iowait),
            ("interrupt", self.irq),
            ("softirq", self.softirq),
            ("steal", self.steal),
        ]
    }

    pub fn total(&self) -> u64 {
        self.modes().iter().map(|(_, v)| v).sum()
    }
}

/// `/proc/stat`: the aggregate line (`None` key) and one per core.
pub fn cpu_times(stat: &str) -> Vec<(Option<u32>, CpuTimes)> {
    stat.lines()
        .filter(|l| l.starts_with("cpu"))
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let label = fields.next()?;
            let core = match &label[3..] {
                "" => None,
                n => Some(n.parse().ok()?),
            };
            let v: Vec<u64> = fields.take(8).map(|f| f.parse().unwrap_or(0)).collect();
            let get = |i: usize| v.get(i).copied().unwrap_or(0);
            Some((
                core,
                CpuTimes {
                    user: get(0),
                    nice: get(1),
                    system: get(2),
                    idle: get(3),
                    iowait: get(4),
                    irq: get(5),
                    softirq: get(6),
                    steal: get(7),
                },
            ))
        })
        .collect()
}

/// A named counter line of /proc/stat, such as `processes`.
pub fn stat_counter(stat: &str, name: &str) -> Option<u64> {
    stat.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        (fields.next()? == name).then(|| fields.next()?.parse().ok())?
    })
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct InterfaceCounters {
    pub receive_bytes: u64,
    pub receive_packets: u64,
    pub receive_errors: u64,
    pub receive_dropped: u64,
    pub transmit_bytes: u64,
    pub transmit_packets: u64,
    pub transmit_errors: u64,
    pub transmit_dropped: u64,
}

/// `/proc/net/dev`.
pub fn network_devices(text: &str) -> Vec<(String, InterfaceCounters)> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let v: Vec<u64> = rest
                .split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            if v.len() < 16 {
                return None;
            }
            Some((
                name.trim().to_string(),
                InterfaceCounters {
                    receive_bytes: v[0],
                    receive_packets: v[1],
                    receive_errors: v[2],
                    receive_dropped: v[3],
                    transmit_bytes: v[8],
                    transmit_packets: v[9],
                    transmit_errors: v[10],
                    transmit_dropped: v[11],
                },
            ))
        })
        .collect()
}

/// TCP states by their /proc/net/tcp code, named as the Collector does.
pub fn tcp_state_name(code: u8) -> &'static str {
    match code {
        0x01 => "ESTABLISHED",
        0x02 => "SYN_SENT",
        0x03 => "SYN_RECV",
        0x04 => "FIN_WAIT_1",
        0x05 => "FIN_WAIT_2",
        0x06 => "TIME_WAIT",
        0x07 => "CLOSE",
        0x08 => "CLOSE_WAIT",
        0x09 => "LAST_ACK",
        0x0A => "LISTEN",
        0x0B => "CLOSING",
        _ => "UNKNOWN",
    }
}

/// State codes of the sockets in a /proc/net/{tcp,tcp6,udp,udp6} table.
pub fn socket_states(text: &str) -> Vec<u8> {
    text.lines()
        .skip(1)
        .filter_map(|line| u8::from_str_radix(line.split_whitespace().nth(3)?, 16).ok())
        .collect()
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiskCounters {
    pub reads: u64,
    pub read_sectors: u64,
    pub read_millis: u64,
    pub writes: u64,
    pub write_sectors: u64,
    pub write_millis: u64,
    pub io_millis: u64,
}

/// `/proc/diskstats`.
pub fn disk_stats(text: &str) -> Vec<(String, DiskCounters)> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 14 {
                return None;
            }
            let n = |i: usize| f[i].parse::<u64>().unwrap_or(0);
            Some((
                f[2].to_string(),
                DiskCounters {
                    reads: n(3),
                    read_sectors: n(5),
                    read_millis: n(6),
                    writes: n(7),
                    write_sectors: n(9),
                    write_millis: n(10),
                    io_millis: n(12),
                },
            ))
        })
        .collect()
}

/// One line of /proc/self/mounts.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
    pub read_only: bool,
}

pub fn mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 {
                return None;
            }
            Some(Mount {
                device: unescape_mount(f[0]),
                mount_point: unescape_mount(f[1]),
                fs_type: f[2].to_string(),
                read_only: f[3].split(',').any(|o| o == "ro"),
            })
        })
        .collect()
}

/// /proc/mounts writes space, tab, newline and backslash as octal escapes.
fn unescape_mount(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Fields of /proc/<pid>/stat after the command name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessStat {
    pub state: char,
    pub user_ticks: u64,
    pub system_ticks: u64,
    pub threads: u64,
    pub start_ticks: u64,
    pub virtual_bytes: u64,
    pub rss_pages: u64,
}

pub fn process_stat(text: &str) -> Option<ProcessStat> {
    // The command name may hold spaces and parentheses: split at the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Some(ProcessStat {
        state: f.first()?.chars().next()?,
        user_ticks: n(11),
        system_ticks: n(12),
        threads: n(17),
        start_ticks: n(19),
        virtual_bytes: n(20),
        rss_pages: n(21),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat() {
        let stat = "cpu  10 1 5 100 2 0 1 0 0 0\ncpu0 5 0 2 50 1 0 0 0 0 0\ncpu1 5 1 3 50 1 0 1 0 0 0\nprocesses 4242\n";
        let times = cpu_times(stat);
        assert_eq!(times.len(), 3);
        assert_eq!(times[0].0, None);
        assert_eq!(times[0].1.total(), 119);
        assert_eq!(times[2].0, Some(1));
        assert_eq!(stat_counter(stat, "processes"), Some(4242));
    }

    #[test]
    fn parses_net_dev_and_sockets() {
        let dev = "Inter-|   Receive\n face |bytes\n  eth0: 100 2 0 1 0 0 0 0 200 3 1 0 0 0 0 0\n";
        let parsed = network_devices(dev);
        assert_eq!(parsed[0].0, "eth0");
        assert_eq!(parsed[0].1.receive_dropped, 1);
        assert_eq!(parsed[0].1.transmit_bytes, 200);
        assert_eq!(parsed[0].1.transmit_errors, 1);
        let tcp = "  sl  local_address rem_address   st\n   0: 0100007F:10E1 00000000:0000 0A 0\n   1: 0100007F:10E1 0100007F:A000 01 0\n";
        assert_eq!(socket_states(tcp), vec![0x0A, 0x01]);
    }

    #[test]
    fn parses_process_stat_with_odd_names() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 5 0 1234 1000000 250 18446744073709551615";
        let parsed = process_stat(stat).unwrap();
        assert_eq!(parsed.state, 'S');
        assert_eq!((parsed.user_ticks, parsed.system_ticks), (7, 3));
        assert_eq!(parsed.threads, 5);
        assert_eq!(parsed.rss_pages, 250);
    }

    #[test]
    fn parses_mounts_with_escapes() {
        let m = mounts("/dev/sda1 /mnt/my\\040disk ext4 ro,relatime 0 0\n");
        assert_eq!(m[0].mount_point, "/mnt/my disk");
        assert!(m[0].read_only);
    }
}
