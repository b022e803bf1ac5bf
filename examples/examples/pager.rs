//! Embedding `teflon-core` in another Rust controller, with an `Actuator` that pages a human
//! instead of reaping the pod.
//!
//! The host controller brings the two ports the engine needs:
//! - a [`ClusterView`]: here `Inventory`, the pods and workloads the controller already tracks
//!   (with kube-runtime reflectors in real life; a map here);
//! - an [`Actuator`]: here `Pager`, which writes one JSON page per planned action to any
//!   `Write` (stdout, a file; a real one would call PagerDuty/Opsgenie) and reports
//!   [`Outcome::Success`] because the page went out. No pod is touched.
//!
//! The engine still does everything else: policy matching, dedup, rate limits, the
//! availability guard, and the infection ledger.
//!
//! Run: `cargo run -p teflon-examples --example pager [-- pages.jsonl]`.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;

use teflon_core::{
    Actuator, ClusterView, Engine, Executed, Outcome, PlannedAction, PodInfo, PolicySet, Verdict,
    WorkloadKind, WorkloadRef, WorkloadStatus,
};

/// Page on shells and on anything Critical or worse; the action is what Teflon *would* do.
const POLICIES: &str = r#"
version: 1
defaults:
  dedup_window_secs: 300
policies:
  - name: page-on-shell
    match:
      rules: ["Terminal shell in container"]
    action: {type: delete}
  - name: page-on-critical
    match:
      priority: ">=Critical"
    action: {type: evict}
"#;

/// The host controller's own view of the cluster.
#[derive(Debug, Default)]
struct Inventory {
    pods: BTreeMap<(String, String), PodInfo>,
    workloads: BTreeMap<WorkloadRef, WorkloadStatus>,
}

impl Inventory {
    /// A Deployment with `replicas` Ready pods named `<pod_prefix>-0…`.
    fn deployment(mut self, namespace: &str, name: &str, pods: &[&str]) -> Self {
        let workload = WorkloadRef::new(WorkloadKind::Deployment, namespace, name);
        let count = u32::try_from(pods.len()).unwrap_or(u32::MAX);
        for pod in pods {
            let info = PodInfo {
                uid: Some(format!("uid-{pod}")),
                ready: true,
                workload: Some(workload.clone()),
            };
            self.pods
                .insert((namespace.to_owned(), (*pod).to_owned()), info);
        }
        self.workloads.insert(
            workload,
            WorkloadStatus {
                desired: count,
                available: count,
            },
        );
        self
    }
}

impl ClusterView for Inventory {
    fn pod(&self, namespace: &str, name: &str) -> Option<PodInfo> {
        self.pods
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    fn workload(&self, workload: &WorkloadRef) -> Option<WorkloadStatus> {
        self.workloads.get(workload).copied()
    }

    fn disruptions_allowed(&self, _namespace: &str, _pod: &str) -> Option<i32> {
        None
    }
}

/// An `Actuator` that pages instead of acting: one JSON line per planned action.
#[derive(Debug)]
struct Pager<W> {
    out: Mutex<W>,
}

impl<W: Write + Send> Pager<W> {
    fn new(out: W) -> Self {
        Pager {
            out: Mutex::new(out),
        }
    }

    fn page(&self, action: &PlannedAction) -> Outcome {
        let page = serde_json::json!({
            "severity": if action.alert.priority >= teflon_core::Priority::Critical { "critical" } else { "warning" },
            "summary": format!(
                "{} in {}/{}: Teflon policy {} would {} it",
                action.alert.rule, action.pod.namespace, action.pod.name, action.policy, action.action.kind()
            ),
            "pod": {"namespace": action.pod.namespace, "name": action.pod.name, "uid": action.pod.uid},
            "workload": action.workload.as_ref().map(ToString::to_string),
            "rule": action.alert.rule,
            "priority": action.alert.priority,
            "alert_time": action.alert.time,
            "output": action.alert.output,
        });
        let Ok(mut out) = self.out.lock() else {
            return Outcome::Failed("pager output poisoned".to_owned());
        };
        match writeln!(out, "{page}").and_then(|()| out.flush()) {
            Ok(()) => Outcome::Success,
            Err(e) => Outcome::Failed(format!("page not sent: {e}")),
        }
    }
}

impl<W: Write + Send> Actuator for Pager<W> {
    fn execute(&self, action: &PlannedAction) -> impl Future<Output = Executed> + Send {
        // Writing a line is synchronous; a real pager would await an HTTP call here (and
        // retry it until `action.deadline`, reporting the attempts).
        let executed = Executed::from(self.page(action));
        async move { executed }
    }
}

/// What one run did.
#[derive(Debug, Default, PartialEq, Eq)]
struct Summary {
    decisions: usize,
    pages: usize,
}

/// The host controller's alert handler: decide, execute what the engine planned, feed the
/// outcome back so the engine's ledger stays right.
async fn handle(
    engine: &mut Engine,
    inventory: &Inventory,
    pager: &impl Actuator,
    alerts: Vec<teflon_core::Alert>,
) -> Summary {
    let mut summary = Summary::default();
    for alert in alerts {
        let now = alert.time;
        for decision in engine.decide(alert, inventory, now) {
            summary.decisions += 1;
            if let Some(plan) = decision
                .plan
                .as_ref()
                .filter(|_| decision.verdict == Verdict::Act)
            {
                let outcome = pager.execute(plan).await.outcome;
                if outcome == Outcome::Success {
                    summary.pages += 1;
                }
                engine.record(plan.id, &outcome, now);
            }
        }
    }
    summary
}

fn alerts() -> Vec<teflon_core::Alert> {
    let alert = teflon_falco::parse_alert(include_bytes!(
        "../fixtures/03-terminal-shell-deployment-pod.json"
    ))
    .unwrap_or_else(|e| panic!("fixture 03 parses: {e}"));
    // The same shell alert twice: the second is a duplicate, so one page only.
    vec![alert.clone(), alert]
}

async fn run(out: impl Write + Send) -> Summary {
    let policies = PolicySet::parse(POLICIES, "pager-policies.yaml")
        .unwrap_or_else(|e| panic!("the example's policies parse: {e}"));
    let mut engine = Engine::new(policies);
    let inventory = Inventory::default().deployment(
        "default",
        "alpine-deployment",
        &[
            "alpine-deployment-77789455d6-m7flp",
            "alpine-deployment-77789455d6-x2x9q",
        ],
    );
    handle(&mut engine, &inventory, &Pager::new(out), alerts()).await
}

fn main() -> std::io::Result<()> {
    // A current-thread runtime is all an embedding needs.
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let summary = match std::env::args_os().nth(1) {
        Some(path) => runtime.block_on(run(std::fs::File::create(path)?)),
        None => runtime.block_on(run(std::io::stdout())),
    };
    eprintln!("{} decisions, {} pages", summary.decisions, summary.pages);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shell_alert_pages_once_and_touches_no_pod() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let mut out = Vec::new();
        let summary = runtime.block_on(run(&mut out));
        assert_eq!(
            summary,
            Summary {
                decisions: 2,
                pages: 1
            }
        );
        let text = String::from_utf8(out).expect("UTF-8");
        let pages: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON page"))
            .collect();
        assert_eq!(pages.len(), 1);
        assert_eq!(
            pages[0]["pod"]["name"],
            "alpine-deployment-77789455d6-m7flp"
        );
        assert_eq!(
            pages[0]["pod"]["uid"],
            "uid-alpine-deployment-77789455d6-m7flp"
        );
        assert_eq!(pages[0]["rule"], "Terminal shell in container");
        assert_eq!(pages[0]["severity"], "warning");
        assert!(
            pages[0]["summary"]
                .as_str()
                .expect("a summary")
                .contains("would delete")
        );
    }

    #[test]
    fn main_writes_the_page_to_the_given_file() {
        let dir = std::env::temp_dir().join(format!("teflon-pager-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let path = dir.join("pages.jsonl");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let file = std::fs::File::create(&path).expect("a file");
        runtime.block_on(run(file));
        let text = std::fs::read_to_string(&path).expect("pages written");
        assert_eq!(text.lines().count(), 1);
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }
}
