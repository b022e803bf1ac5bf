//! Running the engine over saved Falco alerts, in-process: what `teflon replay` does, in a
//! page of code, for your own tests or tools.
//!
//! The alerts are the 20 real Falco alerts of `fixtures/falco-alerts.jsonl` (JSON Lines, as
//! Falco's `json_output` writes them), parsed by `teflon-falco`. The cluster is a toy
//! `ClusterView` in the spirit of `teflon replay` without `--cluster`: every targeted pod
//! exists, is Ready, and is one of 3 replicas of its own workload; a reaped pod is gone and
//! its workload has one replica less. Decisions print as JSON Lines in the replay format.
//!
//! Run: `cargo run -p teflon-examples --example replay_in_process`.

use std::collections::BTreeSet;
use std::io::Write;

use teflon_core::{
    ClusterView, Decision, DecisionRecord, Engine, Outcome, PodInfo, PolicySet, Verdict,
    WorkloadKind, WorkloadRef, WorkloadStatus,
};

const ALERTS: &str = include_str!("../fixtures/falco-alerts.jsonl");

const POLICIES: &str = r#"
version: 1
policies:
  - name: reap-shells
    match:
      rules: ["Terminal shell in container"]
      priority: ">=Notice"
    action: {type: delete, grace_period_secs: 0}
  - name: evict-sensitive-reads
    match:
      rules: ["Read sensitive file untrusted"]
    action: {type: evict}
  - name: log-the-rest
    match:
      priority: ">=Warning"
    action: {type: log}
"#;

/// Every pod is one of 3 Ready replicas of a workload named after it, until reaped.
#[derive(Debug, Default)]
struct AssumedHealthy {
    reaped: BTreeSet<(String, String)>,
}

impl AssumedHealthy {
    fn workload_of(namespace: &str, pod: &str) -> WorkloadRef {
        WorkloadRef::new(WorkloadKind::Unknown, namespace, pod)
    }
}

impl ClusterView for AssumedHealthy {
    fn pod(&self, namespace: &str, name: &str) -> Option<PodInfo> {
        let gone = self
            .reaped
            .contains(&(namespace.to_owned(), name.to_owned()));
        (!gone).then(|| PodInfo {
            uid: None,
            ready: true,
            workload: Some(Self::workload_of(namespace, name)),
        })
    }

    fn workload(&self, workload: &WorkloadRef) -> Option<WorkloadStatus> {
        let reaped = self
            .reaped
            .contains(&(workload.namespace.clone(), workload.name.clone()));
        Some(WorkloadStatus {
            desired: 3,
            available: if reaped { 2 } else { 3 },
        })
    }

    fn disruptions_allowed(&self, _namespace: &str, _pod: &str) -> Option<i32> {
        None
    }
}

/// Replay `alerts` (JSON, array or JSON Lines) and write one record per decision to `out`.
/// Returns the records and the number of malformed lines skipped.
fn replay(alerts: &str, out: &mut impl Write) -> std::io::Result<(Vec<DecisionRecord>, usize)> {
    let policies = PolicySet::parse(POLICIES, "replay-policies.yaml")
        .unwrap_or_else(|e| panic!("the example's policies parse: {e}"));
    let mut engine = Engine::new(policies);
    let mut cluster = AssumedHealthy::default();
    let mut records = Vec::new();
    let mut malformed = 0;
    for item in teflon_falco::alerts_from_slice(alerts.as_bytes()) {
        let alert = match item {
            Ok(alert) => alert,
            Err(e) => {
                eprintln!("skipping: {e}");
                malformed += 1;
                continue;
            }
        };
        let now = alert.time;
        let decisions: Vec<Decision> = engine.decide(alert, &cluster, now);
        for decision in decisions {
            // Execute in the toy cluster: a disruptive action removes the pod at once.
            if let Some(plan) = decision
                .plan
                .as_ref()
                .filter(|_| decision.verdict == Verdict::Act)
            {
                if decision.is_disruptive_act() {
                    cluster
                        .reaped
                        .insert((plan.pod.namespace.clone(), plan.pod.name.clone()));
                }
                engine.record(plan.id, &Outcome::Success, now);
            }
            let record = decision.record();
            serde_json::to_writer(&mut *out, &record)?;
            writeln!(out)?;
            records.push(record);
        }
    }
    Ok((records, malformed))
}

fn main() -> std::io::Result<()> {
    let (records, malformed) = replay(ALERTS, &mut std::io::stdout().lock())?;
    eprintln!("{} decisions, {malformed} malformed lines", records.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use teflon_core::{ActionKind, Reason};

    #[test]
    fn the_saved_alerts_replay_into_one_decision_each_and_reap_the_shells() {
        let mut out = Vec::new();
        let (records, malformed) = replay(ALERTS, &mut out).expect("written");
        assert_eq!(malformed, 0);
        assert_eq!(
            records.len(),
            ALERTS.lines().count(),
            "no policy continues: one decision each"
        );
        assert_eq!(
            String::from_utf8(out).expect("UTF-8").lines().count(),
            records.len()
        );

        let kubecon = records
            .iter()
            .find(|r| r.target.as_ref().is_some_and(|t| t.pod == "kubecon"))
            .expect("fixture 01 targets pod default/kubecon");
        assert_eq!(kubecon.policy.as_deref(), Some("reap-shells"));
        assert_eq!(
            (kubecon.verdict, kubecon.action),
            (Verdict::Act, Some(ActionKind::Delete))
        );
        assert_eq!(kubecon.reason, Reason::Matched);

        // Alerts about the host or the control plane match nothing that needs a pod.
        assert!(records.iter().any(|r| r.reason == Reason::NoMatch));
        assert!(records.iter().all(|r| r.reason != Reason::PodNotFound));
    }

    #[test]
    fn a_malformed_line_is_skipped_and_counted() {
        let input = format!("{{not json\n{}", ALERTS.lines().next().expect("one alert"));
        let (records, malformed) = replay(&input, &mut std::io::sink()).expect("written");
        assert_eq!((records.len(), malformed), (1, 1));
    }
}
