//! Real server binaries (Prometheus, Alertmanager, promtool) that tests
//! start on 127.0.0.1. Missing on a developer's machine: the test is
//! skipped with a loud message; under CI=true it fails instead.

use std::path::PathBuf;

/// The binary's path, or `None` after saying loudly why the test skips.
pub fn binary(name: &str, package: &str) -> Option<PathBuf> {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let path = PathBuf::from(dir).join(name);
        if path.exists() {
            return Some(path);
        }
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{name} is not installed, and CI=true: .ci/run must install the Debian package {package}"
        );
    }
    eprintln!(
        "\n*** SKIPPING: {name} is not installed (apt-get install {package}); this test needs the real server ***\n"
    );
    None
}
