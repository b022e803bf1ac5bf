//! `teflon simulate`: attacks as load. The simulation is `teflon_sim::simulate`; this formats.

use std::io::Write;
use std::time::Duration;

use teflon_core::PolicySet;
use teflon_sim::Attackers;
use teflon_sim::simulate::{
    self, AttackPhase, AutoscaleSettings, DEFAULT_POLICIES, Scenario, SimulationReport,
};

use crate::Exit;
use crate::cli::SimulateArgs;
use crate::replay::secs;

/// The scenario the arguments describe (`seed` resolved by the caller).
pub fn scenario(args: &SimulateArgs, seed: u64) -> Result<Scenario, String> {
    if args.replicas == 0 {
        return Err("--replicas must be at least 1".to_owned());
    }
    let step = secs("--step-secs", args.step_secs)?;
    if step.is_zero() {
        return Err("--step-secs must be above 0".to_owned());
    }
    let mean = secs("--infect-every-secs", args.infect_every_secs)?;
    if mean.is_zero() {
        return Err("--infect-every-secs must be above 0".to_owned());
    }
    let duration = secs("--duration-secs", args.duration_secs)?;
    Ok(Scenario {
        phases: phases(args, duration)?,
        namespace: args.namespace.clone(),
        name: args.name.clone(),
        replicas: args.replicas,
        attackers: Attackers {
            count: args.attackers,
            mean_interval: mean,
            seed,
        },
        recovery: secs("--recovery-secs", args.recovery_secs)?,
        duration,
        step,
        autoscale: if args.autoscale {
            Some(AutoscaleSettings {
                max_replicas: args.max_replicas.unwrap_or(args.replicas.saturating_mul(4)),
                cooldown: secs("--cooldown-secs", args.cooldown_secs)?,
                scale_down_stabilization: secs("--stabilization-secs", args.stabilization_secs)?,
            })
        } else {
            None
        },
        start: simulate::DEFAULT_START,
    })
}

/// The attack phases of `--attack-phases`, or of `--attack-from-secs`/`--attack-until-secs`
/// (none: the whole run).
fn phases(args: &SimulateArgs, duration: Duration) -> Result<Vec<AttackPhase>, String> {
    let phase = |flag: &str, from: Duration, until: Duration| {
        if from >= until {
            Err(format!(
                "{flag}: the attack must stop after it starts ({}s is not before {}s)",
                from.as_secs_f64(),
                until.as_secs_f64()
            ))
        } else {
            Ok(AttackPhase { from, until })
        }
    };
    if let Some(list) = &args.attack_phases {
        let mut out = Vec::new();
        for part in list.split(',').map(str::trim) {
            let Some((a, b)) = part.split_once('-') else {
                return Err(format!(
                    "--attack-phases: {part:?} is not FROM-UNTIL (seconds, e.g. 0-120)"
                ));
            };
            let num = |x: &str| {
                x.trim().parse::<f64>().map_err(|_| {
                    format!("--attack-phases: {x:?} in {part:?} is not a number of seconds")
                })
            };
            let from = secs("--attack-phases", num(a)?)?;
            let until = secs("--attack-phases", num(b)?)?;
            out.push(phase("--attack-phases", from, until)?);
        }
        if out.is_empty() {
            return Err("--attack-phases: no phase given".to_owned());
        }
        return Ok(out);
    }
    if args.attack_from_secs.is_none() && args.attack_until_secs.is_none() {
        return Ok(Vec::new());
    }
    let from = secs("--attack-from-secs", args.attack_from_secs.unwrap_or(0.0))?;
    let until = match args.attack_until_secs {
        Some(u) => secs("--attack-until-secs", u)?,
        None => duration.max(from.saturating_add(Duration::from_secs(1))),
    };
    Ok(vec![phase("--attack-until-secs", from, until)?])
}

/// Run `teflon simulate`: summary to `out`, problems to `err`, files into `--out`.
pub fn run(
    args: &SimulateArgs,
    out: &mut impl Write,
    err: &mut impl Write,
) -> std::io::Result<Exit> {
    let policies = match &args.policies {
        Some(path) => match crate::check::load(path, err)? {
            Some(p) => p,
            None => return Ok(Exit::Failure),
        },
        None => match PolicySet::parse(DEFAULT_POLICIES, "<built-in policies>") {
            Ok(p) => p,
            Err(e) => {
                writeln!(err, "{e}")?;
                return Ok(Exit::Failure);
            }
        },
    };
    let seed = args.seed.unwrap_or_else(clock_seed);
    let scenario = match scenario(args, seed) {
        Ok(s) => s,
        Err(msg) => {
            writeln!(err, "teflon simulate: {msg}")?;
            return Ok(Exit::Failure);
        }
    };
    let report = simulate::run(&scenario, policies);
    write_summary(out, &scenario, &report)?;
    if let Some(dir) = &args.out {
        let written = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(dir.join("timeseries.csv"), report.to_csv()))
            .map_err(|e| e.to_string())
            .and_then(|()| crate::plot::write_svg(&dir.join("plot.svg"), &scenario, &report));
        match written {
            Ok(()) => writeln!(
                out,
                "wrote {} and {}",
                dir.join("timeseries.csv").display(),
                dir.join("plot.svg").display()
            )?,
            Err(msg) => {
                writeln!(err, "{}: {msg}", dir.display())?;
                return Ok(Exit::Failure);
            }
        }
    }
    Ok(Exit::Ok)
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() ^ u64::from(d.subsec_nanos()))
}

/// The summary block.
pub fn write_summary(
    out: &mut impl Write,
    s: &Scenario,
    r: &SimulationReport,
) -> std::io::Result<()> {
    let x = &r.summary;
    writeln!(
        out,
        "teflon simulate: Deployment {}/{}, {} replicas{}, {} attacker(s) every {}s on average, recovery {}s, {}s simulated, seed {}",
        s.namespace,
        s.name,
        s.replicas,
        s.autoscale
            .map(|a| format!(" (autoscaled up to {})", a.max_replicas))
            .unwrap_or_default(),
        s.attackers.count,
        s.attackers.mean_interval.as_secs_f64(),
        s.recovery.as_secs_f64(),
        s.duration.as_secs_f64(),
        s.attackers.seed
    )?;
    writeln!(
        out,
        "availability:         min {} pods ({:.1}% of desired), mean {:.2} pods ({:.1}% of desired)",
        x.min_available,
        x.min_ratio * 100.0,
        x.mean_available,
        x.mean_ratio * 100.0
    )?;
    if !s.phases.is_empty() {
        let spans: Vec<String> = s
            .phases
            .iter()
            .map(|p| format!("{}-{}s", p.from.as_secs_f64(), p.until.as_secs_f64()))
            .collect();
        writeln!(out, "attack phases:        {}", spans.join(", "))?;
    }
    writeln!(
        out,
        "infected pod-seconds: {:.1} (dwell time of attackers in serving pods; {:.2}s per infected pod)",
        x.infected_pod_seconds, x.mean_dwell_secs
    )?;
    writeln!(
        out,
        "attacks:              {} ({} hit a pod, {} pods infected)",
        x.attacks, x.infections, x.pods_infected
    )?;
    writeln!(out, "reaps:                {}", x.reaps)?;
    writeln!(out, "deferrals:            {}", x.deferrals)?;
    let skips: Vec<String> = x.skips.iter().map(|(r, n)| format!("{r} {n}")).collect();
    writeln!(
        out,
        "skips:                {}",
        if skips.is_empty() {
            "none".to_owned()
        } else {
            skips.join(", ")
        }
    )?;
    let reasons: Vec<String> = x.reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
    writeln!(
        out,
        "decisions by reason:  {}",
        if reasons.is_empty() {
            "none".to_owned()
        } else {
            reasons.join(", ")
        }
    )?;
    if s.autoscale.is_some() {
        writeln!(
            out,
            "autoscale:            {} change(s), at most {} desired replicas",
            x.scale_changes, x.max_desired
        )?;
    }
    Ok(())
}
