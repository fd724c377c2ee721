//! The config loader on arbitrary text: it never panics, and every error
//! it reports renders (with its YAML path and, where known, its line).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match sidewatch::plan::load_str_with_env(&text, "fuzz.yaml", &|_| Some("4317".into())) {
        Ok(loaded) => drop(loaded),
        Err(errors) => {
            let rendered = errors.to_string();
            assert!(!rendered.is_empty());
        }
    }
});
