//! The subset of the Cloud Logging query language that `gatehouse logging read FILTER` accepts.
//!
//! # Grammar
//!
//! ```text
//! filter     := expression? EOF                    (an empty filter matches every entry)
//! expression := disjunction ( ["AND"] disjunction )*   (juxtaposition is an implicit AND)
//! disjunction:= unary ( "OR" unary )*
//! unary      := ("NOT" | "-") unary | "(" expression ")" | comparison
//! comparison := path op value | path ":" "*"
//! op         := "=" | "!=" | ":" | ">" | ">=" | "<" | "<="
//! path       := segment ( "." segment )*           segment: a bare name ([A-Za-z0-9_@][A-Za-z0-9_@-]*) or a "quoted" one
//! value      := "quoted string" | bare word        (bare: runs to whitespace, a parenthesis or an operator character)
//! ```
//!
//! **Precedence is Google's, not C's:** `NOT` binds tightest, then `OR`, then `AND`. So `a AND b OR c` means
//! `a AND (b OR c)`, and `a b OR c` means the same. The keywords are uppercase; `--` starts a comment to end of line.
//! Quoted strings take the escapes `\" \\ \/ \b \f \n \r \t \uXXXX`.
//!
//! # Semantics
//!
//! * A path walks the entry's JSON (camelCase, as printed). Where it meets an array it continues into every element,
//!   and the comparison holds if it holds for **any** value reached (`protoPayload.authorizationInfo.permission`).
//! * `=` is exact (case-sensitive) equality; `field != v` is exactly `NOT field = v`, so a missing field matches `!=`
//!   and never matches `=` or any other operator.
//! * `:` ("has") is a case-insensitive substring test; `field:*` means the field exists (and is not `null`).
//! * `<`, `<=`, `>`, `>=`: numbers compare numerically; strings lexicographically, except that two RFC 3339 timestamps
//!   compare as instants (so `timestamp>="2026-11-28T18:28:36Z"` works against nanosecond timestamps).
//! * `severity` compares by rank (`DEFAULT < DEBUG < INFO < NOTICE < WARNING < ERROR < CRITICAL < ALERT < EMERGENCY`)
//!   when the value is a severity name (any case) or Google's number (`severity>=400`).
//! * A number in the filter equals a JSON number numerically (`protoPayload.status.code=7`), a JSON string textually,
//!   and `true`/`false` match JSON booleans.
//!
//! Not supported (rejected with an error, never silently misread): regular expressions (`=~`, `!~`), global
//! restrictions (a bare word with no field), functions such as `sample()`.
//!
//! # Limits
//!
//! Filters longer than [`MAX_FILTER_CHARS`] characters, or nested more than [`MAX_DEPTH`] deep, are rejected, so no
//! input can exhaust the stack. Matching never recurses on the entry's JSON.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;
use thiserror::Error;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::entry::Severity;

/// The longest filter accepted, in characters (Google's limit).
pub const MAX_FILTER_CHARS: usize = 20_000;
/// The deepest nesting of parentheses and `NOT`s accepted.
pub const MAX_DEPTH: usize = 64;

/// A parsed filter. Parse once, then call [`Filter::matches`] per entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    expr: Option<Expr>,
}

/// Why a filter was rejected. Columns count characters from 1.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FilterError {
    #[error("invalid filter at column {column}: {message}")]
    Syntax { column: usize, message: String },
    #[error("invalid filter: it is {chars} characters long; the limit is {MAX_FILTER_CHARS}")]
    TooLong { chars: usize },
    #[error("invalid filter at column {column}: expressions are nested more than {MAX_DEPTH} deep")]
    TooDeep { column: usize },
}

#[derive(Clone, Debug, PartialEq)]
enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Cmp(Comparison),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Has,
    Gt,
    Ge,
    Lt,
    Le,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Has => ":",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Comparison {
    path: Vec<String>,
    op: Op,
    /// `None` for `field:*`.
    value: Option<Literal>,
}

#[derive(Clone, Debug, PartialEq)]
struct Literal {
    text: String,
    /// Lowercased `text`, for `:`.
    lower: String,
    number: Option<f64>,
    /// Severity rank when `text` is a severity name or number and the path is `severity`.
    severity: Option<i32>,
    instant: Option<OffsetDateTime>,
}

impl Filter {
    /// Parses a filter. An empty (or all-whitespace / comment) filter matches everything.
    pub fn parse(s: &str) -> Result<Filter, FilterError> {
        let chars: Vec<char> = s.chars().collect();
        if chars.len() > MAX_FILTER_CHARS {
            return Err(FilterError::TooLong { chars: chars.len() });
        }
        let mut p = Parser { chars, pos: 0, depth: 0 };
        p.skip_ws();
        if p.at_end() {
            return Ok(Filter { expr: None });
        }
        let expr = p.expression()?;
        p.skip_ws();
        if let Some(c) = p.peek() {
            return Err(p.error_at(p.pos, format!("unexpected `{c}`")));
        }
        Ok(Filter { expr: Some(expr) })
    }

    /// Whether `entry` (a serialized `LogEntry`, or any JSON) satisfies the filter.
    pub fn matches(&self, entry: &Value) -> bool {
        self.expr.as_ref().is_none_or(|e| e.eval(entry))
    }
}

impl std::str::FromStr for Filter {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Filter, FilterError> {
        Filter::parse(s)
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Parsing

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

fn is_segment_start(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '@'
}

fn is_segment_char(c: char) -> bool {
    is_segment_start(c) || c == '-'
}

fn is_operator_char(c: char) -> bool {
    matches!(c, '=' | '!' | '<' | '>' | ':')
}

fn ends_bare_value(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '"') || is_operator_char(c)
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn error_at(&self, pos: usize, message: impl Into<String>) -> FilterError {
        FilterError::Syntax { column: pos + 1, message: message.into() }
    }

    /// Skips whitespace and `--` comments.
    fn skip_ws(&mut self) {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => self.pos += 1,
                Some('-') if self.peek_at(1) == Some('-') => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.pos += 1;
                    }
                }
                _ => return,
            }
        }
    }

    /// If an uppercase keyword (`AND`, `OR`, `NOT`) starts at the cursor, as a whole word.
    fn at_keyword(&self, kw: &str) -> bool {
        let n = kw.chars().count();
        kw.chars().enumerate().all(|(i, k)| self.peek_at(i) == Some(k))
            && !self.peek_at(n).is_some_and(|c| is_segment_char(c) || c == '.' || c == '"')
    }

    fn keyword_here(&self) -> Option<&'static str> {
        ["AND", "OR", "NOT"].into_iter().find(|kw| self.at_keyword(kw))
    }

    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FilterError::TooDeep { column: self.pos + 1 });
        }
        Ok(())
    }

    /// expression := disjunction ( ["AND"] disjunction )*
    fn expression(&mut self) -> Result<Expr, FilterError> {
        let mut terms = vec![self.disjunction()?];
        loop {
            self.skip_ws();
            match self.peek() {
                None | Some(')') => break,
                _ => {}
            }
            if self.at_keyword("AND") {
                let and_pos = self.pos;
                self.pos += 3;
                self.skip_ws();
                if self.at_end() || self.peek() == Some(')') || self.at_keyword("AND") || self.at_keyword("OR") {
                    return Err(self.error_at(and_pos, "expected an expression after `AND`"));
                }
            }
            terms.push(self.disjunction()?);
        }
        Ok(if terms.len() == 1 { terms.pop().expect("one term") } else { Expr::And(terms) })
    }

    /// disjunction := unary ( "OR" unary )*
    fn disjunction(&mut self) -> Result<Expr, FilterError> {
        let mut terms = vec![self.unary()?];
        loop {
            self.skip_ws();
            if !self.at_keyword("OR") {
                break;
            }
            let or_pos = self.pos;
            self.pos += 2;
            self.skip_ws();
            if self.at_end() || self.peek() == Some(')') || self.at_keyword("AND") || self.at_keyword("OR") {
                return Err(self.error_at(or_pos, "expected an expression after `OR`"));
            }
            terms.push(self.unary()?);
        }
        Ok(if terms.len() == 1 { terms.pop().expect("one term") } else { Expr::Or(terms) })
    }

    /// unary := ("NOT" | "-") unary | "(" expression ")" | comparison
    fn unary(&mut self) -> Result<Expr, FilterError> {
        self.skip_ws();
        let start = self.pos;
        if let Some(kw @ ("AND" | "OR")) = self.keyword_here() {
            return Err(self.error_at(start, format!("expected an expression before `{kw}`")));
        }
        if self.at_keyword("NOT") || self.peek() == Some('-') {
            let what = if self.peek() == Some('-') { "-" } else { "NOT" };
            self.pos += what.len();
            self.skip_ws();
            if self.at_end() || self.peek() == Some(')') || self.keyword_here().is_some_and(|k| k != "NOT") {
                return Err(self.error_at(start, format!("expected an expression after `{what}`")));
            }
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        match self.peek() {
            Some('(') => {
                self.enter()?;
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(')') {
                    return Err(self.error_at(start, "empty parentheses"));
                }
                if self.at_end() {
                    return Err(self.error_at(start, "expected an expression after `(`"));
                }
                let inner = self.expression()?;
                self.skip_ws();
                if self.peek() != Some(')') {
                    return Err(
                        self.error_at(self.pos, format!("expected `)` to close the `(` at column {}", start + 1))
                    );
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(inner)
            }
            Some(')') => Err(self.error_at(start, "unexpected `)`")),
            Some(c) if is_segment_start(c) || c == '"' => self.comparison(),
            Some(c) => Err(self.error_at(start, format!("expected a field name, `(`, `NOT` or `-`, found `{c}`"))),
            None => Err(self.error_at(start, "expected an expression")),
        }
    }

    fn comparison(&mut self) -> Result<Expr, FilterError> {
        let path_start = self.pos;
        let path = self.path()?;
        let path_text: String = self.chars[path_start..self.pos].iter().collect();
        self.skip_ws();
        let op_pos = self.pos;
        let op = match (self.peek(), self.peek_at(1)) {
            (Some('='), Some('~')) | (Some('!'), Some('~')) => {
                return Err(self.error_at(op_pos, "regular expressions (`=~`, `!~`) are not supported"));
            }
            (Some('!'), Some('=')) => Op::Ne,
            (Some('>'), Some('=')) => Op::Ge,
            (Some('<'), Some('=')) => Op::Le,
            (Some('='), _) => Op::Eq,
            (Some(':'), _) => Op::Has,
            (Some('>'), _) => Op::Gt,
            (Some('<'), _) => Op::Lt,
            _ => {
                return Err(self.error_at(
                    op_pos,
                    format!(
                        "expected a comparison operator (`=`, `!=`, `:`, `<`, `<=`, `>`, `>=`) after `{path_text}`; \
                         searching all fields for a bare word is not supported"
                    ),
                ));
            }
        };
        self.pos += if matches!(op, Op::Ne | Op::Ge | Op::Le) { 2 } else { 1 };
        self.skip_ws();
        let value_pos = self.pos;
        if op == Op::Has && self.peek() == Some('*') && self.peek_at(1).is_none_or(ends_bare_value) {
            self.pos += 1;
            return Ok(Expr::Cmp(Comparison { path, op, value: None }));
        }
        let text = match self.peek() {
            Some('"') => self.quoted()?,
            // gcloud's `--filter` takes single quotes too: `bindings.members:'user:bob@example.com'`.
            Some('\'') => self.single_quoted()?,
            Some(c) if !ends_bare_value(c) && self.keyword_here().is_none() => {
                // A bare value may hold `:`: `bindings.members:user:bob@example.com` compares with
                // `user:bob@example.com`, as gcloud reads it.
                let start = self.pos;
                while self.peek().is_some_and(|c| c == ':' || !ends_bare_value(c)) {
                    self.pos += 1;
                }
                self.chars[start..self.pos].iter().collect()
            }
            _ => return Err(self.error_at(value_pos, format!("expected a value after `{op}`"))),
        };
        let is_severity = path.len() == 1 && path[0] == "severity";
        Ok(Expr::Cmp(Comparison { path, op, value: Some(Literal::new(text, is_severity)) }))
    }

    fn path(&mut self) -> Result<Vec<String>, FilterError> {
        let mut segments = Vec::new();
        loop {
            let seg_pos = self.pos;
            match self.peek() {
                Some('"') => segments.push(self.quoted()?),
                Some(c) if is_segment_start(c) => {
                    let start = self.pos;
                    while self.peek().is_some_and(is_segment_char) {
                        self.pos += 1;
                    }
                    segments.push(self.chars[start..self.pos].iter().collect());
                }
                _ => return Err(self.error_at(seg_pos, "expected a field name after `.`")),
            }
            if self.peek() == Some('.') {
                self.pos += 1;
            } else {
                return Ok(segments);
            }
        }
    }

    /// A single-quoted string, taken as written (no escapes); the cursor is on the opening quote.
    fn single_quoted(&mut self) -> Result<String, FilterError> {
        let open = self.pos;
        let close = (open + 1..self.chars.len())
            .find(|&i| self.chars[i] == '\'')
            .ok_or_else(|| self.error_at(open, "unterminated string (missing closing `'`)"))?;
        self.pos = close + 1;
        Ok(self.chars[open + 1..close].iter().collect())
    }

    /// A double-quoted string with escapes; the cursor is on the opening quote.
    fn quoted(&mut self) -> Result<String, FilterError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error_at(open, "unterminated string (missing closing `\"`)"));
            };
            self.pos += 1;
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let esc_pos = self.pos - 1;
                    let Some(e) = self.peek() else {
                        return Err(self.error_at(open, "unterminated string (missing closing `\"`)"));
                    };
                    self.pos += 1;
                    match e {
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        '/' => out.push('/'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'u' => {
                            let hex: String = (0..4).filter_map(|i| self.peek_at(i)).collect();
                            let ch = (hex.chars().count() == 4 && hex.chars().all(|h| h.is_ascii_hexdigit()))
                                .then(|| u32::from_str_radix(&hex, 16).ok())
                                .flatten()
                                .and_then(char::from_u32);
                            match ch {
                                Some(ch) => {
                                    out.push(ch);
                                    self.pos += 4;
                                }
                                None => {
                                    return Err(self.error_at(
                                        esc_pos,
                                        "invalid `\\u` escape: expected four hex digits naming a character",
                                    ))
                                }
                            }
                        }
                        other => return Err(self.error_at(esc_pos, format!("unknown escape `\\{other}` in string"))),
                    }
                }
                c => out.push(c),
            }
        }
    }
}

impl Literal {
    fn new(text: String, is_severity: bool) -> Literal {
        let number = text.parse::<f64>().ok().filter(|n| n.is_finite() && looks_numeric(&text));
        let severity = if is_severity {
            Severity::from_name(&text).map(Severity::number).or_else(|| number.map(|n| n as i32))
        } else {
            None
        };
        let instant = OffsetDateTime::parse(&text, &Rfc3339).ok();
        Literal { lower: text.to_lowercase(), text, number, severity, instant }
    }
}

/// Rejects words Rust parses as floats but a filter author does not mean as numbers (`inf`, `NaN`, `1e5` is fine).
fn looks_numeric(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
}

// ---------------------------------------------------------------------------------------------------------------------
// Matching

impl Expr {
    fn eval(&self, entry: &Value) -> bool {
        match self {
            Expr::And(terms) => terms.iter().all(|t| t.eval(entry)),
            Expr::Or(terms) => terms.iter().any(|t| t.eval(entry)),
            Expr::Not(inner) => !inner.eval(entry),
            Expr::Cmp(c) => c.eval(entry),
        }
    }
}

impl Comparison {
    fn eval(&self, entry: &Value) -> bool {
        let values = resolve(entry, &self.path);
        let Some(lit) = &self.value else {
            return values.iter().any(|v| !v.is_null());
        };
        match self.op {
            Op::Ne => !values.iter().any(|v| compare(Op::Eq, v, lit)),
            op => values.iter().any(|v| compare(op, v, lit)),
        }
    }
}

/// Every value `path` reaches in `root`, descending into all elements of arrays met on the way and at the end.
/// Iterative, so a deeply nested entry cannot overflow the stack.
fn resolve<'v>(root: &'v Value, path: &[String]) -> Vec<&'v Value> {
    let mut current = vec![root];
    for segment in path {
        let mut next = Vec::new();
        for v in flatten(current) {
            if let Some(child) = v.as_object().and_then(|o| o.get(segment)) {
                next.push(child);
            }
        }
        current = next;
    }
    flatten(current)
}

/// Replaces arrays (at any depth) by their elements.
fn flatten(values: Vec<&Value>) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = values.into_iter().rev().collect();
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items.iter().rev()),
            other => out.push(other),
        }
    }
    out
}

/// `value OP literal` for one scalar value. Objects and nulls satisfy nothing.
fn compare(op: Op, value: &Value, lit: &Literal) -> bool {
    if op == Op::Has {
        return match scalar_text(value) {
            Some(text) => text.to_lowercase().contains(&lit.lower),
            None => false,
        };
    }
    let ordering = match value {
        Value::String(s) => {
            let severity = lit.severity.zip(Severity::from_name(s));
            let instants = lit.instant.zip(lit.instant.and_then(|_| OffsetDateTime::parse(s, &Rfc3339).ok()));
            if let Some((rank, sev)) = severity {
                sev.number().cmp(&rank)
            } else if let Some((filter_time, entry_time)) = instants {
                entry_time.cmp(&filter_time)
            } else {
                s.as_str().cmp(lit.text.as_str())
            }
        }
        Value::Number(n) => match n.as_f64().zip(lit.number).and_then(|(a, b)| a.partial_cmp(&b)) {
            Some(ordering) => ordering,
            None => return false,
        },
        // Booleans only support equality with `true` / `false`.
        Value::Bool(b) => return op == Op::Eq && lit.text.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        Value::Null | Value::Object(_) | Value::Array(_) => return false,
    };
    match op {
        Op::Eq | Op::Ne => ordering == Ordering::Equal,
        Op::Gt => ordering == Ordering::Greater,
        Op::Ge => ordering != Ordering::Less,
        Op::Lt => ordering == Ordering::Less,
        Op::Le => ordering != Ordering::Greater,
        // INVARIANT: `:` returned above.
        Op::Has => false,
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Object(_) | Value::Array(_) => None,
    }
}
