//! The book of acknowledgements and silences one alert connector honours
//! (the alerts API writes it, the engine asks it through [`Gate`]):
//!
//! - an acknowledgement holds for the alert's current [`Episode`]: it
//!   mutes the alert's repeats and held-back fires until the alert resolves
//!   or changes severity, which start a new episode, so it needs no clean-up
//!   to end;
//! - a silence mutes every alert its matchers match (Alertmanager's
//!   semantics: every matcher must match, a missing label is the empty
//!   string, regexes match the whole value) from `startsAt` to `endsAt`.
//!
//! Pure: times are unix seconds passed in; `encode`/`decode` give the
//! file's bytes, which `super::live` writes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::engine::Labels;
use super::gate::{Candidate, Episode, Gate};
use super::matcher::Matcher;

/// Expired silences stay listed this long, then are forgotten
/// (Alertmanager keeps them 120 h; a day is enough to see what ended).
pub const EXPIRED_RETENTION: f64 = 24.0 * 3600.0;

/// One matcher as Alertmanager's API writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: f64,
    pub ends_at: f64,
    pub comment: String,
    pub created_by: String,
    #[serde(skip)]
    compiled: Vec<Matcher>,
}

impl Silence {
    /// Checks and compiles the matchers: at least one, and at least one
    /// that does not match the empty string (else the silence would mute
    /// every alert without the label), as Alertmanager requires.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        matchers: Vec<SilenceMatcher>,
        starts_at: f64,
        ends_at: f64,
        comment: String,
        created_by: String,
    ) -> Result<Silence, String> {
        if matchers.is_empty() {
            return Err("matchers: at least one matcher is needed".to_string());
        }
        let mut compiled = Vec::new();
        for (i, m) in matchers.iter().enumerate() {
            compiled.push(
                Matcher::from_parts(&m.name, &m.value, m.is_regex, m.is_equal)
                    .map_err(|e| format!("matchers[{i}]: {e}"))?,
            );
        }
        let empty = Labels::new();
        if compiled.iter().all(|m| m.matches(&empty)) {
            return Err(
                "matchers: at least one matcher must not match the empty string, or the silence would mute every alert without that label"
                    .to_string(),
            );
        }
        // NaN compares as neither: refused too.
        if ends_at.partial_cmp(&starts_at) != Some(std::cmp::Ordering::Greater) {
            return Err("endsAt must be after startsAt".to_string());
        }
        Ok(Silence {
            id,
            matchers,
            starts_at,
            ends_at,
            comment,
            created_by,
            compiled,
        })
    }

    pub fn is_active(&self, now: f64) -> bool {
        self.starts_at <= now && now < self.ends_at
    }

    /// `pending`, `active` or `expired`, as Alertmanager says.
    pub fn state(&self, now: f64) -> &'static str {
        if now < self.starts_at {
            "pending"
        } else if now < self.ends_at {
            "active"
        } else {
            "expired"
        }
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.compiled.iter().all(|m| m.matches(labels))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Acknowledgement {
    pub episode: Episode,
    pub by: String,
    pub comment: String,
    pub at: f64,
}

#[derive(Debug, Default)]
pub struct Book {
    silences: Vec<Silence>,
    /// By alert fingerprint.
    acknowledgements: BTreeMap<String, Acknowledgement>,
}

/// The file's form.
#[derive(Serialize, Deserialize)]
struct Saved {
    silences: Vec<Silence>,
    acknowledgements: BTreeMap<String, Acknowledgement>,
}

impl Book {
    pub fn add_silence(&mut self, silence: Silence) {
        self.silences.push(silence);
    }

    /// Ends a silence now (it stays listed as expired, as in
    /// Alertmanager); false when there is no such silence or it already
    /// ended.
    pub fn expire_silence(&mut self, id: &str, now: f64) -> bool {
        match self.silences.iter_mut().find(|s| s.id == id) {
            Some(s) if s.ends_at > now => {
                s.ends_at = now;
                s.starts_at = s.starts_at.min(now);
                true
            }
            _ => false,
        }
    }

    pub fn silences(&self) -> &[Silence] {
        &self.silences
    }

    /// Ids of the active silences matching `labels`.
    pub fn silenced_by(&self, labels: &Labels, now: f64) -> Vec<String> {
        self.silences
            .iter()
            .filter(|s| s.is_active(now) && s.matches(labels))
            .map(|s| s.id.clone())
            .collect()
    }

    pub fn acknowledge(&mut self, fingerprint: &str, acknowledgement: Acknowledgement) {
        self.acknowledgements
            .insert(fingerprint.to_string(), acknowledgement);
    }

    /// False when the alert was not acknowledged.
    pub fn unacknowledge(&mut self, fingerprint: &str) -> bool {
        self.acknowledgements.remove(fingerprint).is_some()
    }

    /// The acknowledgement that holds for `episode` of the alert.
    pub fn acknowledgement(&self, fingerprint: &str, episode: Episode) -> Option<&Acknowledgement> {
        self.acknowledgements
            .get(fingerprint)
            .filter(|a| a.episode == episode)
    }

    /// Forgets silences that expired [`EXPIRED_RETENTION`] ago.
    pub fn prune_silences(&mut self, now: f64) {
        self.silences
            .retain(|s| now - s.ends_at < EXPIRED_RETENTION);
    }

    /// Forgets acknowledgements whose episode is over (`current` gives an
    /// alert's episode now, `None` when it is no longer active).
    pub fn prune_acknowledgements(&mut self, current: impl Fn(&str) -> Option<Episode>) {
        self.acknowledgements
            .retain(|fingerprint, a| current(fingerprint) == Some(a.episode));
    }

    pub fn encode(&self) -> Vec<u8> {
        let saved = Saved {
            silences: self.silences.clone(),
            acknowledgements: self.acknowledgements.clone(),
        };
        // Strings, numbers and plain structs: serialising cannot fail.
        serde_json::to_vec_pretty(&saved).unwrap_or_default()
    }

    /// The book in `bytes`; a silence whose matchers no longer compile is
    /// left out and named in the error list.
    pub fn decode(bytes: &[u8]) -> Result<(Book, Vec<String>), String> {
        let saved: Saved = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let mut problems = Vec::new();
        let mut book = Book {
            silences: Vec::new(),
            acknowledgements: saved.acknowledgements,
        };
        for s in saved.silences {
            let id = s.id.clone();
            match Silence::new(
                s.id,
                s.matchers,
                s.starts_at,
                s.ends_at,
                s.comment,
                s.created_by,
            ) {
                Ok(silence) => book.silences.push(silence),
                Err(e) => problems.push(format!("silence {id}: {e}")),
            }
        }
        Ok((book, problems))
    }
}

impl Gate for Book {
    fn is_open(&self) -> bool {
        self.silences.is_empty() && self.acknowledgements.is_empty()
    }

    fn mutes(&self, candidate: &Candidate<'_>) -> bool {
        self.acknowledgement(candidate.fingerprint, candidate.episode)
            .is_some()
            || self
                .silences
                .iter()
                .any(|s| s.is_active(candidate.now) && s.matches(candidate.labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::engine::Engine;
    use crate::alerting::event::Transition;
    use crate::alerting::rule::RuleConfig;

    fn matcher(name: &str, value: &str, is_regex: bool, is_equal: bool) -> SilenceMatcher {
        SilenceMatcher {
            name: name.into(),
            value: value.into(),
            is_regex,
            is_equal,
        }
    }

    fn silence(matchers: Vec<SilenceMatcher>, starts_at: f64, ends_at: f64) -> Silence {
        Silence::new(
            "s1".into(),
            matchers,
            starts_at,
            ends_at,
            "maintenance".into(),
            "ops".into(),
        )
        .unwrap()
    }

    fn engine(rule: &str) -> Engine {
        Engine::new(vec![
            yaml_serde::from_str::<RuleConfig>(rule)
                .unwrap()
                .compile()
                .unwrap(),
        ])
    }

    fn labels(host: &str) -> Labels {
        [("host".to_string(), host.to_string())]
            .into_iter()
            .collect()
    }

    /// Evaluates every minute over `minutes` with `value(minute)` for
    /// host `a`; (transition, severity, minute) of each event.
    fn run(
        e: &mut Engine,
        book: &Book,
        minutes: std::ops::Range<u32>,
        value: impl Fn(u32) -> f64,
    ) -> Vec<(Transition, &'static str, u32)> {
        let mut seen = Vec::new();
        for minute in minutes {
            let t = f64::from(minute) * 60.0;
            e.observe("m", &labels("a"), t, value(minute));
            for ev in e.evaluate_gated(t, book) {
                seen.push((ev.transition, ev.severity.as_str(), minute));
            }
        }
        seen
    }

    #[test]
    fn matchers_follow_alertmanager() {
        let all = |ms| silence(ms, 0.0, 10.0);
        let l: Labels = [("alertname", "Hot"), ("room", "server")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(all(vec![matcher("alertname", "Hot", false, true)]).matches(&l));
        assert!(
            !all(vec![
                matcher("alertname", "Hot", false, true),
                matcher("room", "server", false, false)
            ])
            .matches(&l)
        );
        assert!(
            all(vec![
                matcher("alertname", "Hot", false, true),
                matcher("room", "office", true, false)
            ])
            .matches(&l)
        );
        assert!(all(vec![matcher("room", "serv.*", true, true)]).matches(&l));
        assert!(
            !all(vec![matcher("room", "serv", true, true)]).matches(&l),
            "whole value"
        );
        assert!(
            all(vec![
                matcher("alertname", "Hot", false, true),
                matcher("rack", "", false, true)
            ])
            .matches(&l),
            "a missing label is the empty string"
        );
        assert!(
            !all(vec![
                matcher("alertname", "Hot", false, true),
                matcher("room", "office", false, true)
            ])
            .matches(&l),
            "every matcher must match"
        );
        let refused = |ms: Vec<SilenceMatcher>| {
            Silence::new("x".into(), ms, 0.0, 10.0, String::new(), String::new()).unwrap_err()
        };
        assert!(refused(vec![]).contains("at least one matcher"));
        assert!(refused(vec![matcher("room", ".*", true, true)]).contains("empty string"));
        assert!(refused(vec![matcher("room", "(", true, true)]).contains("regular expression"));
        assert!(
            Silence::new(
                "x".into(),
                vec![matcher("a", "b", false, true)],
                5.0,
                5.0,
                String::new(),
                String::new()
            )
            .unwrap_err()
            .contains("endsAt")
        );
    }

    #[test]
    fn a_silenced_fire_goes_out_when_the_silence_ends() {
        use Transition::{Fired, Resolved};
        let mut e = engine("{ name: Hot, metric: m, op: '>', warning: 10, repeat_interval: 2m }");
        let mut book = Book::default();
        book.add_silence(silence(
            vec![matcher("alertname", "Hot", false, true)],
            0.0,
            5.0 * 60.0,
        ));
        assert_eq!(
            run(&mut e, &book, 0..8, |m| if m < 7 { 15.0 } else { 1.0 }),
            vec![(Fired, "warning", 5), (Resolved, "warning", 7)],
            "muted from 0 to 5 (no repeats either); told at 5; resolved at 7"
        );
        // A fire muted and resolved within the silence ends silently.
        let mut e = engine("{ name: Hot, metric: m, op: '>', warning: 10 }");
        assert_eq!(
            run(&mut e, &book, 0..8, |m| if m < 2 { 15.0 } else { 1.0 }),
            vec![]
        );
    }

    #[test]
    fn a_silence_holds_a_severity_change_back_but_not_the_resolve_of_a_told_fire() {
        use Transition::{Fired, Resolved, SeverityChanged};
        let mut e = engine("{ name: Hot, metric: m, op: '>', warning: 10, critical: 20 }");
        let mut book = Book::default();
        let mut seen = run(&mut e, &book, 0..1, |_| 15.0);
        book.add_silence(silence(
            vec![matcher("host", "a", false, true)],
            60.0,
            4.0 * 60.0,
        ));
        seen.extend(run(&mut e, &book, 1..6, |m| if m < 5 { 25.0 } else { 1.0 }));
        assert_eq!(
            seen,
            vec![
                (Fired, "warning", 0),
                // Muted at 1..3, sent when the silence ends at 4.
                (SeverityChanged, "critical", 4),
                (Resolved, "critical", 5)
            ]
        );
        let mut e = engine("{ name: Hot, metric: m, op: '>', warning: 10 }");
        let mut seen = run(&mut e, &Book::default(), 0..1, |_| 15.0);
        seen.extend(run(&mut e, &book, 1..3, |_| 1.0));
        assert_eq!(
            seen,
            vec![(Fired, "warning", 0), (Resolved, "warning", 1)],
            "receivers told of a fire are told it ended, silence or not"
        );
    }

    #[test]
    fn an_acknowledgement_mutes_repeats_until_the_severity_changes() {
        use Transition::{Fired, Repeated, Resolved, SeverityChanged};
        let mut e = engine(
            "{ name: Hot, metric: m, op: '>', warning: 10, critical: 20, repeat_interval: 1m }",
        );
        let mut book = Book::default();
        let mut seen = run(&mut e, &book, 0..2, |_| 15.0);
        let alert = e.active_alerts().pop().unwrap();
        book.acknowledge(
            &alert.fingerprint,
            Acknowledgement {
                episode: alert.episode,
                by: "me".into(),
                comment: "looking".into(),
                at: 90.0,
            },
        );
        seen.extend(run(&mut e, &book, 2..9, |m| match m {
            0..5 => 15.0,
            5 | 6 => 25.0,
            7 => 15.0,
            _ => 1.0,
        }));
        assert_eq!(
            seen,
            vec![
                (Fired, "warning", 0),
                (Repeated, "warning", 1),
                // Acknowledged at 1: no repeats at 2..4.
                (SeverityChanged, "critical", 5),
                (Repeated, "critical", 6),
                (SeverityChanged, "warning", 7),
                (Resolved, "warning", 8),
            ],
            "the acknowledgement ended with the severity change at 5 and does not come back at 7"
        );
    }

    #[test]
    fn the_book_survives_encoding_and_prunes_what_ended() {
        let mut book = Book::default();
        book.add_silence(silence(
            vec![matcher("alertname", "Hot", true, true)],
            0.0,
            10.0,
        ));
        let episode = Episode {
            active_at: 1.0,
            severity_since: 1.0,
        };
        book.acknowledge(
            "f1",
            Acknowledgement {
                episode,
                by: "me".into(),
                comment: String::new(),
                at: 2.0,
            },
        );
        let (back, problems) = Book::decode(&book.encode()).unwrap();
        assert!(problems.is_empty());
        assert_eq!(back.silences()[0].matchers, book.silences()[0].matchers);
        assert!(back.silences()[0].matches(&[("alertname".to_string(), "Hot".to_string())].into()));
        assert!(back.acknowledgement("f1", episode).is_some());
        let mut back = back;
        back.prune_silences(20.0);
        back.prune_acknowledgements(|_| Some(episode));
        assert_eq!(back.silences().len(), 1, "expired, still listed");
        assert!(back.acknowledgement("f1", episode).is_some());
        back.prune_silences(10.0 + EXPIRED_RETENTION);
        back.prune_acknowledgements(|_| None);
        assert!(back.silences().is_empty());
        assert!(back.acknowledgement("f1", episode).is_none());
    }
}
