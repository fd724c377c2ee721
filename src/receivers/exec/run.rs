//! One run of a command: its own process group (so a timeout kills what it
//! started too), stdout read up to a limit (a flood is cut off and the
//! process killed, never buffered), the end of stderr kept for the log.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};

#[derive(Debug)]
pub struct Run {
    pub stdout: Vec<u8>,
    /// The last bytes of stderr, for the log.
    pub stderr_tail: Vec<u8>,
    /// The exit code; `None` when killed, timed out or not started.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub truncated: bool,
    pub duration: Duration,
    /// Why it could not be started.
    pub spawn_error: Option<String>,
}

const STDERR_TAIL: usize = 4096;

/// Reads into `into` until EOF or `limit` bytes; `true` when the limit cut
/// it short.
async fn read_bounded(mut from: impl AsyncRead + Unpin, into: &mut Vec<u8>, limit: usize) -> bool {
    let mut buffer = [0u8; 8192];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => {
                if into.len() + n > limit {
                    into.extend_from_slice(&buffer[..limit - into.len()]);
                    return true;
                }
                into.extend_from_slice(&buffer[..n]);
            }
        }
    }
}

/// Keeps the last `STDERR_TAIL` bytes and drains the rest, so a chatty
/// command never blocks on a full pipe.
async fn read_tail(mut from: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut tail = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(n) = from.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&buffer[..n]);
        if tail.len() > STDERR_TAIL {
            tail.drain(..tail.len() - STDERR_TAIL);
        }
    }
    tail
}

fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid {
        // SAFETY: killpg only sends a signal; the group is the child's own
        // (process_group(0)), so nothing outside it is touched.
        unsafe {
            libc::killpg(pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

pub async fn run(
    argv: &[String],
    environment: &[(String, String)],
    working_dir: Option<&std::path::Path>,
    timeout: Duration,
    max_output: usize,
) -> Run {
    let started = Instant::now();
    let mut command = tokio::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .envs(environment.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = working_dir {
        command.current_dir(dir);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Run {
                stdout: Vec::new(),
                stderr_tail: Vec::new(),
                exit_code: None,
                timed_out: false,
                truncated: false,
                duration: started.elapsed(),
                spawn_error: Some(format!("cannot start {}: {e}", argv[0])),
            };
        }
    };
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut out = Vec::new();
    let work = async {
        let (truncated, tail) = tokio::join!(
            async {
                let truncated = read_bounded(stdout, &mut out, max_output).await;
                if truncated {
                    kill_group(pid);
                }
                truncated
            },
            read_tail(stderr)
        );
        let status = child.wait().await;
        (truncated, tail, status)
    };
    let finished = tokio::time::timeout(timeout, work).await;
    match finished {
        Ok((truncated, stderr_tail, status)) => Run {
            stdout: out,
            stderr_tail,
            exit_code: status.ok().and_then(|s| s.code()),
            timed_out: false,
            truncated,
            duration: started.elapsed(),
            spawn_error: None,
        },
        Err(_) => {
            kill_group(pid);
            // Reap it; SIGKILL cannot be ignored, so this is quick.
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            Run {
                stdout: out,
                stderr_tail: Vec::new(),
                exit_code: None,
                timed_out: true,
                truncated: false,
                duration: started.elapsed(),
                spawn_error: None,
            }
        }
    }
}
