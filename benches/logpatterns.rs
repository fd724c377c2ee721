//! The log-pattern miner: lines per second when templates are known
//! (steady state), when learning from nothing, and when every line is new
//! and the template cap evicts; the heap bytes per template (counted by a
//! wrapping allocator around mimalloc, the binary's allocator); the size of
//! the saved state; and, when the loghub samples are at `$LOGHUB_DIR` or
//! `../shared/loghub`, lines per second and grouping accuracy on each of
//! the ten systems with the default configuration.
//!
//!   cargo bench --bench logpatterns

use std::alloc::{GlobalAlloc, Layout};
use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicIsize, Ordering};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mimalloc::MiMalloc;
use sidewatch::logpatterns::{Miner, MinerConfig};

/// Live heap bytes: mimalloc, counted.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to mimalloc unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { MiMalloc.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { MiMalloc.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A deterministic stream of log lines from `kinds` kinds of line, each
/// with numbers, addresses, ids and durations that vary line by line.
fn lines(n: usize, kinds: usize) -> Vec<String> {
    const VERBS: [&str; 10] = [
        "accepted", "rejected", "opened", "closed", "retried", "dropped", "queued", "sent",
        "received", "expired",
    ];
    const OBJECTS: [&str; 10] = [
        "connection",
        "session",
        "request",
        "message",
        "transaction",
        "lease",
        "upload",
        "checkpoint",
        "subscription",
        "lock",
    ];
    let mut state = 42u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state >> 33
    };
    (0..n)
        .map(|_| {
            let kind = next() as usize % kinds;
            let (verb, object) = (VERBS[kind % 10], OBJECTS[(kind / 10) % 10]);
            let shape = kind / 100;
            match (kind + shape) % 4 {
                0 => format!(
                    "{object} {} {verb} from 10.{}.{}.{}:{} after {}ms",
                    next() % 100_000,
                    next() % 256,
                    next() % 256,
                    next() % 256,
                    next() % 65536,
                    next() % 5000
                ),
                1 => format!(
                    "{verb} {object} id={:08x}-{:04x}-4abc-8def-{:012x} for user u{} shard {shape}",
                    next(),
                    next() % 65536,
                    next(),
                    next() % 1000
                ),
                2 => format!(
                    "worker {} {verb} {object} /var/lib/app/{}/part-{}.dat size {} KB",
                    next() % 64,
                    next() % 10,
                    next() % 1000,
                    next() % 10_000
                ),
                _ => format!(
                    "{object} {verb}: status={} latency={}.{}s retries={} kind{shape}",
                    200 + next() % 300,
                    next() % 10,
                    next() % 1000,
                    next() % 5
                ),
            }
        })
        .collect()
}

fn observe(c: &mut Criterion) {
    let stream = lines(10_000, 100);
    let mut group = c.benchmark_group("logpatterns observe");
    group.throughput(Throughput::Elements(stream.len() as u64));
    let mut warm = Miner::default();
    for line in &stream {
        warm.observe(line);
    }
    group.bench_function("10k lines, 100 kinds, templates known", |b| {
        b.iter(|| {
            for line in &stream {
                black_box(warm.observe(line).pattern_id);
            }
        })
    });
    group.bench_function("10k lines, 100 kinds, learning from empty", |b| {
        b.iter_batched_ref(
            Miner::default,
            |miner| {
                for line in &stream {
                    black_box(miner.observe(line).pattern_id);
                }
            },
            BatchSize::LargeInput,
        )
    });
    // Every line its own template: the cap evicts on every line.
    let unique: Vec<String> = (0..10_000)
        .map(|i| {
            format!(
                "{} {} {} happened",
                word(i),
                word(i * 7 + 1),
                word(i * 13 + 5)
            )
        })
        .collect();
    let capped = MinerConfig {
        max_templates: 1_000,
        ..MinerConfig::default()
    };
    group.bench_function("10k new templates, cap 1000 (evicting)", |b| {
        b.iter_batched_ref(
            || {
                let mut miner = Miner::new(capped.clone()).expect("a valid configuration");
                for line in &unique[..1_000] {
                    miner.observe(line);
                }
                miner
            },
            |miner| {
                for line in &unique {
                    black_box(miner.observe(line).evicted);
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
    group_memory(&stream, &unique);
}

/// Letters only, so the masking leaves it a word: a distinct template each.
fn word(mut i: usize) -> String {
    let mut word = String::new();
    loop {
        word.push((b'a' + (i % 26) as u8) as char);
        i /= 26;
        if i == 0 {
            return word;
        }
    }
}

fn group_memory(stream: &[String], unique: &[String]) {
    let before = LIVE.load(Ordering::Relaxed);
    let mut miner = Miner::default();
    for line in stream {
        miner.observe(line);
    }
    let templates = miner.stats().templates;
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    let saved = miner.save();
    eprintln!(
        "logpatterns memory: {templates} templates of the synthetic stream hold {bytes} heap bytes \
         ({} per template; memory_bytes() estimates {}); saved state {} bytes ({} per template)",
        bytes / templates as isize,
        miner.memory_bytes(),
        saved.len(),
        saved.len() / templates
    );
    drop(saved);
    drop(miner);
    let before = LIVE.load(Ordering::Relaxed);
    let mut miner = Miner::default();
    for line in unique {
        miner.observe(line);
    }
    let templates = miner.stats().templates;
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    eprintln!(
        "logpatterns memory: {templates} short templates (4 tokens) hold {bytes} heap bytes \
         ({} per template; memory_bytes() estimates {})",
        bytes / templates as isize,
        miner.memory_bytes()
    );
}

/// `$LOGHUB_DIR`, else `../shared/loghub` next to the checkout (or next to
/// the worktrees' folder, for a worktree under `wt/`).
fn loghub_dir() -> Option<PathBuf> {
    match std::env::var_os("LOGHUB_DIR") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => ["../shared/loghub", "../../shared/loghub"]
            .into_iter()
            .map(PathBuf::from)
            .find(|dir| dir.is_dir()),
    }
}

/// (`EventId`, `Content`) of every line of one system.
fn loghub_system(dir: &Path, system: &str) -> Vec<(String, String)> {
    let path = dir
        .join(system)
        .join(format!("{system}_2k.log_structured.csv"));
    let mut reader = csv::Reader::from_path(&path).expect("a loghub CSV");
    let headers = reader.headers().expect("a header").clone();
    let column = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let (event, content) = (column("EventId"), column("Content"));
    reader
        .records()
        .map(|r| {
            let r = r.expect("a CSV row");
            (r[event].to_string(), r[content].to_string())
        })
        .collect()
}

/// The loghub benchmark's grouping accuracy: the share of lines whose
/// predicted group holds exactly the lines of their true group.
fn grouping_accuracy(truth: &[String], predicted: &[u64]) -> f64 {
    let mut true_groups: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut predicted_groups: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, (t, p)) in truth.iter().zip(predicted).enumerate() {
        true_groups.entry(t).or_default().push(i);
        predicted_groups.entry(*p).or_default().push(i);
    }
    let correct: usize = predicted_groups
        .values()
        .filter(|lines| true_groups[truth[lines[0]].as_str()] == **lines)
        .map(|lines| lines.len())
        .sum();
    correct as f64 / truth.len() as f64
}

fn loghub(c: &mut Criterion) {
    let Some(dir) = loghub_dir() else {
        eprintln!(
            "logpatterns loghub: no samples at ../shared/loghub or $LOGHUB_DIR; \
             the accuracy figures are skipped"
        );
        return;
    };
    const SYSTEMS: [&str; 10] = [
        "Android",
        "BGL",
        "HDFS",
        "HPC",
        "Hadoop",
        "Linux",
        "Spark",
        "Thunderbird",
        "Windows",
        "Zookeeper",
    ];
    let mut group = c.benchmark_group("logpatterns loghub");
    let mut accuracies = Vec::new();
    for system in SYSTEMS {
        let rows = loghub_system(&dir, system);
        let mut miner = Miner::default();
        let predicted: Vec<u64> = rows
            .iter()
            .map(|(_, l)| miner.observe(l).pattern_id.0)
            .collect();
        let truth: Vec<String> = rows.iter().map(|(e, _)| e.clone()).collect();
        let accuracy = grouping_accuracy(&truth, &predicted);
        accuracies.push(accuracy);
        eprintln!("logpatterns loghub {system:<12} grouping accuracy {accuracy:.4}");
        group.throughput(Throughput::Elements(rows.len() as u64));
        group.bench_function(format!("{system}, 2k lines from empty"), |b| {
            b.iter_batched_ref(
                Miner::default,
                |miner| {
                    for (_, line) in &rows {
                        black_box(miner.observe(line).pattern_id);
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
    eprintln!(
        "logpatterns loghub mean grouping accuracy over {} systems: {:.4}",
        accuracies.len(),
        accuracies.iter().sum::<f64>() / accuracies.len() as f64
    );
}

criterion_group!(benches, observe, loghub);
criterion_main!(benches);
