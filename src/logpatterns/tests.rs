//! Behaviour of the miner as the connector will use it: ids, generalising,
//! freezing, the template cap, saving and restoring; then properties over
//! generated lines (never panics, deterministic, restores exactly, every
//! line fits the template it is given, the cap holds).

use proptest::prelude::*;

use super::template::PatternId;
use super::{Miner, MinerConfig, StateError};

fn miner() -> Miner {
    Miner::default()
}

fn miner_with(config: MinerConfig) -> Miner {
    Miner::new(config).expect("a valid configuration")
}

fn id_of(miner: &mut Miner, line: &str) -> PatternId {
    miner.observe(line).pattern_id
}

#[test]
fn lines_that_differ_only_in_masked_variables_share_one_template() {
    let mut miner = miner();
    let first = miner.observe("accepted connection from 10.0.0.1:5432 in 12ms");
    assert!(first.is_new);
    let id = first.pattern_id;
    let second = miner.observe("accepted connection from 192.168.7.20:80 in 3.5s");
    assert_eq!(second.pattern_id, id);
    assert!(!second.is_new && !second.generalised);
    assert_eq!(
        second.template,
        "accepted connection from <IP> in <DURATION>"
    );
    assert_eq!(miner.stats().templates, 1);
}

#[test]
fn different_kinds_of_line_get_different_ids() {
    let mut miner = miner();
    let a = id_of(&mut miner, "disk /dev/sda1 is full");
    let b = id_of(&mut miner, "user alice logged in from 10.1.1.1");
    let c = id_of(&mut miner, "user alice logged out");
    assert!(a != b && b != c && a != c);
    assert_eq!(miner.stats().templates, 3);
}

#[test]
fn generalising_keeps_the_first_id_and_records_the_new_text_as_an_alias() {
    let mut miner = miner();
    let id = id_of(&mut miner, "opened session for user alice on tty1");
    assert_eq!(
        id,
        PatternId::of_text("opened session for user alice on tty<NUM>")
    );
    let m = miner.observe("opened session for user bob on tty2");
    assert!(m.generalised);
    assert_eq!(m.pattern_id, id);
    assert_eq!(m.template, "opened session for user <*> on tty<NUM>");
    let alias = PatternId::of_text("opened session for user <*> on tty<NUM>");
    assert_eq!(miner.resolve(alias), Some(id));
    assert_eq!(miner.template(alias), miner.template(id));
}

#[test]
fn ids_do_not_depend_on_the_order_templates_were_learned_in() {
    let lines = [
        "worker 3 started",
        "cache miss for key 0x1f2e",
        "request failed: timeout after 30s",
    ];
    let mut forward = miner();
    let ids: Vec<PatternId> = lines.iter().map(|l| id_of(&mut forward, l)).collect();
    let mut backward = miner();
    let mut reversed: Vec<PatternId> = lines
        .iter()
        .rev()
        .map(|l| id_of(&mut backward, l))
        .collect();
    reversed.reverse();
    assert_eq!(ids, reversed);
}

#[test]
fn only_the_first_line_of_a_template_is_new() {
    let mut miner = miner();
    let news: Vec<bool> = ["job 1 done", "job 2 done", "job 3 failed", "job 4 done"]
        .iter()
        .map(|l| miner.observe(l).is_new)
        .collect();
    assert_eq!(news, [true, false, true, false]);
}

#[test]
fn a_word_that_held_for_freeze_after_lines_is_part_of_the_template() {
    let mut miner = miner();
    for n in 0..3 {
        miner.observe(&format!("session {n} initialized by client UpdateAgent"));
    }
    let other = miner.observe("session 9 initialized by client Scheduler");
    assert!(
        other.is_new,
        "a frozen word that differs makes a new template"
    );
    assert_eq!(
        other.template,
        "session <NUM> initialized by client Scheduler"
    );

    let mut early = self::miner();
    early.observe("session 1 initialized by client UpdateAgent");
    let m = early.observe("session 2 initialized by client Scheduler");
    assert!(
        m.generalised,
        "before freeze_after lines, words still generalise"
    );
    assert_eq!(m.template, "session <NUM> initialized by client <*>");
}

#[test]
fn a_template_that_generalises_absorbs_the_templates_it_now_covers() {
    let mut miner = miner();
    let root = id_of(&mut miner, "login failed for root from 10.0.0.1");
    id_of(&mut miner, "login failed for root from 10.0.0.2");
    id_of(&mut miner, "login failed for root from 10.0.0.3");
    // "root" held for three lines: another user makes another template...
    let uucp = miner.observe("login failed for uucp from 10.0.0.4");
    assert!(uucp.is_new);
    let uucp = uucp.pattern_id;
    // ...which a third user generalises; it now covers the "root" one.
    let m = miner.observe("login failed for ftp from 10.0.0.5");
    assert!(m.generalised);
    assert_eq!(m.template, "login failed for <*> from <IP>");
    assert_eq!(
        m.pattern_id, root,
        "the merged template keeps the oldest id"
    );
    assert_eq!(m.merged, [uucp]);
    assert_eq!(miner.resolve(uucp), Some(root));
    assert_eq!(
        id_of(&mut miner, "login failed for root from 10.0.0.6"),
        root
    );
    let stats = miner.stats();
    assert_eq!((stats.templates, stats.learned, stats.merged), (1, 2, 1));
    assert_eq!(miner.templates().next().map(|t| t.2), Some(6));

    let config = MinerConfig {
        merge_subsumed: false,
        ..MinerConfig::default()
    };
    let mut apart = miner_with(config);
    for line in [
        "login failed for root from 10.0.0.1",
        "login failed for root from 10.0.0.2",
        "login failed for root from 10.0.0.3",
        "login failed for uucp from 10.0.0.4",
        "login failed for ftp from 10.0.0.5",
    ] {
        apart.observe(line);
    }
    assert_eq!(apart.stats().templates, 2);
}

#[test]
fn units_and_dates_that_vary_with_the_value_do_not_split_a_template() {
    let mut miner = miner();
    for size in ["93.0 B", "384.0 B", "12.0 B"] {
        miner.observe(&format!("stored block in memory, estimated size {size}"));
    }
    let m = miner.observe("stored block in memory, estimated size 5.4 KB");
    assert!(!m.is_new, "B and KB are the same unit class");
    assert_eq!(
        m.template,
        "stored block in memory, estimated size <NUM> <UNIT>"
    );
    for day in ["Sun Jul  3", "Sun Jul  3", "Sun Jul  3"] {
        miner.observe(&format!("connection from 10.0.0.1 at {day} 10:05:25 2005"));
    }
    let m = miner.observe("connection from 10.0.0.9 at Mon Aug 15 07:57:30 2005");
    assert!(
        !m.is_new,
        "weekday and month names next to numbers are dates"
    );
    assert_eq!(
        m.template,
        "connection from <IP> at <DATE> <NUM> <NUM>:<NUM>:<NUM> <NUM>"
    );
}

#[test]
fn the_cap_evicts_the_least_recently_used_template_and_counts_it() {
    let config = MinerConfig {
        max_templates: 2,
        ..MinerConfig::default()
    };
    let mut miner = miner_with(config);
    let a = id_of(&mut miner, "alpha event happened");
    let b = id_of(&mut miner, "beta thing broke down badly");
    assert_eq!(id_of(&mut miner, "alpha event happened"), a);
    let c = miner.observe("gamma");
    assert!(c.is_new);
    assert_eq!(c.evicted, Some(b));
    assert_eq!(miner.template(b), None);
    assert!(miner.template(a).is_some());
    let stats = miner.stats();
    assert_eq!((stats.templates, stats.learned, stats.evicted), (2, 3, 1));
    // Relearned, an evicted template gets its old id back: it is the hash
    // of the same text.
    assert_eq!(id_of(&mut miner, "beta thing broke down badly"), b);
}

#[test]
fn memory_stays_bounded_under_a_flood_of_new_templates() {
    let config = MinerConfig {
        max_templates: 100,
        ..MinerConfig::default()
    };
    let mut miner = miner_with(config);
    // Letters h..w only, so no masking class takes a word for a value.
    let word = |i: u64| -> String {
        let mixed = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (0..8)
            .map(|k| (b'h' + ((mixed >> (4 * k)) & 15) as u8) as char)
            .collect()
    };
    let line = |i: u64| format!("{} {} {} happened", word(i), word(i + 1), word(i + 2));
    for i in 0..100 {
        miner.observe(&line(i * 3));
    }
    let full = miner.memory_bytes();
    for i in 100..10_100 {
        miner.observe(&line(i * 3));
    }
    let stats = miner.stats();
    assert_eq!(stats.templates, 100);
    assert!(stats.evicted >= 9_000, "{stats:?}");
    assert!(
        miner.memory_bytes() < 2 * full,
        "{} bytes after the flood, {full} at the cap",
        miner.memory_bytes()
    );
}

#[test]
fn a_restored_miner_gives_the_same_ids_and_templates_as_the_original() {
    let mut original = miner();
    for line in [
        "user alice logged in from 10.0.0.1",
        "user bob logged in from 10.0.0.2",
        "disk sda1 at 91% capacity",
    ] {
        original.observe(line);
    }
    let mut restored = Miner::restore(&original.save()).expect("restores");
    assert_eq!(restored.stats(), original.stats());
    for line in [
        "user carol logged in from 10.0.0.3",
        "disk sdb2 at 12% capacity",
        "a kind of line never seen before",
    ] {
        let (a, b) = (original.observe(line), restored.observe(line));
        assert_eq!(a, b);
    }
    assert_eq!(original.save(), restored.save());
}

#[test]
fn restoring_with_a_smaller_cap_keeps_the_most_recently_used() {
    let mut miner = miner();
    let old = id_of(&mut miner, "old kind of line");
    let recent = id_of(&mut miner, "recent kind of line here");
    let config = MinerConfig {
        max_templates: 1,
        ..MinerConfig::default()
    };
    let restored = Miner::restore_with(config, &miner.save()).expect("restores");
    assert_eq!(restored.template(old), None);
    assert!(restored.template(recent).is_some());
    assert_eq!(restored.stats().evicted, 1);
}

#[test]
fn restoring_with_another_tree_depth_refiles_every_template() {
    let mut miner = miner();
    let id = id_of(&mut miner, "connection reset by peer 10.0.0.1");
    id_of(&mut miner, "connection reset by host 10.0.0.2");
    let config = MinerConfig {
        tree_depth: 4,
        ..MinerConfig::default()
    };
    let mut restored = Miner::restore_with(config, &miner.save()).expect("restores");
    assert_eq!(
        id_of(&mut restored, "connection reset by router 10.0.0.3"),
        id
    );
}

#[test]
fn restore_rejects_bad_state_with_an_error() {
    assert!(matches!(
        Miner::restore(b"not json"),
        Err(StateError::Decode(_))
    ));
    let mut miner = miner();
    miner.observe("one line");
    miner.observe("another kind of line");
    let good = String::from_utf8(miner.save()).expect("JSON is UTF-8");
    let wrong_format = good.replace("sidewatch.logpatterns.v1", "v0");
    assert!(matches!(
        Miner::restore(wrong_format.as_bytes()),
        Err(StateError::Format { .. })
    ));
    let first_id = miner.templates().next().expect("one").0.to_string();
    let second_id = miner.templates().nth(1).expect("two").0.to_string();
    let duplicated = good.replace(&second_id, &first_id);
    assert!(matches!(
        Miner::restore(duplicated.as_bytes()),
        Err(StateError::Template(_))
    ));
    let bad_config = good.replace("\"max_templates\":10000", "\"max_templates\":0");
    assert!(matches!(
        Miner::restore(bad_config.as_bytes()),
        Err(StateError::Config(_))
    ));
}

#[test]
fn config_validation_names_the_bad_setting() {
    let config = MinerConfig {
        similarity_threshold: 1.5,
        ..MinerConfig::default()
    };
    assert_eq!(
        config.validate().map_err(|e| e.to_string()),
        Err("similarity_threshold must be in [0, 1], got 1.5".to_string())
    );
    let config = MinerConfig {
        max_line_tokens: 0,
        ..MinerConfig::default()
    };
    assert_eq!(
        Miner::new(config).map(|_| ()).map_err(|e| e.to_string()),
        Err("max_line_tokens must be at least 1".to_string())
    );
    let config = MinerConfig {
        max_token_bytes: 1 << 20,
        ..MinerConfig::default()
    };
    assert_eq!(
        config.validate().map_err(|e| e.to_string()),
        Err("max_token_bytes must be at most 65536, got 1048576".to_string())
    );
}

/// Lines from a small vocabulary, so templates repeat and generalise.
fn log_line() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        Just("user".to_string()),
        Just("login".to_string()),
        Just("failed".to_string()),
        Just("from".to_string()),
        Just("disk".to_string()),
        Just("=".to_string()),
        "[a-z]{1,6}",
        (0u32..100_000).prop_map(|n| n.to_string()),
        (0u8..=255, 0u8..=255).prop_map(|(a, b)| format!("10.0.{a}.{b}:80")),
        "0x[0-9a-f]{4,8}",
        "[ -~]{1,8}",
    ];
    prop::collection::vec(word, 0..12).prop_map(|words| words.join(" "))
}

proptest! {
    // Each case feeds up to a hundred lines through a debug build; 64 cases
    // per property keep the module's tests within seconds.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn observe_never_panics_and_bounds_its_template(line in any::<String>()) {
        let config = MinerConfig { max_line_tokens: 16, max_token_bytes: 32, ..MinerConfig::default() };
        let mut miner = miner_with(config);
        let m = miner.observe(&line);
        prop_assert!(m.template.split(' ').count() <= 16);
    }

    #[test]
    fn any_sequence_of_lines_is_taken_without_panic(lines in prop::collection::vec(any::<String>(), 1..30)) {
        let mut miner = miner_with(MinerConfig { max_templates: 4, ..MinerConfig::default() });
        for line in &lines {
            miner.observe(line);
        }
        let restored = Miner::restore(&miner.save()).expect("restores");
        prop_assert_eq!(restored.stats(), miner.stats());
    }

    #[test]
    fn restore_of_damaged_state_errs_or_works_but_never_panics(
        lines in prop::collection::vec(log_line(), 1..20),
        cut in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut miner = miner();
        for line in &lines {
            miner.observe(line);
        }
        let mut state = miner.save();
        let at = cut.index(state.len());
        state[at] = byte;
        if let Ok(mut restored) = Miner::restore(&state) {
            for line in &lines {
                restored.observe(line);
            }
        }
        prop_assert!(Miner::restore(&state[..at]).is_err() || at == state.len());
    }

    #[test]
    fn the_same_lines_give_the_same_results(lines in prop::collection::vec(log_line(), 1..60)) {
        let (mut a, mut b) = (miner(), miner());
        for line in &lines {
            let (ma, mb) = (a.observe(line), b.observe(line));
            prop_assert_eq!(ma, mb);
        }
    }

    #[test]
    fn a_restored_miner_continues_exactly(
        before in prop::collection::vec(log_line(), 0..40),
        after in prop::collection::vec(log_line(), 1..40),
        cap in 1usize..8,
    ) {
        let mut original = miner_with(MinerConfig { max_templates: cap, ..MinerConfig::default() });
        for line in &before {
            original.observe(line);
        }
        let mut restored = Miner::restore(&original.save()).expect("restores");
        for line in &after {
            let (a, b) = (original.observe(line), restored.observe(line));
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn every_line_fits_the_template_it_is_given(lines in prop::collection::vec(log_line(), 1..60)) {
        let mut miner = miner();
        let config = miner.config().clone();
        for line in &lines {
            let tokens = super::tokenize::tokenize(line, &config.masking, miner.limits());
            let tokens: Vec<String> = tokens.iter().map(|t| t.text.to_string()).collect();
            let m = miner.observe(line);
            let template: Vec<&str> = if m.template.is_empty() { vec![] } else { m.template.split(' ').collect() };
            prop_assert_eq!(template.len(), tokens.len());
            for (t, l) in template.iter().zip(&tokens) {
                prop_assert!(*t == "<*>" || t == l, "{} does not fit {}", m.template, line);
            }
        }
    }

    #[test]
    fn the_template_cap_always_holds(lines in prop::collection::vec(log_line(), 1..100), cap in 1usize..5) {
        let mut miner = miner_with(MinerConfig { max_templates: cap, ..MinerConfig::default() });
        for line in &lines {
            miner.observe(line);
            let stats = miner.stats();
            prop_assert!(stats.templates <= cap);
            prop_assert_eq!(stats.learned - stats.evicted - stats.merged, stats.templates as u64);
        }
    }
}
