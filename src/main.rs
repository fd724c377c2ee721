//! The `sidewatch` command line: run, validate, components, replay.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;
use sidewatch::components::REGISTRY;
use sidewatch::config::{self, ConfigErrors};
use sidewatch::plan::{self, Loaded};

/// OTLP decoding is allocation-heavy: mimalloc makes the passthrough path
/// markedly cheaper than glibc's malloc (see the README's Performance).
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

#[derive(Parser)]
#[command(
    name = "sidewatch",
    version,
    about = "An OpenTelemetry pipeline processor"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run pipelines: the given YAML, or the embedded default.
    Run {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a config; print every error with its path and line.
    Validate {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// List every component type with a one-line description.
    Components,
    /// Run a config's unit tests: inputs through the real graph in event
    /// time, checked against expected alerts and exporter outputs.
    Test {
        /// The config; default: the one the tests file names.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// A tests file; default: the config's own `tests:` section.
        #[arg(long, short)]
        tests: Option<PathBuf>,
    },
    /// Backtest a config's whole graph on historical data, in event time.
    Replay {
        #[arg(long, short)]
        config: PathBuf,
        /// CSV `timestamp,value`, or OTLP/JSON, one export request (any signal) per line.
        #[arg(long, short)]
        input: PathBuf,
        /// CSV of every scored point: timestamp,value,anomaly_score.
        #[arg(long, short)]
        output: PathBuf,
        /// JSON lines of anomaly incidents and alert events; default OUTPUT.events.jsonl.
        #[arg(long)]
        events: Option<PathBuf>,
        /// The metric name a CSV series is given.
        #[arg(long, default_value = "value")]
        metric: String,
        /// Directory for what each exporter would have received, one
        /// OTLP/JSON file per exporter and signal; default OUTPUT.exporters.
        #[arg(long)]
        exporters: Option<PathBuf>,
    },
}

/// mimalloc option numbers (mimalloc 2.x `mi_option_t`), not exported by
/// the bindings.
const MI_OPTION_ARENA_EAGER_COMMIT: i32 = 4;

/// Commit arena memory as it is used, not up front: an idle sidecar then
/// holds about 11 MiB instead of about 20. (Purging freed pages at once
/// saves little more and costs a fifth of the throughput.) This must run
/// before the first arena exists, so it runs as an ELF constructor, before
/// `main` and before the first allocation.
extern "C" fn configure_allocator() {
    // SAFETY: setting options has no preconditions and runs single-threaded.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
    }
}

#[used]
#[unsafe(link_section = ".init_array")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = configure_allocator;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Components => {
            for row in REGISTRY {
                println!(
                    "{:<10} {:<12} {}",
                    row.kind().as_str(),
                    row.type_name,
                    row.description
                );
                for alias in row.aliases {
                    println!(
                        "{:<10} {:<12} {} under the Collector's name",
                        row.kind().as_str(),
                        alias.name,
                        row.type_name
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Command::Replay {
            config,
            input,
            output,
            events,
            metric,
            exporters,
        } => {
            let loaded = match plan::load_file(&config) {
                Ok(loaded) => loaded,
                Err(errors) => return config_failed(errors),
            };
            let beside = |suffix: &str| {
                let mut name = output.clone().into_os_string();
                name.push(suffix);
                PathBuf::from(name)
            };
            let events_path = events.unwrap_or_else(|| beside(".events.jsonl"));
            let exporters_dir = exporters.unwrap_or_else(|| beside(".exporters"));
            let report =
                match sidewatch::replay::replay(&loaded.plan, &input, &metric, &exporters_dir) {
                    Ok(report) => report,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(1);
                    }
                };
            let lines: String = report.events.iter().map(|e| format!("{e}\n")).collect();
            let written = std::fs::write(&output, &report.csv)
                .and_then(|_| std::fs::write(&events_path, lines));
            if let Err(e) = written {
                eprintln!("error: cannot write the output: {e}");
                return ExitCode::from(1);
            }
            if report.skipped_inputs > 0 {
                eprintln!(
                    "warning: {} inputs skipped: no pipeline takes their signal from a receiver",
                    report.skipped_inputs
                );
            }
            eprintln!(
                "{} points scored, {} anomaly incidents, alerts fired: {}",
                report.points,
                report.incidents,
                if report.alerts_fired.is_empty() {
                    "none".to_string()
                } else {
                    report
                        .alerts_fired
                        .iter()
                        .map(|(k, v)| format!("{k} x{v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
            eprintln!(
                "wrote {}, {} and {} ({} exporter files)",
                output.display(),
                events_path.display(),
                exporters_dir.display(),
                report.exporter_files.len()
            );
            ExitCode::SUCCESS
        }
        Command::Test { config, tests } => run_tests(config, tests),
        Command::Validate { config } => match plan::load_file(&config) {
            Ok(loaded) => {
                print_warnings(&config.display().to_string(), &loaded);
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprint!("{errors}");
                ExitCode::from(1)
            }
        },
        Command::Run { config } => {
            let loaded = match &config {
                Some(path) => plan::load_file(path),
                None => plan::load_str(config::DEFAULT_PIPELINE, "embedded default pipeline"),
            };
            let loaded = match loaded {
                Ok(loaded) => loaded,
                Err(errors) => return config_failed(errors),
            };
            let telemetry = &loaded.plan.service.telemetry;
            sidewatch::telemetry::logs::init(
                telemetry.log_filter.as_deref(),
                telemetry.log_encoding,
            );
            let source = config
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "embedded default pipeline".into());
            for warning in &loaded.warnings {
                tracing::warn!(config = %source, "{warning}");
            }
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            let code = runtime.block_on(run(loaded));
            // Dropping a runtime waits for its blocking threads without
            // limit (a file or state write stuck on its disk): past the
            // shutdown deadline, give them a moment and exit regardless.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            code
        }
    }
}

/// `sidewatch test`: 0 when every case passes, 1 when one fails, 2 when
/// the config or the tests cannot be read.
fn run_tests(config: Option<PathBuf>, tests: Option<PathBuf>) -> ExitCode {
    let Some(tests_path) = tests.clone().or_else(|| config.clone()) else {
        eprintln!("error: give --tests FILE, --config FILE, or both");
        return ExitCode::from(2);
    };
    let suite = match sidewatch::configtest::load(&tests_path) {
        Ok(suite) => suite,
        Err(errors) => {
            eprint!("{errors}");
            return ExitCode::from(2);
        }
    };
    let Some(config_path) = config.or_else(|| suite.config.clone()) else {
        eprintln!(
            "error: {}: no config: give --config or `config:` in the tests file",
            tests_path.display()
        );
        return ExitCode::from(2);
    };
    let loaded = match plan::load_file(&config_path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprint!("{errors}");
            return ExitCode::from(2);
        }
    };
    let results = match suite.run(&loaded.plan) {
        Ok(results) => results,
        Err(e) => {
            eprintln!("error: {}: {e}", suite.source_name);
            return ExitCode::from(2);
        }
    };
    println!("{} against {}", suite.source_name, config_path.display());
    let mut failed = 0;
    for result in &results {
        if result.failures.is_empty() {
            println!(
                "  ok    {} ({} inputs, {} expectations)",
                result.name, result.inputs, result.expectations
            );
            continue;
        }
        failed += 1;
        println!("  FAIL  {}", result.name);
        for failure in &result.failures {
            let line = failure
                .line
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            println!("        {}{line}: {}", failure.path, failure.message);
        }
    }
    println!("{} passed, {failed} failed", results.len() - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn config_failed(errors: ConfigErrors) -> ExitCode {
    eprint!("{errors}");
    ExitCode::from(1)
}

fn print_warnings(source: &str, loaded: &Loaded) {
    for warning in &loaded.warnings {
        eprintln!("{source}: warning: {warning}");
    }
}

async fn run(loaded: Loaded) -> ExitCode {
    // Listen for SIGTERM before anything starts: one sent right after
    // "ready" (or during start) must stop sidewatch cleanly, not kill it
    // with the default action.
    let stop = stop_signal();
    let collector = match sidewatch::pipeline::build::start(&loaded.plan).await {
        Ok(collector) => collector,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(
        pipelines = loaded.plan.service.pipelines.len(),
        "sidewatch is ready"
    );
    stop.await;
    tracing::info!("shutting down: draining pipelines");
    let report = collector.shutdown().await;
    if report.clean {
        tracing::info!("shutdown complete");
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// A future that completes on SIGINT or SIGTERM; both handlers are
/// installed when this is called, not when it is first polled.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    async move {
        match (terminate, interrupt) {
            (Ok(mut terminate), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(
                    "cannot listen for SIGTERM or SIGINT ({e}); only Ctrl-C stops sidewatch"
                );
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
