//! Splitting input into JSON items with line numbers: a single object (also pretty-printed),
//! a JSON array of objects, or JSON Lines — for a whole buffer or for a reader.
//!
//! Generic over the item type so `teflon-tetragon` frames its events the same way.
//!
//! A lenient reader must resynchronise after a broken item, so it works line by line: a line
//! is one item, unless the line is just `{` (how pretty printers open an object) or opens an
//! array that it does not close; then the item runs until its brackets balance. A truncated
//! JSON Lines object thus costs that line only. The strict [`parse_all`] frames the same way,
//! so both report a broken item at the line where it starts to go wrong.
//!
//! Size: about 410 lines before its tests, kept in one file: one state machine (object, array or
//! JSON Lines, from a slice or a reader) whose two inputs share every rule; split, they would
//! drift.

use std::collections::VecDeque;
use std::io::BufRead;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{LineError, ParseError};

/// Parse a whole buffer strictly: every item must be valid, or the first problem is returned
/// with its line and column. An empty JSON array gives no items; blank input is
/// [`ParseError::Empty`].
pub fn parse_all<T: DeserializeOwned>(bytes: &[u8]) -> Result<Vec<T>, ParseError> {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    // Real alerts are 0.4–2 kB; sizing for ~1 kB each avoids regrowing the vector (and
    // moving every alert) a handful of times per batch.
    let mut items = Vec::with_capacity(bytes.len() / 1024 + 1);
    for item in SliceItems::<T>::new(bytes) {
        items.push(item?);
    }
    Ok(items)
}

/// The UTF-8 byte order mark, skipped at the start of input.
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parse one frame (see [`SliceFrames`]) that starts on `first_line`: its items, or the first
/// problem with its position, are appended to `out`.
pub fn parse_frame<T: DeserializeOwned>(
    bytes: &[u8],
    first_line: usize,
    out: &mut VecDeque<Result<T, LineError>>,
) {
    // An item cut short is reported where its text ends, not on the line after.
    let bytes = bytes.trim_ascii_end();
    // Validating UTF-8 once per item, then reading it as `&str`, spares serde_json a
    // validation per string (10% of the batch profile). Invalid UTF-8 takes the byte path,
    // which reports the position.
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_items(
            serde_json::Deserializer::from_str(text),
            bytes,
            first_line,
            out,
        ),
        Err(_) => parse_items(
            serde_json::Deserializer::from_slice(bytes),
            bytes,
            first_line,
            out,
        ),
    }
}

fn parse_items<'de, R: serde_json::de::Read<'de>, T: DeserializeOwned>(
    mut de: serde_json::Deserializer<R>,
    bytes: &[u8],
    first_line: usize,
    out: &mut VecDeque<Result<T, LineError>>,
) {
    let starts_array = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    if starts_array {
        let items = Vec::<T>::deserialize(&mut de).and_then(|items| de.end().map(|()| items));
        match items {
            Ok(items) => out.extend(items.into_iter().map(Ok)),
            Err(e) => out.push_back(Err(LineError::from_json(&e, first_line))),
        }
        return;
    }
    for item in de.into_iter::<T>() {
        match item {
            Ok(v) => out.push_back(Ok(v)),
            Err(e) => {
                out.push_back(Err(LineError::from_json(&e, first_line)));
                return;
            }
        }
    }
}

/// Index of the first `\n`. Scans 32-byte blocks without an early exit inside a block, which
/// the compiler vectorises; a plain `position` goes byte by byte and showed in the batch bench.
fn find_newline(bytes: &[u8]) -> Option<usize> {
    let mut blocks = bytes.chunks_exact(32);
    let mut offset = 0;
    for block in &mut blocks {
        if block.iter().fold(false, |seen, b| seen | (*b == b'\n')) {
            return block.iter().position(|b| *b == b'\n').map(|i| offset + i);
        }
        offset += 32;
    }
    blocks
        .remainder()
        .iter()
        .position(|b| *b == b'\n')
        .map(|i| offset + i)
}

/// Bracket depth of a multi-line item, outside strings. JSON strings never span lines, so
/// string state is reset at each line end (a broken line cannot swallow the rest).
#[derive(Debug, Default)]
struct Depth(i64);

impl Depth {
    fn feed(&mut self, line: &[u8]) {
        let mut in_str = false;
        let mut escaped = false;
        for &b in line {
            if in_str {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_str = false;
                }
            } else {
                match b {
                    b'"' => in_str = true,
                    b'{' | b'[' => self.0 += 1,
                    b'}' | b']' => self.0 -= 1,
                    _ => {}
                }
            }
        }
    }
}

/// What a line does to the item being assembled.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Whitespace only, between items.
    Blank,
    /// Part of a multi-line item that is not complete yet.
    Continue,
    /// The item ends with this line.
    Complete,
    /// This line opens a new item: the pending one ends before it (it was truncated).
    Restart,
}

#[derive(Debug, Default)]
struct Assembler {
    active: bool,
    opener_indent: usize,
    opener_object: bool,
    depth: Depth,
}

impl Assembler {
    fn step(&mut self, line: &[u8]) -> Step {
        let indent = line
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        let content = line.get(indent..).unwrap_or_default().trim_ascii_end();
        if !self.active {
            if content.is_empty() {
                return Step::Blank;
            }
            let mut depth = Depth::default();
            let multi_line = if content == b"{" {
                depth.0 = 1;
                true
            } else if content.first() == Some(&b'[') {
                depth.feed(content);
                depth.0 > 0
            } else {
                false
            };
            if multi_line {
                self.active = true;
                self.opener_indent = indent;
                self.opener_object = content == b"{";
                self.depth = depth;
                return Step::Continue;
            }
            return Step::Complete;
        }
        let opens = matches!(content.first(), Some(b'{' | b'['));
        if opens && indent <= self.opener_indent && self.opener_object && self.depth.0 == 1 {
            self.active = false;
            return Step::Restart;
        }
        self.depth.feed(line);
        if self.depth.0 <= 0 {
            self.active = false;
            Step::Complete
        } else {
            Step::Continue
        }
    }
}

/// The frames of a buffer, in order: each is the text of one item (a line of JSON Lines, a
/// pretty-printed object, an array) with the 1-based line it starts on. Blank lines are
/// skipped. [`SliceItems`] parses these; a reader of mixed formats picks a parser per frame.
#[derive(Debug)]
pub struct SliceFrames<'a> {
    buf: &'a [u8],
    pos: usize,
    line: usize,
    chunk: Option<(usize, usize)>,
    asm: Assembler,
    pending: Option<(usize, &'a [u8])>,
}

impl<'a> SliceFrames<'a> {
    /// Frames of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        SliceFrames {
            buf,
            // Files saved by some Windows editors start with a UTF-8 byte order mark.
            pos: if buf.starts_with(BOM) { BOM.len() } else { 0 },
            line: 0,
            chunk: None,
            asm: Assembler::default(),
            pending: None,
        }
    }
}

impl<'a> Iterator for SliceFrames<'a> {
    /// `(first line, text)`.
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(frame) = self.pending.take() {
                return Some(frame);
            }
            if self.pos >= self.buf.len() {
                let (start, line) = self.chunk.take()?;
                return Some((line, self.buf.get(start..).unwrap_or_default()));
            }
            let rest = self.buf.get(self.pos..).unwrap_or_default();
            let len = find_newline(rest).map_or(rest.len(), |i| i + 1);
            let line_start = self.pos;
            let line = rest.get(..len).unwrap_or_default();
            self.line += 1;
            let mut step = self.asm.step(line);
            let mut cut = None;
            if step == Step::Restart {
                if let Some((start, first)) = self.chunk.take() {
                    cut = Some((first, self.buf.get(start..line_start).unwrap_or_default()));
                }
                step = self.asm.step(line);
            }
            self.pos += len;
            let complete = match step {
                Step::Blank => None,
                Step::Continue => {
                    self.chunk.get_or_insert((line_start, self.line));
                    None
                }
                Step::Complete | Step::Restart => {
                    let (start, first) = self.chunk.take().unwrap_or((line_start, self.line));
                    Some((first, self.buf.get(start..self.pos).unwrap_or_default()))
                }
            };
            match (cut, complete) {
                (Some(a), b) => {
                    self.pending = b;
                    return Some(a);
                }
                (None, Some(b)) => return Some(b),
                (None, None) => {}
            }
        }
    }
}

/// Lenient items of a buffer: each yields its value or a [`LineError`] and the next item is
/// read regardless.
#[derive(Debug)]
pub struct SliceItems<'a, T> {
    frames: SliceFrames<'a>,
    pending: VecDeque<Result<T, LineError>>,
}

impl<'a, T> SliceItems<'a, T> {
    /// Items of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        SliceItems {
            frames: SliceFrames::new(buf),
            pending: VecDeque::new(),
        }
    }
}

impl<T: DeserializeOwned> Iterator for SliceItems<'_, T> {
    type Item = Result<T, LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            let (line, frame) = self.frames.next()?;
            parse_frame(frame, line, &mut self.pending);
        }
    }
}

/// Lenient items of a reader (stdin, a file), read as they arrive: a JSON Lines producer is
/// handled line by line, without waiting for the end of input. A read error is reported once,
/// with the line it happened on, and ends the items.
#[derive(Debug)]
pub struct ReaderItems<R, T> {
    reader: R,
    line_buf: Vec<u8>,
    chunk: Vec<u8>,
    chunk_line: usize,
    line: usize,
    asm: Assembler,
    pending: VecDeque<Result<T, LineError>>,
    done: bool,
    _item: PhantomData<fn() -> T>,
}

impl<R: BufRead, T> ReaderItems<R, T> {
    /// Items of `reader`.
    pub fn new(reader: R) -> Self {
        ReaderItems {
            reader,
            line_buf: Vec::new(),
            chunk: Vec::new(),
            chunk_line: 0,
            line: 0,
            asm: Assembler::default(),
            pending: VecDeque::new(),
            done: false,
            _item: PhantomData,
        }
    }
}

impl<R: BufRead, T: DeserializeOwned> Iterator for ReaderItems<R, T> {
    type Item = Result<T, LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            self.line_buf.clear();
            match self.reader.read_until(b'\n', &mut self.line_buf) {
                Ok(0) => {
                    self.done = true;
                    if !self.chunk.is_empty() {
                        parse_frame(&self.chunk, self.chunk_line, &mut self.pending);
                        self.chunk.clear();
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(LineError {
                        line: self.line + 1,
                        column: 1,
                        message: format!("cannot read input: {e}"),
                    }));
                }
            }
            self.line += 1;
            if self.line == 1 && self.line_buf.starts_with(BOM) {
                self.line_buf.drain(..BOM.len());
            }
            let mut step = self.asm.step(&self.line_buf);
            if step == Step::Restart {
                parse_frame(&self.chunk, self.chunk_line, &mut self.pending);
                self.chunk.clear();
                step = self.asm.step(&self.line_buf);
            }
            match step {
                Step::Blank => {}
                Step::Continue => {
                    if self.chunk.is_empty() {
                        self.chunk_line = self.line;
                    }
                    self.chunk.extend_from_slice(&self.line_buf);
                }
                Step::Complete | Step::Restart => {
                    if self.chunk.is_empty() {
                        parse_frame(&self.line_buf, self.line, &mut self.pending);
                    } else {
                        self.chunk.extend_from_slice(&self.line_buf);
                        parse_frame(&self.chunk, self.chunk_line, &mut self.pending);
                        self.chunk.clear();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn lenient(input: &str) -> Vec<Result<Value, LineError>> {
        let from_slice: Vec<_> = SliceItems::<Value>::new(input.as_bytes()).collect();
        let from_reader: Vec<_> = ReaderItems::<_, Value>::new(input.as_bytes()).collect();
        assert_eq!(from_slice, from_reader, "slice and reader framing differ");
        from_slice
    }

    #[test]
    fn json_lines_yield_one_item_per_line_and_skip_blank_lines() {
        let items = lenient("{\"a\":1}\n\n{\"a\":2}\r\n{\"a\":3}");
        assert_eq!(items.len(), 3);
        assert!(items.iter().all(Result::is_ok));
    }

    #[test]
    fn a_broken_line_is_reported_with_its_line_and_the_next_line_still_parses() {
        let items = lenient("{\"a\":1}\n{\"a\":\n{\"a\":3}\nnot json\n{\"a\":5}\n");
        assert_eq!(items.len(), 5);
        let err = items[1].as_ref().unwrap_err();
        assert_eq!(err.line, 2);
        assert!(items[2].is_ok());
        let err = items[3].as_ref().unwrap_err();
        assert_eq!(err.line, 4, "{err}");
        assert!(items[4].is_ok());
    }

    #[test]
    fn pretty_printed_objects_and_arrays_are_items() {
        let input = "{\n  \"a\": {\n    \"b\": [1, 2]\n  }\n}\n[\n  {\"x\": 1},\n  {\"x\": 2}\n]\n";
        let items = lenient(input);
        assert_eq!(items.len(), 3, "{items:?}");
        assert!(items.iter().all(Result::is_ok));
    }

    #[test]
    fn an_error_inside_a_pretty_object_has_its_absolute_line() {
        let input = "{\"ok\":1}\n{\n  \"a\": 1,\n  \"b\": x\n}\n{\"ok\":2}\n";
        let items = lenient(input);
        assert_eq!(items.len(), 2 + 1);
        let err = items[1].as_ref().unwrap_err();
        assert_eq!((err.line, err.column), (4, 8), "{err}");
    }

    #[test]
    fn a_truncated_pretty_object_does_not_swallow_the_next_item() {
        let input = "{\n  \"a\": 1,\n{\"ok\":2}\n";
        let items = lenient(input);
        assert_eq!(items.len(), 2, "{items:?}");
        assert!(items[0].is_err());
        assert!(items[1].is_ok());
    }

    #[test]
    fn invalid_utf8_is_an_error_with_its_position() {
        let items = lenient_bytes(b"{\"a\":1}\n{\"a\":\"\xff\"}\n{\"a\":3}\n");
        assert_eq!(items.len(), 3);
        let err = items[1].as_ref().unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("unicode"), "{err}");
    }

    fn lenient_bytes(input: &[u8]) -> Vec<Result<Value, LineError>> {
        SliceItems::<Value>::new(input).collect()
    }

    #[test]
    fn a_byte_order_mark_at_the_start_is_skipped() {
        let items = lenient("\u{feff}{\"a\":1}\n{\"a\":2}\n");
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(Result::is_ok), "{items:?}");
        assert_eq!(
            parse_all::<Value>("\u{feff}[{\"a\":1}]".as_bytes())
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn newlines_are_found_in_every_position() {
        for len in 0..100 {
            let mut bytes = vec![b'x'; len];
            assert_eq!(find_newline(&bytes), None);
            for at in 0..len {
                bytes[at] = b'\n';
                assert_eq!(find_newline(&bytes), Some(at), "len {len} at {at}");
                bytes[at] = b'x';
            }
        }
    }

    #[test]
    fn strict_parse_reports_the_first_error_position() {
        let err = parse_all::<Value>(b"{\"a\":1}\n{\"a\":}\n").unwrap_err();
        assert_eq!((err.line(), err.column()), (2, 6));
        assert_eq!(parse_all::<Value>(b"  \n"), Err(ParseError::Empty));
        assert_eq!(parse_all::<Value>(b"[]").unwrap().len(), 0);
        assert_eq!(
            parse_all::<Value>(b"[{\"a\":1},{\"a\":2}]").unwrap().len(),
            2
        );
    }
}
