//! `teflon replay`: saved alerts through the engine against a simulated cluster.

use std::io::{Read, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use teflon_core::{Engine, Verdict};
use teflon_sim::{Replayer, SimCluster};

use crate::Exit;
use crate::cli::{Format, ReplayArgs};
use crate::input::read_alerts;
use crate::table::DecisionTable;

/// Whether standard output and standard error are terminals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Terminals {
    /// stdout is a terminal: `--format` defaults to `table`.
    pub stdout: bool,
    /// stderr is a terminal: large inputs get a progress bar.
    pub stderr: bool,
    /// The width of the stdout terminal, when it is one: the table fits it.
    pub columns: Option<usize>,
}

/// Inputs with at least this many items get a progress bar (on a terminal).
const PROGRESS_MIN_ITEMS: usize = 5_000;

/// A duration from user-given seconds.
pub fn secs(flag: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("{flag} must be a non-negative number of seconds, got {value}"))
}

/// Run `teflon replay`. Decisions go to `out`; malformed lines (`FILE:LINE: message`) and
/// errors to `err`.
pub fn run(
    args: &ReplayArgs,
    stdin: impl Read,
    out: &mut impl Write,
    err: &mut impl Write,
    terminals: Terminals,
) -> std::io::Result<Exit> {
    let Some(policies) = crate::check::load(&args.policies, err)? else {
        return Ok(Exit::Failure);
    };
    let recovery = match secs("--recovery-secs", args.recovery_secs) {
        Ok(d) => d,
        Err(msg) => {
            writeln!(err, "teflon replay: {msg}")?;
            return Ok(Exit::Failure);
        }
    };
    let scope = teflon_server::config::ClusterConfig {
        kind: teflon_server::config::ClusterType::Sim,
        snapshot: args.cluster.clone(),
        namespaces: args.namespaces.clone(),
        pod_selector: args.pod_selector.clone(),
        ..teflon_server::config::ClusterConfig::default()
    }
    .sim_scope();
    let scope = match scope {
        Ok(s) => s,
        Err(msg) => {
            // The server's wording names its config keys; here they are flags.
            let msg = msg
                .replace("cluster.namespaces", "--namespace")
                .replace("cluster.pod_selector", "--pod-selector")
                .replace("on `type: sim` needs a `snapshot`", "needs --cluster");
            writeln!(err, "teflon replay: {msg}")?;
            return Ok(Exit::Failure);
        }
    };
    let sim = match &args.cluster {
        None => SimCluster::healthy(recovery),
        Some(path) => {
            let loaded = std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    SimCluster::from_kubectl_list(&bytes, recovery).map_err(|e| e.to_string())
                });
            match loaded {
                Ok(sim) => sim,
                Err(msg) => {
                    writeln!(err, "{}: {msg}", path.display())?;
                    return Ok(Exit::Failure);
                }
            }
        }
    }
    .with_scope(scope);

    // Read every input first: files are told apart (Falco / Tetragon) one by one, and the
    // count sizes the progress bar.
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut stdin = Some(stdin);
    let names: Vec<String> = if args.alerts.is_empty() {
        vec!["-".to_owned()]
    } else {
        args.alerts
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    };
    for name in names {
        if name == "-" {
            let mut buf = Vec::new();
            if let Some(mut s) = stdin.take() {
                s.read_to_end(&mut buf)?;
            }
            inputs.push(("<stdin>".to_owned(), buf));
        } else {
            match std::fs::read(&name) {
                Ok(buf) => inputs.push((name, buf)),
                Err(e) => {
                    writeln!(err, "{name}: cannot read alerts: {e}")?;
                    return Ok(Exit::Failure);
                }
            }
        }
    }
    let items: Vec<(&str, Result<teflon_core::Alert, crate::input::BadLine>)> = inputs
        .iter()
        .flat_map(|(name, bytes)| {
            read_alerts(bytes)
                .into_iter()
                .map(move |r| (name.as_str(), r))
        })
        .collect();

    let format = args.format.unwrap_or(if terminals.stdout {
        Format::Table
    } else {
        Format::Jsonl
    });
    let progress = (terminals.stderr && items.len() >= PROGRESS_MIN_ITEMS).then(|| {
        let bar =
            ProgressBar::with_draw_target(Some(items.len() as u64), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{bar:40} {pos}/{len} alerts {per_sec} eta {eta}")
        {
            bar.set_style(style);
        }
        bar
    });

    let mut printer = Printer::new(format, terminals.columns);
    printer.header(out)?;
    let mut replayer = Replayer::new(Engine::new(policies), sim);
    let mut malformed = 0usize;
    let mut alerts = 0usize;
    for (name, item) in items {
        match item {
            Ok(alert) => {
                alerts += 1;
                for step in replayer.push(alert) {
                    printer.print(out, &step)?;
                }
            }
            Err(bad) => {
                malformed += 1;
                let line = format!("{name}:{}: {}", bad.line, bad.message);
                match &progress {
                    Some(bar) => bar.suspend(|| writeln!(err, "{line}"))?,
                    None => writeln!(err, "{line}")?,
                }
            }
        }
        if let Some(bar) = &progress {
            bar.inc(1);
        }
    }
    for step in replayer.finish() {
        printer.print(out, &step)?;
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    printer.footer(out, alerts, malformed)?;
    out.flush()?;
    Ok(if malformed > 0 {
        Exit::Malformed
    } else {
        Exit::Ok
    })
}

struct Printer {
    format: Format,
    table: DecisionTable,
    counts: [usize; 3],
}

impl Printer {
    fn new(format: Format, columns: Option<usize>) -> Self {
        Printer {
            format,
            table: DecisionTable::fitting(columns),
            counts: [0; 3],
        }
    }

    fn header(&self, out: &mut impl Write) -> std::io::Result<()> {
        match self.format {
            Format::Table => self.table.header(out),
            Format::Jsonl => Ok(()),
        }
    }

    fn print(
        &mut self,
        out: &mut impl Write,
        step: &teflon_sim::ReplayStep,
    ) -> std::io::Result<()> {
        let d = &step.decision;
        self.counts[match d.verdict {
            Verdict::Act => 0,
            Verdict::Defer => 1,
            Verdict::Skip => 2,
        }] += 1;
        match self.format {
            Format::Jsonl => {
                let line = serde_json::to_string(&d.record()).map_err(std::io::Error::other)?;
                writeln!(out, "{line}")
            }
            Format::Table => self.table.row(out, step),
        }
    }

    fn footer(&self, out: &mut impl Write, alerts: usize, malformed: usize) -> std::io::Result<()> {
        if self.format != Format::Table {
            return Ok(());
        }
        let [act, defer, skip] = self.counts;
        write!(
            out,
            "\n{alerts} alerts, {} decisions: {act} act, {defer} defer, {skip} skip",
            act + defer + skip
        )?;
        if malformed > 0 {
            write!(out, "; {malformed} malformed input items skipped")?;
        }
        writeln!(out)
    }
}
