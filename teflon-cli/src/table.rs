//! The readable table of `teflon replay --format table`.

use std::io::Write;

use teflon_sim::ReplayStep;

/// Column widths: seq, time, rule, target, workload, policy, verdict, action, reason.
const WIDTHS: [usize; 9] = [5, 23, 30, 36, 36, 20, 7, 12, 19];
const HEADERS: [&str; 9] = [
    "SEQ", "TIME", "RULE", "TARGET", "WORKLOAD", "POLICY", "VERDICT", "ACTION", "REASON",
];

/// Writes decisions as fixed-width rows (long cells are cut with `…`), streaming.
#[derive(Debug, Default)]
pub struct DecisionTable;

/// `text` cut to `width` characters, `…` marking the cut.
pub fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s
}

fn write_row(out: &mut impl Write, cells: &[String; 9], tail: &str) -> std::io::Result<()> {
    let mut line = String::with_capacity(220);
    for (cell, width) in cells.iter().zip(WIDTHS) {
        let cell = truncate(cell, width);
        let pad = width.saturating_sub(cell.chars().count());
        line.push_str(&cell);
        line.extend(std::iter::repeat_n(' ', pad + 2));
    }
    line.push_str(tail);
    writeln!(out, "{}", line.trim_end())
}

impl DecisionTable {
    /// The header line.
    pub fn header(&self, out: &mut impl Write) -> std::io::Result<()> {
        write_row(out, &HEADERS.map(str::to_owned), "")
    }

    /// One decision.
    pub fn row(&self, out: &mut impl Write, step: &ReplayStep) -> std::io::Result<()> {
        let r = step.decision.record();
        let time = r.time.to_rfc3339();
        // `2023-05-25 13:44:05.478` is plenty to read.
        let time = time
            .get(..23)
            .map_or(time.clone(), |t| t.replacen('T', " ", 1));
        let dash = || "-".to_owned();
        let cells = [
            r.seq.to_string(),
            time,
            r.rule.clone(),
            r.target
                .as_ref()
                .map_or_else(dash, |t| format!("{}/{}", t.namespace, t.pod)),
            r.workload
                .as_ref()
                .map_or_else(dash, |w| format!("{} {}/{}", w.kind, w.namespace, w.name)),
            r.policy.clone().unwrap_or_else(dash),
            r.verdict.as_str().to_owned(),
            r.action.map_or_else(dash, |a| a.as_str().to_owned()),
            r.reason.as_str().to_owned(),
        ];
        let mut tail = String::new();
        if r.dry_run {
            tail.push_str("(dry)");
        }
        if let Some(o) = &step.outcome
            && *o != teflon_core::Outcome::Success
        {
            tail.push_str(&format!("({o})"));
        }
        write_row(out, &cells, &tail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_cells_are_cut_with_an_ellipsis() {
        assert_eq!(truncate("Terminal shell in container", 10), "Terminal …");
        assert_eq!(truncate("short", 10), "short");
    }
}
