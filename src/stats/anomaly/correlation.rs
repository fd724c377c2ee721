//! Correlated incidents: per-series incidents that start within `window`
//! of each other on the same resource (the values of the `by` labels, for
//! example one `host.name`) are one correlated incident, because a person
//! acts on "host a: CPU spike and memory jump", not on two pages.
//!
//! The first incident opens a correlated incident; an incident on the same
//! resource that starts within `window` of that opening joins it (an
//! update); one that starts later opens a new one, so a correlated incident
//! never grows without bound. It closes once every member's incident has
//! ended and the window has passed (until then a new incident may still
//! join, so a CPU spike that ends before the memory jump starts is still
//! one incident with it). Pure state, no I/O: the `anomaly` connector turns the changes
//! into events.

use std::collections::HashMap;

/// One series' part in a correlated incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub metric: String,
    /// The series: metric name and all its labels.
    pub series: String,
    pub started_at: i64,
    pub value: f64,
    pub expected: f64,
    pub zscore: f64,
    pub score: f64,
    pub ended_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Correlated {
    /// The resource: (label, value) of each `by` label the series has.
    pub resource: Vec<(String, String)>,
    /// The opening incident's start, unix seconds: with the resource, the
    /// correlated incident's identity.
    pub opened_at: i64,
    pub members: Vec<Member>,
    pub closed_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CorrelationChange {
    Opened(Correlated),
    /// A member joined: the whole incident as it now stands.
    Updated(Correlated),
    Closed(Correlated),
}

#[derive(Debug, Default)]
pub struct Correlator {
    window_seconds: i64,
    /// Open correlated incidents by resource key, oldest first.
    open: HashMap<String, Vec<Correlated>>,
    /// Open ones whose members have all ended, waiting for the window.
    ending: usize,
}

/// The resource key of a series: its `by` labels, in the order given.
pub fn resource_key(resource: &[(String, String)]) -> String {
    let mut key = String::new();
    for (k, v) in resource {
        key.push_str(k);
        key.push('\u{1f}');
        key.push_str(v);
        key.push('\u{1e}');
    }
    key
}

impl Correlator {
    pub fn new(window_seconds: i64) -> Self {
        Correlator {
            window_seconds: window_seconds.max(0),
            open: HashMap::new(),
            ending: 0,
        }
    }

    /// Correlated incidents open now.
    pub fn open_count(&self) -> usize {
        self.open.values().map(Vec::len).sum()
    }

    /// A series' incident started: it opens a correlated incident or
    /// joins the newest open one of its resource still within the window.
    pub fn started(
        &mut self,
        resource: Vec<(String, String)>,
        member: Member,
    ) -> CorrelationChange {
        let key = resource_key(&resource);
        let groups = self.open.entry(key).or_default();
        let window = self.window_seconds;
        if let Some(group) = groups
            .iter_mut()
            .rev()
            .find(|g| member.started_at >= g.opened_at && member.started_at - g.opened_at <= window)
        {
            // The same series again (its incident ended and restarted
            // within the window): one entry per series, the latest.
            if group.members.iter().all(|m| m.ended_at.is_some()) {
                self.ending -= 1;
            }
            group.members.retain(|m| m.series != member.series);
            group.members.push(member);
            return CorrelationChange::Updated(group.clone());
        }
        let group = Correlated {
            resource,
            opened_at: member.started_at,
            members: vec![member],
            closed_at: None,
        };
        groups.push(group.clone());
        CorrelationChange::Opened(group)
    }

    /// A series' incident ended at `at`: the correlated incident holding
    /// it closes if all its members have ended and its window has passed
    /// (otherwise [`Correlator::expire`] closes it later).
    pub fn ended(
        &mut self,
        resource: &[(String, String)],
        series: &str,
        at: i64,
    ) -> Option<CorrelationChange> {
        let key = resource_key(resource);
        let groups = self.open.get_mut(&key)?;
        let index = groups.iter().rposition(|g| {
            g.members
                .iter()
                .any(|m| m.series == series && m.ended_at.is_none())
        })?;
        let group = &mut groups[index];
        for m in group.members.iter_mut().filter(|m| m.series == series) {
            m.ended_at = Some(at);
        }
        if group.members.iter().any(|m| m.ended_at.is_none()) {
            return None;
        }
        if at - group.opened_at <= self.window_seconds {
            self.ending += 1;
            return None;
        }
        let mut closed = groups.remove(index);
        if groups.is_empty() {
            self.open.remove(&key);
        }
        closed.closed_at = Some(at);
        Some(CorrelationChange::Closed(closed))
    }

    /// Closes, at `now`, every correlated incident whose members have all
    /// ended and whose window has passed. Costs nothing while none waits.
    pub fn expire(&mut self, now: i64) -> Vec<CorrelationChange> {
        if self.ending == 0 {
            return Vec::new();
        }
        let window = self.window_seconds;
        let mut closed = Vec::new();
        self.open.retain(|_, groups| {
            groups.retain_mut(|g| {
                let done =
                    g.members.iter().all(|m| m.ended_at.is_some()) && now - g.opened_at > window;
                if done {
                    g.closed_at = Some(now);
                    closed.push(CorrelationChange::Closed(g.clone()));
                }
                !done
            });
            !groups.is_empty()
        });
        self.ending -= closed.len();
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str) -> Vec<(String, String)> {
        vec![("host.name".to_string(), name.to_string())]
    }

    fn member(metric: &str, at: i64) -> Member {
        Member {
            metric: metric.into(),
            series: format!("{metric}{{}}"),
            started_at: at,
            value: 1.0,
            expected: 0.0,
            zscore: 9.0,
            score: 1.0,
            ended_at: None,
        }
    }

    #[test]
    fn incidents_on_one_host_within_the_window_are_one() {
        let mut c = Correlator::new(120);
        assert!(matches!(
            c.started(host("a"), member("cpu", 1000)),
            CorrelationChange::Opened(_)
        ));
        match c.started(host("a"), member("memory", 1090)) {
            CorrelationChange::Updated(g) => {
                assert_eq!(g.opened_at, 1000);
                assert_eq!(g.members.len(), 2);
            }
            other => panic!("expected an update, got {other:?}"),
        }
        // Another host is another resource.
        assert!(matches!(
            c.started(host("b"), member("memory", 1090)),
            CorrelationChange::Opened(_)
        ));
        assert_eq!(c.open_count(), 2);
        assert_eq!(
            c.ended(&host("a"), "cpu{}", 1100),
            None,
            "memory still open"
        );
        assert_eq!(
            c.ended(&host("b"), "memory{}", 1100),
            None,
            "within the window"
        );
        assert_eq!(c.expire(1110), vec![], "b's window lasts to 1210");
        assert!(matches!(
            c.started(host("b"), member("cpu", 1200)),
            CorrelationChange::Updated(g) if g.members.len() == 2
        ));
        assert_eq!(c.ended(&host("b"), "cpu{}", 1205), None);
        assert!(
            matches!(&c.expire(1211)[..], [CorrelationChange::Closed(g)] if g.opened_at == 1090)
        );
        match c.ended(&host("a"), "memory{}", 1300) {
            Some(CorrelationChange::Closed(g)) => {
                assert_eq!(g.closed_at, Some(1300));
                assert!(g.members.iter().all(|m| m.ended_at.is_some()));
            }
            other => panic!("expected the close, got {other:?}"),
        }
        assert_eq!(c.open_count(), 0);
    }

    #[test]
    fn an_incident_after_the_window_opens_a_new_one() {
        let mut c = Correlator::new(120);
        c.started(host("a"), member("cpu", 1000));
        assert!(matches!(
            c.started(host("a"), member("memory", 1121)),
            CorrelationChange::Opened(g) if g.opened_at == 1121
        ));
        assert_eq!(c.open_count(), 2);
        // Each closes on its own member's end.
        assert!(matches!(
            c.ended(&host("a"), "memory{}", 1300),
            Some(CorrelationChange::Closed(g)) if g.opened_at == 1121
        ));
    }
}
