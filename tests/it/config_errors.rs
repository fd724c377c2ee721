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
        match sidewatch::config::load_str_with_env(&text, "fixture", &env) {
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
        let loaded = sidewatch::config::load_file(&file).unwrap_or_else(|e| panic!("{e}"));
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
