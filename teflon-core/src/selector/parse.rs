//! The string form of a label selector, as `labels.Parse` reads it, and the label key and
//! value rules both forms check.

use super::requirement::{Requirement, SelectorOp};

/// A label selector could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A token where another was expected.
    #[error("label selector: expected {expected} at position {position}, found {found}")]
    Unexpected {
        /// What the grammar wanted.
        expected: &'static str,
        /// What came instead.
        found: String,
        /// 0-based character position.
        position: usize,
    },
    /// A key that is not a valid label key.
    #[error(
        "label selector: invalid key {0:?} (expected [prefix/]name, name of 1-63 alphanumerics, '-', '_' or '.')"
    )]
    InvalidKey(String),
    /// A value that is not a valid label value.
    #[error(
        "label selector: invalid value {0:?} (expected at most 63 alphanumerics, '-', '_' or '.')"
    )]
    InvalidValue(String),
    /// `>` / `<` need an integer.
    #[error("label selector: {0:?} is not an integer (required by '>' and '<')")]
    NotAnInteger(String),
    /// A `matchExpressions` operator Kubernetes does not know.
    #[error("label selector: {0:?} is not a valid label selector operator")]
    InvalidOperator(String),
    /// `In` / `NotIn` without values, or `Exists` / `DoesNotExist` with some.
    #[error(
        "label selector: key {key:?}: operator {operator} needs values (In, NotIn) or none (Exists, DoesNotExist)"
    )]
    Values {
        /// The label key.
        key: String,
        /// The operator.
        operator: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Eq,
    DoubleEq,
    NotEq,
    Bang,
    Gt,
    Lt,
    LParen,
    RParen,
    Comma,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident(s) => format!("{s:?}"),
            Token::Eq => "'='".to_owned(),
            Token::DoubleEq => "'=='".to_owned(),
            Token::NotEq => "'!='".to_owned(),
            Token::Bang => "'!'".to_owned(),
            Token::Gt => "'>'".to_owned(),
            Token::Lt => "'<'".to_owned(),
            Token::LParen => "'('".to_owned(),
            Token::RParen => "')'".to_owned(),
            Token::Comma => "','".to_owned(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '(' | ')' | ',' | '>' | '<')
}

fn lex(input: &str) -> Vec<(usize, Token)> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let tok = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => Token::LParen,
            ')' => Token::RParen,
            ',' => Token::Comma,
            '>' => Token::Gt,
            '<' => Token::Lt,
            '!' if chars.get(i + 1) == Some(&'=') => {
                i += 1;
                Token::NotEq
            }
            '!' => Token::Bang,
            '=' if chars.get(i + 1) == Some(&'=') => {
                i += 1;
                Token::DoubleEq
            }
            '=' => Token::Eq,
            _ => {
                let mut ident = String::new();
                while i < chars.len() && !chars[i].is_whitespace() && !is_special(chars[i]) {
                    ident.push(chars[i]);
                    i += 1;
                }
                out.push((start, Token::Ident(ident)));
                continue;
            }
        };
        i += 1;
        out.push((start, tok));
    }
    out
}

struct SelectorParser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    end: usize,
}

impl SelectorParser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).map(|(_, t)| t.clone());
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    fn unexpected(&self, expected: &'static str) -> SelectorError {
        match self.tokens.get(self.pos) {
            Some((position, tok)) => SelectorError::Unexpected {
                expected,
                found: tok.describe(),
                position: *position,
            },
            None => SelectorError::Unexpected {
                expected,
                found: "end of input".to_owned(),
                position: self.end,
            },
        }
    }

    fn key(&mut self) -> Result<String, SelectorError> {
        match self.peek() {
            Some(Token::Ident(k)) => {
                let k = k.clone();
                self.pos += 1;
                validate_key(&k)?;
                Ok(k)
            }
            _ => Err(self.unexpected("a label key")),
        }
    }

    /// A value after `=`, `==` or `!=`: may be empty (`a=`).
    fn value(&mut self) -> Result<String, SelectorError> {
        match self.peek() {
            Some(Token::Ident(v)) => {
                let v = v.clone();
                self.pos += 1;
                validate_value(&v)?;
                Ok(v)
            }
            None | Some(Token::Comma) => Ok(String::new()),
            _ => Err(self.unexpected("a label value")),
        }
    }

    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        if self.next() != Some(Token::LParen) {
            self.pos = self.pos.saturating_sub(1);
            return Err(self.unexpected("'('"));
        }
        let mut values = Vec::new();
        loop {
            match self.peek() {
                Some(Token::Ident(v)) => {
                    let v = v.clone();
                    self.pos += 1;
                    validate_value(&v)?;
                    values.push(v);
                }
                // An empty element (`(a,)`, `(,a)`) is the empty value, as in Kubernetes;
                // `()` holds nothing, which `in` and `notin` refuse.
                Some(Token::RParen) if !values.is_empty() => values.push(String::new()),
                Some(Token::Comma) => values.push(String::new()),
                _ => return Err(self.unexpected("a label value")),
            }
            match self.next() {
                Some(Token::Comma) => continue,
                Some(Token::RParen) => return Ok(values),
                _ => {
                    self.pos = self.pos.saturating_sub(1);
                    return Err(self.unexpected("',' or ')'"));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        if self.peek() == Some(&Token::Bang) {
            self.pos += 1;
            let key = self.key()?;
            return Ok(Requirement {
                key,
                op: SelectorOp::DoesNotExist,
                values: Vec::new(),
            });
        }
        let key = self.key()?;
        let (op, values) = match self.peek() {
            None | Some(Token::Comma) => (SelectorOp::Exists, Vec::new()),
            Some(Token::Eq | Token::DoubleEq) => {
                self.pos += 1;
                (SelectorOp::Equals, vec![self.value()?])
            }
            Some(Token::NotEq) => {
                self.pos += 1;
                (SelectorOp::NotEquals, vec![self.value()?])
            }
            Some(Token::Gt | Token::Lt) => {
                let op = if self.peek() == Some(&Token::Gt) {
                    SelectorOp::GreaterThan
                } else {
                    SelectorOp::LessThan
                };
                self.pos += 1;
                let v = match self.next() {
                    Some(Token::Ident(v)) => v,
                    _ => {
                        self.pos = self.pos.saturating_sub(1);
                        return Err(self.unexpected("an integer"));
                    }
                };
                if v.parse::<i64>().is_err() {
                    return Err(SelectorError::NotAnInteger(v));
                }
                (op, vec![v])
            }
            Some(Token::Ident(word)) if word == "in" || word == "notin" => {
                let op = if word == "in" {
                    SelectorOp::In
                } else {
                    SelectorOp::NotIn
                };
                self.pos += 1;
                (op, self.value_set()?)
            }
            _ => return Err(self.unexpected("an operator (=, ==, !=, in, notin, >, <) or ','")),
        };
        Ok(Requirement { key, op, values })
    }
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().next().is_some_and(is_alnum)
        && s.chars().last().is_some_and(is_alnum)
        && s.chars()
            .all(|c| is_alnum(c) || matches!(c, '-' | '_' | '.'))
}

fn valid_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.len() <= 63
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

pub(super) fn validate_key(key: &str) -> Result<(), SelectorError> {
    let ok = match key.split_once('/') {
        Some((prefix, name)) => valid_dns_subdomain(prefix) && valid_name(name),
        None => valid_name(key),
    };
    if ok {
        Ok(())
    } else {
        Err(SelectorError::InvalidKey(key.chars().take(300).collect()))
    }
}

pub(super) fn validate_value(value: &str) -> Result<(), SelectorError> {
    if value.is_empty() || valid_name(value) {
        Ok(())
    } else {
        Err(SelectorError::InvalidValue(
            value.chars().take(100).collect(),
        ))
    }
}

/// The requirements of the string form, in input order (none for blank input).
pub(super) fn parse(input: &str) -> Result<Vec<Requirement>, SelectorError> {
    let tokens = lex(input);
    let mut p = SelectorParser {
        tokens,
        pos: 0,
        end: input.chars().count(),
    };
    let mut requirements = Vec::new();
    if p.peek().is_none() {
        return Ok(requirements);
    }
    loop {
        requirements.push(p.requirement()?);
        match p.next() {
            None => break,
            Some(Token::Comma) => continue,
            Some(_) => {
                p.pos -= 1;
                return Err(p.unexpected("',' or end of selector"));
            }
        }
    }
    Ok(requirements)
}
