//! The two error shapes of ingestion: one item in a stream, and a whole batch.

/// One input item (a line, or a multi-line JSON value) that could not be turned into an alert.
///
/// Lenient readers yield it in place of the item and go on with the next one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct LineError {
    /// 1-based line of the problem in the whole input.
    pub line: usize,
    /// 1-based column (in bytes) of the problem on that line.
    pub column: usize,
    /// What is wrong, without the position.
    pub message: String,
}

impl LineError {
    /// Turn a `serde_json` error for a value that starts at `first_line` (column 1) into one
    /// positioned in the whole input.
    pub(crate) fn from_json(err: &serde_json::Error, first_line: usize) -> Self {
        let (line, column) = match err.line() {
            0 => (first_line, 1),
            l => (first_line + l - 1, err.column().max(1)),
        };
        LineError {
            line,
            column,
            message: json_message(err),
        }
    }
}

/// A whole buffer was refused: the first problem, with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// An item is not valid JSON, or not a valid alert.
    #[error("line {line}, column {column}: {message}")]
    Invalid {
        /// 1-based line.
        line: usize,
        /// 1-based column (in bytes).
        column: usize,
        /// What is wrong, without the position.
        message: String,
    },
    /// The input holds nothing but whitespace.
    #[error("no alert in input: it is empty (send a JSON object, a JSON array or JSON Lines)")]
    Empty,
}

impl ParseError {
    /// 1-based line of the problem (0 for [`ParseError::Empty`]).
    pub fn line(&self) -> usize {
        match self {
            ParseError::Invalid { line, .. } => *line,
            ParseError::Empty => 0,
        }
    }

    /// 1-based column of the problem (0 for [`ParseError::Empty`]).
    pub fn column(&self) -> usize {
        match self {
            ParseError::Invalid { column, .. } => *column,
            ParseError::Empty => 0,
        }
    }

    /// A `serde_json` error of a whole buffer, positioned and with a message of its own.
    pub fn from_json(err: &serde_json::Error) -> Self {
        LineError::from_json(err, 1).into()
    }
}

impl From<LineError> for ParseError {
    fn from(e: LineError) -> Self {
        ParseError::Invalid {
            line: e.line,
            column: e.column,
            message: e.message,
        }
    }
}

/// `serde_json`'s message without its " at line L column C" suffix (we print our own position).
fn json_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    if err.line() == 0 {
        return text;
    }
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    match text.strip_suffix(&suffix) {
        Some(msg) => msg.to_owned(),
        None => text,
    }
}
