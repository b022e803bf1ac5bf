//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::demo::DemoArgs;
use crate::remote::{HistoryArgs, ReleaseArgs};

/// Teflon: decide and act on runtime-security alerts without taking the service down.
#[derive(Debug, Parser)]
#[command(name = "teflon", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a policy file and print a one-line summary per policy.
    Check(CheckArgs),
    /// Run saved Falco or Tetragon alerts through the engine against a simulated cluster and
    /// print the decisions.
    Replay(ReplayArgs),
    /// Attacks as load: attackers infect replicas, Teflon reaps them; availability over time.
    Simulate(SimulateArgs),
    /// Start the server on a simulated cluster with a built-in attack generator.
    Demo(DemoArgs),
    /// Undo an action on a running server: give a quarantined pod its labels back (and delete
    /// its NetworkPolicy), or delete a `block_binary` policy.
    Release(ReleaseArgs),
    /// The actions a running server took, their state (active, released, expired…) and how
    /// to undo each.
    History(HistoryArgs),
}

/// `teflon check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The policy file (YAML or JSON, version 1).
    #[arg(long, value_name = "FILE")]
    pub policies: PathBuf,
}

/// Output format of `replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for reading.
    Table,
    /// One JSON object per decision (the audit-log shape).
    Jsonl,
}

/// `teflon replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The policy file.
    #[arg(long, value_name = "FILE")]
    pub policies: PathBuf,
    /// JSON of `kubectl get pods,replicasets,deployments,statefulsets,daemonsets,poddisruptionbudgets -A -o json`.
    /// Without it every targeted pod is assumed to exist, be Ready, and be one of 3 available
    /// replicas of its own workload (kind Unknown, named after the pod).
    #[arg(long, value_name = "SNAPSHOT")]
    pub cluster: Option<PathBuf>,
    /// See only this namespace of the cluster (repeatable), like `cluster.namespaces` of the
    /// server: pods elsewhere are not found.
    #[arg(long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,
    /// See only the pods this label selector selects, like `cluster.pod_selector` of the server
    /// (needs --cluster).
    #[arg(long, value_name = "SELECTOR")]
    pub pod_selector: Option<String>,
    /// Seconds from reaping a controller-owned pod to its replacement being Ready.
    #[arg(long, value_name = "SECS", default_value_t = 15.0, value_parser = crate::args::seconds)]
    pub recovery_secs: f64,
    /// Output format [default: table when stdout is a terminal, jsonl otherwise].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Alert files: Falco JSON (one object, an array, or JSON Lines) or Tetragon export lines,
    /// told apart per file. `-` or none reads standard input.
    #[arg(value_name = "ALERTS")]
    pub alerts: Vec<PathBuf>,
}

/// `teflon simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Replicas of the attacked Deployment (the autoscaler's minimum).
    #[arg(long, default_value_t = 3)]
    pub replicas: u32,
    /// Independent attackers.
    #[arg(long, default_value_t = 1)]
    pub attackers: u32,
    /// Mean seconds between two infections by one attacker (exponentially distributed).
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = crate::args::seconds)]
    pub infect_every_secs: f64,
    /// Seconds from reaping a pod to its replacement being Ready.
    #[arg(long, value_name = "SECS", default_value_t = 15.0, value_parser = crate::args::seconds)]
    pub recovery_secs: f64,
    /// Simulated seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600.0, value_parser = crate::args::seconds)]
    pub duration_secs: f64,
    /// The attack starts this many seconds into the run (its onset) [default: 0].
    #[arg(long, value_name = "SECS", conflicts_with = "attack_phases", value_parser = crate::args::seconds)]
    pub attack_from_secs: Option<f64>,
    /// The attack stops this many seconds into the run [default: the end].
    #[arg(long, value_name = "SECS", conflicts_with = "attack_phases", value_parser = crate::args::seconds)]
    pub attack_until_secs: Option<f64>,
    /// Attack only in these spans of seconds into the run: `FROM-UNTIL[,FROM-UNTIL…]`,
    /// e.g. `0-120,300-360`.
    #[arg(long, value_name = "PHASES")]
    pub attack_phases: Option<String>,
    /// Policy file [default: built in: delete pods the attack's Falco rules report,
    /// min_available 1, defer when availability blocks].
    #[arg(long, value_name = "FILE")]
    pub policies: Option<PathBuf>,
    /// Let replicas follow the attack (Teflon's autoscaler: replicas needed by Little's law,
    /// between --replicas and --max-replicas).
    #[arg(long)]
    pub autoscale: bool,
    /// Autoscaling upper bound [default: 4 × --replicas].
    #[arg(long)]
    pub max_replicas: Option<u32>,
    /// Autoscaling: minimum seconds between two changes.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = crate::args::seconds)]
    pub cooldown_secs: f64,
    /// Autoscaling: scale down only to the highest recommendation of this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120.0, value_parser = crate::args::seconds)]
    pub stabilization_secs: f64,
    /// Seed of every random choice; the same seed gives the same run [default: from the clock,
    /// printed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Sampling interval of the time series (and of autoscaler evaluations).
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = crate::args::seconds)]
    pub step_secs: f64,
    /// Write `timeseries.csv` and `plot.svg` into this directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Namespace of the attacked Deployment.
    #[arg(long, default_value = "shop")]
    pub namespace: String,
    /// Name of the attacked Deployment.
    #[arg(long, default_value = "web")]
    pub name: String,
}
