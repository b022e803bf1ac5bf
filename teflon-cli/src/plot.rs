//! `plot.svg`: available, infected and desired replicas over time.

use std::path::Path;

use plotters::prelude::*;
use teflon_sim::simulate::{Scenario, SimulationReport};

/// Draw the report's samples into an SVG file at `path`.
pub fn write_svg(
    path: &Path,
    scenario: &Scenario,
    report: &SimulationReport,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("cannot draw the plot: {e}");
    let x_max = report
        .samples
        .last()
        .map_or(1.0, |s| s.time_secs)
        .max(scenario.duration.as_secs_f64())
        .max(1.0);
    let y_max = report
        .samples
        .iter()
        .map(|s| {
            s.desired
                .max(s.available)
                .max(s.infected)
                .max(s.replicas_needed)
        })
        .max()
        .unwrap_or(1)
        .max(1) as f64
        + 1.0;
    let root = SVGBackend::new(path, (960, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let caption = format!(
        "{}/{}: {} attacker(s) every {}s, recovery {}s{}",
        scenario.namespace,
        scenario.name,
        scenario.attackers.count,
        scenario.attackers.mean_interval.as_secs_f64(),
        scenario.recovery.as_secs_f64(),
        if scenario.autoscale.is_some() {
            ", autoscaled"
        } else {
            ""
        }
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("pods")
        .draw()
        .map_err(|e| err(&e))?;
    // The attack phases, shaded.
    let shade = RGBColor(255, 228, 225);
    chart
        .draw_series(scenario.phases.iter().map(|p| {
            Rectangle::new(
                [
                    (p.from.as_secs_f64().min(x_max), 0.0),
                    (p.until.as_secs_f64().min(x_max), y_max),
                ],
                shade.filled(),
            )
        }))
        .map_err(|e| err(&e))?;
    type Value = fn(&teflon_sim::simulate::Sample) -> f64;
    let series: [(&str, RGBColor, Value); 4] = [
        ("replicas needed", RGBColor(150, 150, 150), |s| {
            f64::from(s.replicas_needed)
        }),
        ("desired", BLUE, |s| f64::from(s.desired)),
        ("available", GREEN, |s| f64::from(s.available)),
        ("infected", RED, |s| f64::from(s.infected)),
    ];
    for (label, color, value) in series {
        chart
            .draw_series(LineSeries::new(
                report.samples.iter().map(|s| (s.time_secs, value(s))),
                color.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
