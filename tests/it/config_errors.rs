//! Config errors, one fixture per case in tests/config/: each file starts
//! ends with the exact `# error:` and `# warning:` lines compiling it must give.
//! And every shipped pipeline in pipelines/ compiles cleanly.

use std::path::Path;

fn fixtures(folder: &str) -> Vec<std::path::PathBuf> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", folder.display());
    files
}

fn expected(text: &str, kind: &str) -> Vec<String> {
    let prefix = format!("# {kind}: ");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn each_config_error_names_its_path_line_and_expectation() {
    for file in fixtures("tests/config") {
        let text = std::fs::read_to_string(&file).unwrap();
        let want_errors = expected(&text, "error");
        let want_warnings = expected(&text, "warning");
        assert!(
            !(want_errors.is_empty() && want_warnings.is_empty()),
            "{} expects nothing",
            file.display()
        );
        let env = |name: &str| match name {
            "SIDEWATCH_TEST_SURELY_UNSET" => None,
            other => std::env::var(other).ok(),
        };
        match sidewatch::plan::load_str_with_env(&text, "fixture", &env) {
            Ok(loaded) => {
                assert!(
                    want_errors.is_empty(),
                    "{} compiled but expected {want_errors:#?}",
                    file.display()
                );
                let got: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
                assert_eq!(got, want_warnings, "{}", file.display());
            }
            Err(errors) => {
                let got: Vec<String> = errors.errors.iter().map(ToString::to_string).collect();
                assert_eq!(got, want_errors, "{}", file.display());
            }
        }
    }
}

#[test]
fn every_shipped_pipeline_compiles_without_warnings() {
    for file in fixtures("pipelines") {
        let loaded = sidewatch::plan::load_file(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            loaded.warnings.is_empty(),
            "{}: {:?}",
            file.display(),
            loaded.warnings
        );
    }
}

#[test]
fn the_embedded_default_is_pipelines_default_yaml() {
    let on_disk = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/default.yaml"),
    )
    .unwrap();
    assert_eq!(sidewatch::config::DEFAULT_PIPELINE, on_disk);
}

#[test]
fn validate_command_exits_nonzero_and_prints_every_error() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config/many_errors.yaml");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .args(["validate", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("3 errors"), "{stderr}");
    for line in expected(&std::fs::read_to_string(&file).unwrap(), "error") {
        assert!(stderr.contains(&line), "missing {line:?} in {stderr}");
    }
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .args(["validate", "--config"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/default.yaml"))
        .output()
        .unwrap();
    assert!(ok.status.success());
}

/// `run` refuses exactly the fixtures `validate` refuses, with the same
/// errors, and starts the ones it accepts: the two share one compile step,
/// so nothing `validate` passes fails at start.
#[test]
fn run_refuses_exactly_what_validate_refuses() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut started = 0;
    for file in fixtures("tests/config") {
        let text = std::fs::read_to_string(&file).unwrap();
        let want_errors = expected(&text, "error");
        let validate = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
            .args(["validate", "--config"])
            .arg(&file)
            .current_dir(root)
            .output()
            .unwrap();
        assert_eq!(
            validate.status.success(),
            want_errors.is_empty(),
            "{}: validate said {}",
            file.display(),
            String::from_utf8_lossy(&validate.stderr)
        );
        let mut run = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
            .args(["run", "--config"])
            .arg(&file)
            .current_dir(root)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read the log on a thread, so a run that hangs cannot hang the test.
        let stderr = run.stderr.take().unwrap();
        let (found, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = found.send(line);
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut seen = Vec::new();
        let ready = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains("sidewatch is ready") => break true,
                Ok(line) => seen.push(line),
                // The log closed (run exited) or the deadline passed.
                Err(_) => break false,
            }
        };
        let _ = run.kill();
        let status = run.wait().unwrap();
        let output = seen.join("\n");
        if want_errors.is_empty() {
            assert!(
                ready,
                "{}: validate accepted it but run did not start: {output}",
                file.display()
            );
            started += 1;
        } else {
            assert!(
                !ready,
                "{}: validate refused it but run started",
                file.display()
            );
            assert_eq!(
                status.code(),
                Some(1),
                "{}: run exited {status}: {output}",
                file.display()
            );
            for line in &want_errors {
                assert!(
                    output.contains(line.as_str()),
                    "{}: run did not say {line:?}: {output}",
                    file.display()
                );
            }
        }
    }
    assert!(started > 0, "no fixture exercised the accepted path");
}
