//! Runs the log-pattern miner over the loghub 2k samples and writes the
//! scorer's input, one `<System>.csv` of `LineId,PatternId` per system:
//!
//!   cargo run --release --example loghub -- ../shared/loghub /tmp/loghub-out [CONFIG.json]
//!   python3 ../shared/loghub/score.py ../shared/loghub /tmp/loghub-out
//!
//! Templates are mined from each line's `Content` column, with one
//! configuration for every system (the defaults unless CONFIG is given),
//! and a fresh miner per system. Each line's id is the one `observe`
//! returned for it, as a connector would stamp it; `resolved/<System>.csv`
//! holds the same lines with each id resolved through the miner's aliases
//! at the end (a template merged into another counts as that one):
//!
//!   python3 ../shared/loghub/score.py ../shared/loghub /tmp/loghub-out/resolved
//!
//! Also writes `<System>.templates.txt` (id, lines, template) to read, and
//! prints lines per second of mining alone (CSV reading and writing
//! excluded).

use std::path::Path;
use std::time::{Duration, Instant};

use sidewatch::logpatterns::{Miner, MinerConfig, PatternId};

/// The binary's allocator, so lines per second are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: loghub LOGHUB_DIR OUT_DIR [CONFIG.json]".into());
    }
    let (data, out) = (Path::new(&args[1]), Path::new(&args[2]));
    let config: MinerConfig = match args.get(3) {
        Some(path) => serde_json::from_str(&std::fs::read_to_string(path)?)?,
        None => MinerConfig::default(),
    };
    std::fs::create_dir_all(out.join("resolved"))?;
    let mut systems: Vec<String> = std::fs::read_dir(data)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    systems.sort();
    let (mut total_lines, mut total_time) = (0usize, Duration::ZERO);
    for system in &systems {
        let path = data
            .join(system)
            .join(format!("{system}_2k.log_structured.csv"));
        let mut reader = csv::Reader::from_path(&path)?;
        let headers = reader.headers()?.clone();
        let column = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| format!("{}: no {name} column", path.display()))
        };
        let (line_id, content) = (column("LineId")?, column("Content")?);
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record?;
            rows.push((record[line_id].to_string(), record[content].to_string()));
        }
        let mut miner = Miner::new(config.clone())?;
        let started = Instant::now();
        let ids: Vec<PatternId> = rows
            .iter()
            .map(|(_, content)| miner.observe(content).pattern_id)
            .collect();
        let elapsed = started.elapsed();
        total_lines += rows.len();
        total_time += elapsed;
        write_ids(&out.join(format!("{system}.csv")), &rows, &ids)?;
        let resolved: Vec<PatternId> = ids
            .iter()
            .map(|id| miner.resolve(*id).unwrap_or(*id))
            .collect();
        write_ids(
            &out.join("resolved").join(format!("{system}.csv")),
            &rows,
            &resolved,
        )?;
        let mut templates = String::new();
        for (id, text, count) in miner.templates() {
            templates.push_str(&format!("{id} {count:>5} {text}\n"));
        }
        std::fs::write(out.join(format!("{system}.templates.txt")), templates)?;
        let stats = miner.stats();
        println!(
            "{system:<12} {:>5} lines {:>4} templates {:>9.0} lines/s",
            rows.len(),
            stats.templates,
            rows.len() as f64 / elapsed.as_secs_f64()
        );
    }
    println!(
        "all          {total_lines:>5} lines           {:>9.0} lines/s",
        total_lines as f64 / total_time.as_secs_f64()
    );
    Ok(())
}

fn write_ids(
    path: &Path,
    rows: &[(String, String)],
    ids: &[PatternId],
) -> Result<(), Box<dyn std::error::Error>> {
    let mut writer = csv::Writer::from_path(path)?;
    writer.write_record(["LineId", "PatternId"])?;
    for ((line, _), id) in rows.iter().zip(ids) {
        writer.write_record([line.as_str(), id.to_string().as_str()])?;
    }
    writer.flush()?;
    Ok(())
}
