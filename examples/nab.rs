//! Runs the anomaly detector over the Numenta Anomaly Benchmark files and
//! writes one score CSV per file, for NAB's scorer:
//!
//!   cargo run --release --example nab -- ../shared/nab/data /tmp/nab-scores [CONFIG.json]
//!   python3 ../shared/nab/score.py ../shared/nab/windows.json /tmp/nab-scores
//!
//! With no CONFIG the detector's defaults are used: one configuration for
//! every file, as the benchmark requires.

use std::path::Path;

use sidewatch::stats::anomaly::detector::{Detector, DetectorConfig};
use sidewatch::timestamp::parse_unix_seconds;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (data, out) = (Path::new(&args[1]), Path::new(&args[2]));
    let config: DetectorConfig = match args.get(3) {
        Some(path) => serde_json::from_str(&std::fs::read_to_string(path)?)?,
        None => DetectorConfig::default(),
    };
    let mut files = 0;
    for category in std::fs::read_dir(data)? {
        let category = category?.path();
        for file in std::fs::read_dir(&category)? {
            let file = file?.path();
            let text = std::fs::read_to_string(&file)?;
            let mut detector = Detector::new(config.clone());
            let mut csv = String::from("timestamp,anomaly_score\n");
            for line in text.lines().skip(1) {
                let (timestamp, value) = line.split_once(',').ok_or("bad line")?;
                let seconds = parse_unix_seconds(timestamp)? as i64;
                let observation = detector.observe(seconds, value.trim().parse()?);
                csv.push_str(&format!("{timestamp},{:.6}\n", observation.score));
            }
            let target = out.join(category.file_name().ok_or("category")?);
            std::fs::create_dir_all(&target)?;
            std::fs::write(target.join(file.file_name().ok_or("file")?), csv)?;
            files += 1;
        }
    }
    eprintln!("scored {files} files");
    Ok(())
}
