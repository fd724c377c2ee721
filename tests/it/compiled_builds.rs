//! A config `validate` accepts builds without error: every shipped
//! pipeline and every fixture in tests/config that compiles builds each of
//! its receivers, processors and connectors from the compiled forms (the
//! builders take validated forms and have no fallback left to hide a
//! dropped rule or pattern). Exporters are left out: building them opens
//! files and listeners.

use std::path::Path;

use sidewatch::components::ConnectorContext;
use sidewatch::config::storage::Storage;

#[test]
fn every_accepted_fixture_builds_its_components() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut built = 0;
    for dir in ["pipelines", "tests/config", "tests/config/otelcol"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Fixtures name the variables they need; unset ones are errors.
            let env = |name: &str| Some(format!("{name}-value"));
            let Ok(loaded) =
                sidewatch::plan::load_str_with_env(&text, &path.display().to_string(), &env)
            else {
                continue;
            };
            for receiver in loaded.plan.receivers.values() {
                drop(receiver.build());
            }
            for processor in loaded.plan.processors.values() {
                drop(processor.build());
            }
            for (id, connector) in &loaded.plan.connectors {
                drop(connector.build(&ConnectorContext {
                    id: &id.to_string(),
                    storage: Storage::NONE,
                }));
            }
            built += 1;
        }
    }
    assert!(built >= 10, "only {built} accepted configs found");
}

#[test]
fn a_rule_that_does_not_compile_is_refused_at_its_path_and_line() {
    let yaml = "receivers: { otlp: { protocols: { grpc: { endpoint: 127.0.0.1:0 } } } }\nconnectors:\n  alert:\n    rules:\n      - { name: Ok, metric: up, op: \">\", warning: 1 }\n      - { name: Bad, metric: up, op: \">\", warning: 1, critical: 0.5 }\nexporters: { debug: {} }\nservice:\n  pipelines:\n    metrics: { receivers: [otlp], exporters: [alert] }\n    logs: { receivers: [alert], exporters: [debug] }\n";
    let errors = sidewatch::plan::load_str(yaml, "t.yaml")
        .expect_err("a rule that does not compile is refused, not dropped")
        .to_string();
    assert!(
        errors.contains("connectors.alert.rules[1]") && errors.contains("line 6"),
        "{errors}"
    );
}
