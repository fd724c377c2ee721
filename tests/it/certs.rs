//! Test certificates made with the openssl command: a CA, a server
//! certificate for 127.0.0.1 and a client certificate signed by it, and a
//! foreign CA with its own client certificate.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl {args:?}");
}

const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// `<name>.pem` and `<name>.key`: a self-signed CA.
pub fn ca(dir: &Path, name: &str) {
    let (pem, key, subject) = (
        format!("{name}.pem"),
        format!("{name}.key"),
        format!("/CN={name}"),
    );
    let mut args = vec!["req", "-x509"];
    args.extend(EC);
    args.extend([
        "-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subject,
    ]);
    openssl(dir, &args);
}

/// `<name>.pem` and `<name>.key` signed by CA `<ca>`: a server certificate
/// for 127.0.0.1, or a client certificate.
pub fn leaf(dir: &Path, ca: &str, name: &str, server: bool) {
    let (pem, key, csr, ext) = (
        format!("{name}.pem"),
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
    );
    let subject = format!("/CN={name}");
    let mut args = vec!["req"];
    args.extend(EC);
    args.extend(["-keyout", &key, "-out", &csr, "-subj", &subject]);
    openssl(dir, &args);
    let extensions = if server {
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    } else {
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"
    };
    std::fs::write(dir.join(&ext), extensions).unwrap();
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

/// ca, server, client; foreign-ca, foreign-client.
pub fn all(dir: &Path) {
    ca(dir, "ca");
    leaf(dir, "ca", "server", true);
    leaf(dir, "ca", "client", false);
    ca(dir, "foreign-ca");
    leaf(dir, "foreign-ca", "foreign-client", false);
}

pub fn path(dir: &Path, file: &str) -> String {
    let path: PathBuf = dir.join(file);
    path.display().to_string()
}
