//! The attack model: attackers that infect a random available pod at exponential intervals,
//! seen through Falco-shaped alerts.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use teflon_core::{Alert, Fields, Priority, Target, Timestamp};

use crate::cluster::SimCluster;

/// Attackers: `count` independent attackers, each infecting a random available pod on average
/// every `mean_interval` (exponential inter-arrival times), deterministic for a `seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attackers {
    /// How many attackers.
    pub count: u32,
    /// Mean time between two infections by the same attacker.
    pub mean_interval: Duration,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Attackers {
    /// Start attacking at `start`: the first infection of each attacker comes one random
    /// interval later.
    pub fn start(&self, start: Timestamp) -> AttackStream {
        self.start_in(start, &[])
    }

    /// Attack only within `phases` (`[from, until)` each, in any order; none means always).
    /// Each attacker's infections are a Poisson process restricted to the phases: a phase
    /// starts afresh (the first infection one random interval after its start).
    pub fn start_in(&self, start: Timestamp, phases: &[(Timestamp, Timestamp)]) -> AttackStream {
        let mut phases: Vec<(Timestamp, Timestamp)> =
            phases.iter().copied().filter(|(a, b)| a < b).collect();
        phases.sort();
        let always = phases.is_empty();
        let mut timing: Vec<ChaCha8Rng> = (0..self.count)
            .map(|i| {
                let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
                rng.set_stream(u64::from(i) + 1);
                rng
            })
            .collect();
        let mean = self.mean_interval.max(Duration::from_millis(1));
        let from = if always {
            start
        } else {
            phases.first().map_or(start, |(a, _)| *a)
        };
        let next = timing
            .iter_mut()
            .map(|rng| {
                let first = from.plus(exponential(rng, mean));
                place(&phases, rng, mean, first)
            })
            .collect();
        let mut pick = ChaCha8Rng::seed_from_u64(self.seed);
        pick.set_stream(0);
        AttackStream {
            mean,
            phases,
            timing,
            next,
            pick,
            fired: 0,
        }
    }
}

/// Where an infection drawn for time `at` really happens: `at` inside a phase (or without
/// phases); else one fresh random interval after the start of the next phase; `None` after
/// the last phase.
fn place(
    phases: &[(Timestamp, Timestamp)],
    rng: &mut ChaCha8Rng,
    mean: Duration,
    mut at: Timestamp,
) -> Option<Timestamp> {
    if phases.is_empty() {
        return Some(at);
    }
    loop {
        if phases.iter().any(|(a, b)| *a <= at && at < *b) {
            return Some(at);
        }
        let (next_start, _) = phases.iter().find(|(a, _)| *a > at)?;
        at = next_start.plus(exponential(rng, mean));
    }
}

/// A running attack: when the next infection comes, and the alerts it produces.
///
/// Attack times depend only on the seed (each attacker has its own random stream), never on
/// the cluster, so two clusters attacked with the same seed see attacks at the same times.
#[derive(Debug, Clone)]
pub struct AttackStream {
    mean: Duration,
    phases: Vec<(Timestamp, Timestamp)>,
    timing: Vec<ChaCha8Rng>,
    next: Vec<Option<Timestamp>>,
    pick: ChaCha8Rng,
    fired: u64,
}

/// One infection.
#[derive(Debug, Clone, PartialEq)]
pub struct Attack {
    /// When it happened.
    pub at: Timestamp,
    /// The pod it hit was not infected before.
    pub new_infection: bool,
    /// The Falco alert that reports it, `None` when no pod was available to infect.
    pub alert: Option<Alert>,
}

impl AttackStream {
    /// When the next infection happens (`None` with no attackers, or after the last phase).
    pub fn next_time(&self) -> Option<Timestamp> {
        self.next.iter().flatten().copied().min()
    }

    /// Infections so far (including those that found no pod).
    pub fn fired(&self) -> u64 {
        self.fired
    }

    /// Carry out the next infection: pick a random Ready pod that belongs to a workload, mark it
    /// infected in `sim`, and return the Falco alert that reports it. `None` with no attackers.
    pub fn fire_next(&mut self, sim: &mut SimCluster) -> Option<Attack> {
        let (i, at) = self
            .next
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.map(|t| (i, t)))
            .min_by_key(|(i, t)| (*t, *i))?;
        if let (Some(rng), Some(slot)) = (self.timing.get_mut(i), self.next.get_mut(i)) {
            let drawn = at.plus(exponential(rng, self.mean));
            *slot = place(&self.phases, rng, self.mean, drawn);
        }
        self.fired += 1;
        // Draw the same amount of randomness whatever the cluster looks like, so runs with the
        // same seed stay in step.
        let pick: u64 = self.pick.random();
        let roll: u32 = self.pick.random_range(0..100);
        let container: u64 = self.pick.random();
        let pods = sim.all_available_pods();
        let mut new_infection = false;
        let alert = if pods.is_empty() {
            None
        } else {
            let (ns, pod) = &pods[(pick % pods.len() as u64) as usize];
            new_infection = !sim.is_infected(ns, pod);
            sim.infect(ns, pod);
            let uid = sim.pod_uid(ns, pod);
            Some(falco_alert(roll, container, ns, pod, uid, at))
        };
        Some(Attack {
            at,
            new_infection,
            alert,
        })
    }
}

/// An exponential inter-arrival time with the given mean.
fn exponential(rng: &mut ChaCha8Rng, mean: Duration) -> Duration {
    let u: f64 = rng.random();
    let x = -(1.0 - u).ln() * mean.as_secs_f64();
    Duration::try_from_secs_f64(x.max(0.000_001)).unwrap_or(mean)
}

struct RuleShape {
    rule: &'static str,
    priority: Priority,
    tags: &'static [&'static str],
    proc_name: &'static str,
    cmdline: &'static str,
    pname: &'static str,
}

/// Real Falco rules, shaped after the alerts in `shared/fixtures/falco`.
const RULES: [RuleShape; 4] = [
    RuleShape {
        rule: "Terminal shell in container",
        priority: Priority::Notice,
        tags: &["container", "mitre_execution", "shell"],
        proc_name: "sh",
        cmdline: "sh -c clear; (bash || ash || sh)",
        pname: "runc",
    },
    RuleShape {
        rule: "Read sensitive file untrusted",
        priority: Priority::Warning,
        tags: &[
            "T1555",
            "container",
            "filesystem",
            "host",
            "maturity_stable",
            "mitre_credential_access",
        ],
        proc_name: "cat",
        cmdline: "cat /etc/shadow",
        pname: "containerd-shim",
    },
    RuleShape {
        rule: "Write below binary dir",
        priority: Priority::Error,
        tags: &["filesystem", "mitre_persistence"],
        proc_name: "touch",
        cmdline: "touch /bin/hack",
        pname: "sh",
    },
    RuleShape {
        rule: "Contact K8S API Server From Container",
        priority: Priority::Notice,
        tags: &["container", "k8s", "network", "mitre_discovery"],
        proc_name: "curl",
        cmdline: "curl -k https://10.96.0.1:443/api",
        pname: "sh",
    },
];

/// The rule for a 0–99 roll: 60 % shells, then sensitive reads, binary writes, API contacts.
fn rule_for(roll: u32) -> &'static RuleShape {
    let i = match roll {
        0..60 => 0,
        60..80 => 1,
        80..90 => 2,
        _ => 3,
    };
    &RULES[i]
}

/// A Falco-shaped alert about `ns/pod` (SPEC §2 fields, as Falco's `json_output` has them).
pub fn falco_alert(
    roll: u32,
    container: u64,
    ns: &str,
    pod: &str,
    uid: Option<String>,
    at: Timestamp,
) -> Alert {
    let shape = rule_for(roll);
    let container_id = format!("{:012x}", container & 0xffff_ffff_ffff);
    let image = "docker.io/library/nginx";
    let clock = at.to_rfc3339();
    let clock = clock.get(11..29).unwrap_or("00:00:00.000000000");
    let detail = match shape.rule {
        "Terminal shell in container" => format!(
            "A shell was spawned in a container with an attached terminal (user=root user_loginuid=-1 k8s.ns={ns} k8s.pod={pod} container={container_id} shell=sh parent=runc cmdline={} terminal=34816 container_id={container_id} image={image})",
            shape.cmdline
        ),
        "Read sensitive file untrusted" => format!(
            "Sensitive file opened for reading by non-trusted program (file=/etc/shadow evt_type=openat user=root user_uid=0 user_loginuid=-1 process=cat proc_exepath=/usr/bin/cat parent=containerd-shim command=cat /etc/shadow terminal=34816 container_id={container_id} container_image={image} k8s_ns={ns} k8s_pod_name={pod})"
        ),
        "Write below binary dir" => format!(
            "File below a known binary directory opened for writing (user=root command=touch /bin/hack file=/bin/hack container_id={container_id} image={image} k8s.ns={ns} k8s.pod={pod})"
        ),
        _ => format!(
            "Unexpected connection to K8s API Server from container (command={} k8s.ns={ns} k8s.pod={pod} container={container_id} image={image} connection=10.244.0.7:43812->10.96.0.1:443)",
            shape.cmdline
        ),
    };
    let mut fields = Fields::new();
    fields.insert("container.id", container_id.as_str());
    fields.insert("container.image.repository", image);
    fields.insert("evt.time", at.as_nanos());
    fields.insert("k8s.ns.name", ns);
    fields.insert("k8s.pod.name", pod);
    if let Some(uid) = &uid {
        fields.insert("k8s.pod.uid", uid.as_str());
    }
    fields.insert("proc.cmdline", shape.cmdline);
    fields.insert("proc.exepath", format!("/bin/{}", shape.proc_name));
    fields.insert("proc.name", shape.proc_name);
    fields.insert("proc.pname", shape.pname);
    fields.insert("user.loginuid", -1i64);
    fields.insert("user.name", "root");
    if shape.rule == "Read sensitive file untrusted" {
        fields.insert("fd.name", "/etc/shadow");
    }
    let mut alert = Alert::new(shape.rule, shape.priority, at);
    alert.output = format!("{clock}: {} {detail}", shape.priority);
    alert.tags = shape.tags.iter().map(|t| (*t).to_owned()).collect();
    alert.fields = fields;
    alert.hostname = Some("sim-node-1".to_owned());
    alert.target = Some(Target {
        namespace: ns.to_owned(),
        pod: pod.to_owned(),
        uid,
        container_id: Some(container_id),
    });
    alert
}
