//! The readable table of `teflon replay --format table`.

use std::io::Write;

use teflon_sim::ReplayStep;

/// Column widths: seq, time, rule, target, workload, policy, verdict, action, reason.
const WIDTHS: [usize; 9] = [5, 23, 30, 36, 36, 20, 7, 12, 19];
/// How narrow each column may get to fit a terminal: the wide free-text ones (rule,
/// target, workload, policy) give way first, the time loses its milliseconds; the short
/// bounded ones (verdict, action, reason) keep their width.
const MIN_WIDTHS: [usize; 9] = [5, 19, 12, 14, 14, 8, 7, 12, 19];
const GAP: usize = 2;
const HEADERS: [&str; 9] = [
    "SEQ", "TIME", "RULE", "TARGET", "WORKLOAD", "POLICY", "VERDICT", "ACTION", "REASON",
];

/// Writes decisions as fixed-width rows (long cells are cut with `…`), streaming.
#[derive(Debug)]
pub struct DecisionTable {
    widths: [usize; 9],
}

impl Default for DecisionTable {
    fn default() -> Self {
        DecisionTable { widths: WIDTHS }
    }
}

/// `text` cut to `width` characters, `…` marking the cut.
pub fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s
}

fn row_width(widths: &[usize; 9]) -> usize {
    widths.iter().sum::<usize>() + GAP * (widths.len() - 1)
}

impl DecisionTable {
    /// A table that fits `columns` characters (a terminal's width; `None`: not a terminal,
    /// full widths): the widest shrinkable column gives one character at a time until the
    /// row fits or every column is at its minimum (then rows wrap, as they must).
    pub fn fitting(columns: Option<usize>) -> Self {
        let mut widths = WIDTHS;
        if let Some(columns) = columns {
            while row_width(&widths) > columns {
                let Some(i) = (0..widths.len())
                    .filter(|&i| widths[i] > MIN_WIDTHS[i])
                    .max_by_key(|&i| (widths[i] - MIN_WIDTHS[i], widths[i]))
                else {
                    break;
                };
                widths[i] -= 1;
            }
        }
        DecisionTable { widths }
    }

    fn write_row(
        &self,
        out: &mut impl Write,
        cells: &[String; 9],
        tail: &str,
    ) -> std::io::Result<()> {
        let mut line = String::with_capacity(220);
        for (cell, width) in cells.iter().zip(self.widths) {
            let cell = truncate(cell, width);
            let pad = width.saturating_sub(cell.chars().count());
            line.push_str(&cell);
            line.extend(std::iter::repeat_n(' ', pad + GAP));
        }
        line.push_str(tail);
        writeln!(out, "{}", line.trim_end())
    }

    /// The header line.
    pub fn header(&self, out: &mut impl Write) -> std::io::Result<()> {
        self.write_row(out, &HEADERS.map(str::to_owned), "")
    }

    /// One decision.
    pub fn row(&self, out: &mut impl Write, step: &ReplayStep) -> std::io::Result<()> {
        let r = step.decision.record();
        let time = r.time.to_rfc3339();
        // `2023-05-25 13:44:05.478` is plenty to read (without the milliseconds when the
        // terminal is narrow).
        let time = time
            .get(..self.widths[1].min(23))
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
        self.write_row(out, &cells, &tail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_fits_the_terminal_by_shortening_the_wide_columns() {
        let full = DecisionTable::fitting(None);
        assert_eq!(full.widths, WIDTHS);
        assert!(row_width(&WIDTHS) > 160);
        for columns in [80, 120, 160, 200] {
            let t = DecisionTable::fitting(Some(columns));
            assert!(
                row_width(&t.widths) <= columns.max(row_width(&MIN_WIDTHS)),
                "{columns}: {:?}",
                t.widths
            );
            // The bounded columns keep their width: a reason or verdict is never cut.
            assert_eq!(t.widths[6..], WIDTHS[6..]);
        }
        let t = DecisionTable::fitting(Some(160));
        assert_eq!(row_width(&t.widths), 160);
        // Too narrow for even the minimums: every column at its minimum, rows wrap.
        assert_eq!(DecisionTable::fitting(Some(40)).widths, MIN_WIDTHS);
        let mut out = Vec::new();
        t.header(&mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().trim_end().chars().count() <= 160);
    }

    #[test]
    fn long_cells_are_cut_with_an_ellipsis() {
        assert_eq!(truncate("Terminal shell in container", 10), "Terminal …");
        assert_eq!(truncate("short", 10), "short");
    }
}
