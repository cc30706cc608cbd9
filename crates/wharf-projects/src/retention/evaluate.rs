//! Which artifacts of a repository a policy keeps: pure functions over
//! candidates, so the verdicts are the same in a dry run and a real run and
//! can be tested without a database.

use chrono::{DateTime, Duration, Utc};

use super::policy::{Rule, Template};

/// An artifact of a repository, as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The artifact id (its manifest row).
    pub id: i64,
    /// Its digest.
    pub digest: String,
    /// Its tags (empty: untagged).
    pub tags: Vec<String>,
    /// When it or one of its tags was last pushed.
    pub push_time: DateTime<Utc>,
    /// When it or one of its tags was last pulled (`None`: never).
    pub pull_time: Option<DateTime<Utc>>,
}

impl Candidate {
    /// The later of its push and pull times.
    fn active_time(&self) -> DateTime<Utc> {
        self.pull_time
            .map_or(self.push_time, |pulled| pulled.max(self.push_time))
    }
}

/// What the rules decided about one candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Kept by these rules (ids, in rule order).
    Retain(Vec<i64>),
    /// No rule keeps it.
    Delete,
}

/// The verdict of each candidate (in the order given) under `rules` (the
/// enabled rules that apply to the repository) at `now`: each rule keeps
/// what its template picks among the candidates its tag selectors select,
/// and a candidate is kept when any rule keeps it. Ties in the `latest...`
/// templates go to the later push, then the higher id, so the choice is
/// the same on every run.
pub fn evaluate(rules: &[&Rule], candidates: &[Candidate], now: DateTime<Utc>) -> Vec<Verdict> {
    let mut kept_by: Vec<Vec<i64>> = vec![Vec::new(); candidates.len()];
    for rule in rules {
        let selected: Vec<usize> = (0..candidates.len())
            .filter(|&i| rule.selects_tags(&candidates[i].tags))
            .collect();
        for i in pick(rule.template, candidates, selected, now) {
            kept_by[i].push(rule.id);
        }
    }
    kept_by
        .into_iter()
        .map(|rules| {
            if rules.is_empty() {
                Verdict::Delete
            } else {
                Verdict::Retain(rules)
            }
        })
        .collect()
}

/// The indexes of `selected` that `template` keeps.
fn pick(
    template: Template,
    candidates: &[Candidate],
    mut selected: Vec<usize>,
    now: DateTime<Utc>,
) -> Vec<usize> {
    let newest_push = |a: &usize, b: &usize| {
        let (a, b) = (&candidates[*a], &candidates[*b]);
        b.push_time.cmp(&a.push_time).then(b.id.cmp(&a.id))
    };
    let since = |days: u32| now - Duration::days(i64::from(days));
    match template {
        Template::Always => selected,
        Template::LatestPushedK(k) => {
            selected.sort_by(newest_push);
            selected.truncate(k as usize);
            selected
        }
        Template::LatestPulledN(n) => {
            // `None < Some`, so reversing puts never-pulled ones last.
            selected.sort_by(|a, b| {
                candidates[*b]
                    .pull_time
                    .cmp(&candidates[*a].pull_time)
                    .then_with(|| newest_push(a, b))
            });
            selected.truncate(n as usize);
            selected
        }
        Template::LatestActiveK(k) => {
            selected.sort_by(|a, b| {
                candidates[*b]
                    .active_time()
                    .cmp(&candidates[*a].active_time())
                    .then_with(|| newest_push(a, b))
            });
            selected.truncate(k as usize);
            selected
        }
        Template::NDaysSinceLastPush(n) => {
            let cutoff = since(n);
            selected.retain(|&i| candidates[i].push_time >= cutoff);
            selected
        }
        Template::LastXDays(x) => {
            let cutoff = since(x);
            selected.retain(|&i| candidates[i].push_time > cutoff);
            selected
        }
        Template::NDaysSinceLastPull(n) => {
            let cutoff = since(n);
            selected.retain(|&i| candidates[i].pull_time.is_some_and(|t| t >= cutoff));
            selected
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retention::policy::{PolicyDocument, PolicySpec};
    use serde_json::{Value, json};

    fn policy(rules: Value) -> PolicySpec {
        let doc: PolicyDocument = serde_json::from_value(json!({
            "algorithm": "or",
            "rules": rules,
            "trigger": {"kind": "Schedule", "settings": {"cron": ""}},
            "scope": {"level": "project", "ref": 1},
        }))
        .unwrap();
        PolicySpec::parse(&doc).unwrap()
    }

    fn rule(template: &str, n: Option<u32>, tags: &str, extras: &str) -> Value {
        let params = match n {
            Some(n) => json!({ template: n }),
            None => json!({}),
        };
        json!({
            "action": "retain", "template": template, "params": params,
            "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": tags, "extras": extras}],
            "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]},
        })
    }

    fn now() -> DateTime<Utc> {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    fn c(id: i64, tags: &[&str], pushed_days_ago: i64, pulled_days_ago: Option<i64>) -> Candidate {
        Candidate {
            id,
            digest: format!("sha256:{id}"),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            push_time: now() - Duration::days(pushed_days_ago),
            pull_time: pulled_days_ago.map(|d| now() - Duration::days(d)),
        }
    }

    fn kept(spec: &PolicySpec, candidates: &[Candidate]) -> Vec<i64> {
        let rules = spec.rules_for("app");
        evaluate(&rules, candidates, now())
            .iter()
            .zip(candidates)
            .filter(|(v, _)| matches!(v, Verdict::Retain(_)))
            .map(|(_, c)| c.id)
            .collect()
    }

    #[test]
    fn each_template_keeps_what_it_says() {
        let cs = [
            c(1, &["v1"], 30, Some(1)),
            c(2, &["v2"], 20, None),
            c(3, &["v3"], 10, Some(20)),
            c(4, &["release-1"], 40, None),
            c(5, &[], 2, None),
        ];
        let k = |r: Value| kept(&policy(json!([r])), &cs);
        assert_eq!(k(rule("latestPushedK", Some(2), "**", "")), vec![3, 5]);
        assert_eq!(
            k(rule(
                "latestPushedK",
                Some(2),
                "**",
                r#"{"untagged":false}"#
            )),
            vec![2, 3]
        );
        assert_eq!(
            k(rule("latestPushedK", Some(0), "**", "")),
            Vec::<i64>::new()
        );
        assert_eq!(k(rule("latestPulledN", Some(1), "**", "")), vec![1]);
        // Fills up with never-pulled ones, newest push first, as Harbor does.
        assert_eq!(k(rule("latestPulledN", Some(3), "**", "")), vec![1, 3, 5]);
        assert_eq!(k(rule("latestActiveK", Some(2), "**", "")), vec![1, 5]);
        assert_eq!(
            k(rule("nDaysSinceLastPush", Some(20), "**", "")),
            vec![2, 3, 5]
        );
        assert_eq!(k(rule("lastXDays", Some(20), "**", "")), vec![3, 5]);
        assert_eq!(k(rule("nDaysSinceLastPull", Some(7), "**", "")), vec![1]);
        assert_eq!(k(rule("always", None, "release-*", "")), vec![4, 5]);
        assert_eq!(
            k(rule("always", None, "release-*", r#"{"untagged":false}"#)),
            vec![4]
        );
    }

    #[test]
    fn rules_are_ored_and_report_who_kept_what() {
        let cs = [
            c(1, &["v1"], 30, Some(1)),
            c(2, &["release-2"], 50, None),
            c(3, &["v3"], 40, None),
        ];
        let spec = policy(json!([
            rule("nDaysSinceLastPull", Some(7), "**", ""),
            rule("always", None, "release-*", ""),
            rule("latestPushedK", Some(1), "v*", ""),
        ]));
        let verdicts = evaluate(&spec.rules_for("app"), &cs, now());
        assert_eq!(
            verdicts,
            vec![
                Verdict::Retain(vec![1, 3]),
                Verdict::Retain(vec![2]),
                Verdict::Delete
            ]
        );
    }

    #[test]
    fn ties_go_to_the_later_push_then_the_higher_id() {
        let cs = [
            c(1, &["a"], 5, None),
            c(2, &["b"], 5, None),
            c(3, &["c"], 9, None),
        ];
        assert_eq!(
            kept(
                &policy(json!([rule("latestPushedK", Some(1), "**", "")])),
                &cs
            ),
            vec![2]
        );
    }

    #[test]
    fn disabled_rules_keep_nothing() {
        let mut r = rule("always", None, "**", "");
        r["disabled"] = json!(true);
        let spec = policy(json!([r]));
        assert!(spec.rules_for("app").is_empty());
    }
}
