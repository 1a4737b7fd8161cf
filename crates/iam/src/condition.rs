//! IAM Conditions: the subset of CEL that Gatehouse evaluates, parsed once when a policy is set.
//!
//! Supported: `request.time` compared (`<`, `<=`, `>`, `>=`, `==`, `!=`) with `timestamp('RFC3339')` in either
//! order; `resource.name == | != 'str'`; `resource.name.startsWith('str')`; `resource.type == | != 'str'`;
//! `&&`, `||`, `!`, parentheses, `true`, `false`; single- or double-quoted strings.
//! Anything else is rejected at set time with a reason naming the unsupported construct, so a policy never holds a
//! condition that Gatehouse would silently mis-evaluate.
//!
//! Must not: read the clock (the time comes in [`ConditionContext::now`]) or recurse without bound (nesting depth
//! and length are limited, and `&&`/`||` chains are kept flat).

use crate::error::IamError;
use std::time::SystemTime;

/// Google's limit on the length of a condition expression.
pub const MAX_EXPRESSION_LEN: usize = 12_800;
/// How deeply parentheses and `!` may nest.
pub const MAX_DEPTH: usize = 32;

/// The request attributes a condition reads.
#[derive(Clone, Copy, Debug)]
pub struct ConditionContext<'a> {
    pub now: SystemTime,
    /// Relative resource name, e.g. `projects/p/serviceAccounts/x`.
    pub resource_name: &'a str,
    /// Resource type, e.g. `run.googleapis.com/Service`.
    pub resource_type: &'a str,
}

/// A parsed condition.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    root: Node,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Cmp {
    fn flip(self) -> Cmp {
        match self {
            Cmp::Lt => Cmp::Gt,
            Cmp::Le => Cmp::Ge,
            Cmp::Gt => Cmp::Lt,
            Cmp::Ge => Cmp::Le,
            Cmp::Eq | Cmp::Ne => self,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Bool(bool),
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    /// `request.time OP ts`, normalised so the attribute is on the left.
    Time(Cmp, SystemTime),
    NameEq {
        negate: bool,
        value: String,
    },
    NameStartsWith(String),
    TypeEq {
        negate: bool,
        value: String,
    },
}

impl Condition {
    /// Parses `expr`; anything outside the supported subset is an [`IamError::InvalidCondition`].
    pub fn parse(expr: &str) -> Result<Condition, IamError> {
        let fail = |reason: String| IamError::InvalidCondition { expression: expr.to_owned(), reason };
        if expr.len() > MAX_EXPRESSION_LEN {
            return Err(fail(format!("an expression is at most {MAX_EXPRESSION_LEN} characters")));
        }
        if expr.trim().is_empty() {
            return Err(fail("the expression is empty".into()));
        }
        let tokens = lex(expr).map_err(fail)?;
        let mut p = Parser { tokens, pos: 0, depth: 0 };
        let root = p.or().map_err(fail)?;
        if let Some(t) = p.peek() {
            return Err(fail(t.unexpected("after the end of the expression")));
        }
        Ok(Condition { root })
    }

    /// Evaluates the condition for one request.
    pub fn eval(&self, ctx: &ConditionContext) -> bool {
        eval(&self.root, ctx)
    }
}

fn eval(node: &Node, ctx: &ConditionContext) -> bool {
    match node {
        Node::Bool(b) => *b,
        Node::Not(n) => !eval(n, ctx),
        Node::And(ns) => ns.iter().all(|n| eval(n, ctx)),
        Node::Or(ns) => ns.iter().any(|n| eval(n, ctx)),
        Node::Time(op, ts) => match op {
            Cmp::Lt => ctx.now < *ts,
            Cmp::Le => ctx.now <= *ts,
            Cmp::Gt => ctx.now > *ts,
            Cmp::Ge => ctx.now >= *ts,
            Cmp::Eq => ctx.now == *ts,
            Cmp::Ne => ctx.now != *ts,
        },
        Node::NameEq { negate, value } => (ctx.resource_name == value) != *negate,
        Node::NameStartsWith(prefix) => ctx.resource_name.starts_with(prefix.as_str()),
        Node::TypeEq { negate, value } => (ctx.resource_type == value) != *negate,
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// A dotted path such as `resource.name.startsWith`.
    Path(String),
    Str(String),
    Number(String),
    LParen,
    RParen,
    Comma,
    Not,
    And,
    Or,
    Cmp(Cmp),
    /// An operator we recognise but do not support (`+`, `in`, `?`, `[`, …).
    Other(String),
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Path(p) => format!("`{p}`"),
            Tok::Str(_) => "string literal".into(),
            Tok::Number(n) => format!("number `{n}`"),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Not => "`!`".into(),
            Tok::And => "`&&`".into(),
            Tok::Or => "`||`".into(),
            Tok::Cmp(c) => format!("`{}`", cmp_str(*c)),
            Tok::Other(o) => format!("`{o}`"),
        }
    }

    /// What to say when this token turns up where it cannot be used.
    fn unexpected(&self, context: &str) -> String {
        match self {
            Tok::Other(op) => {
                let what = match op.as_str() {
                    "+" | "-" | "*" | "/" | "%" => "arithmetic is",
                    "?" | ":" => "the conditional operator is",
                    "[" | "]" | "{" | "}" => "lists and maps are",
                    "in" => "membership tests are",
                    "." => "member access on this value is",
                    _ => "this operator is",
                };
                format!("unsupported operator `{op}`: {what} not supported; {SUPPORTED}")
            }
            Tok::Number(n) => {
                format!("number `{n}`: numeric values are not supported; {SUPPORTED}")
            }
            t => format!("unexpected {} {context}", t.describe()),
        }
    }
}

fn cmp_str(c: Cmp) -> &'static str {
    match c {
        Cmp::Lt => "<",
        Cmp::Le => "<=",
        Cmp::Gt => ">",
        Cmp::Ge => ">=",
        Cmp::Eq => "==",
        Cmp::Ne => "!=",
    }
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => (out.push(Tok::LParen), i += 1).1,
            ')' => (out.push(Tok::RParen), i += 1).1,
            ',' => (out.push(Tok::Comma), i += 1).1,
            '&' if next == Some('&') => (out.push(Tok::And), i += 2).1,
            '|' if next == Some('|') => (out.push(Tok::Or), i += 2).1,
            '=' if next == Some('=') => (out.push(Tok::Cmp(Cmp::Eq)), i += 2).1,
            '!' if next == Some('=') => (out.push(Tok::Cmp(Cmp::Ne)), i += 2).1,
            '!' => (out.push(Tok::Not), i += 1).1,
            '<' if next == Some('=') => (out.push(Tok::Cmp(Cmp::Le)), i += 2).1,
            '<' => (out.push(Tok::Cmp(Cmp::Lt)), i += 1).1,
            '>' if next == Some('=') => (out.push(Tok::Cmp(Cmp::Ge)), i += 2).1,
            '>' => (out.push(Tok::Cmp(Cmp::Gt)), i += 1).1,
            '\'' | '"' => {
                if chars.get(i + 1) == Some(&c) && chars.get(i + 2) == Some(&c) {
                    return Err("triple-quoted strings are not supported".into());
                }
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("a string literal is not closed".into()),
                        Some(&q) if q == c => break,
                        Some('\\') => {
                            let escaped = match chars.get(i + 1) {
                                Some('\\') => '\\',
                                Some('\'') => '\'',
                                Some('"') => '"',
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some(other) => {
                                    return Err(format!("unsupported escape `\\{other}` in a string literal"))
                                }
                                None => return Err("a string literal is not closed".into()),
                            };
                            value.push(escaped);
                            i += 2;
                        }
                        Some(&ch) => {
                            value.push(ch);
                            i += 1;
                        }
                    }
                }
                i += 1;
                out.push(Tok::Str(value));
            }
            c if c.is_ascii_digit() => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                out.push(Tok::Number(chars[start..i].iter().collect()));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if word.ends_with('.') || word.contains("..") {
                    return Err(format!("`{word}` is not a valid attribute"));
                }
                if (word == "r" || word == "b") && matches!(chars.get(i), Some('\'' | '"')) {
                    return Err(format!("`{word}`-prefixed string literals are not supported"));
                }
                out.push(if word == "in" { Tok::Other(word) } else { Tok::Path(word) });
            }
            _ => {
                out.push(Tok::Other(c.to_string()));
                i += 1;
            }
        }
    }
    Ok(out)
}

const SUPPORTED: &str = "supported are `request.time` compared with `timestamp('…')`, `resource.name ==`/`!=`, \
`resource.name.startsWith('…')`, `resource.type ==`/`!=`, `&&`, `||`, `!`, parentheses, `true` and `false`";

struct Parser {
    tokens: Vec<Tok>,
    pos: usize,
    depth: usize,
}

/// One side of a comparison.
enum Operand {
    Time,
    Name,
    Type,
    Timestamp(SystemTime),
    Str(String),
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, want: Tok, context: &str) -> Result<(), String> {
        match self.next() {
            Some(t) if t == want => Ok(()),
            Some(Tok::Other(o)) => Err(Tok::Other(o).unexpected(context)),
            Some(t) => Err(format!("expected {} {context}, found {}", want.describe(), t.describe())),
            None => Err(format!("expected {} {context}, found the end of the expression", want.describe())),
        }
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("the expression nests deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Node, String> {
        let mut terms = vec![self.and()?];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 { terms.pop().unwrap_or(Node::Bool(false)) } else { Node::Or(terms) })
    }

    fn and(&mut self) -> Result<Node, String> {
        let mut terms = vec![self.unary()?];
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            terms.push(self.unary()?);
        }
        Ok(if terms.len() == 1 { terms.pop().unwrap_or(Node::Bool(false)) } else { Node::And(terms) })
    }

    fn unary(&mut self) -> Result<Node, String> {
        if self.peek() == Some(&Tok::Not) {
            self.pos += 1;
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Node::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Node, String> {
        match self.peek() {
            Some(Tok::LParen) => {
                self.pos += 1;
                self.enter()?;
                let inner = self.or()?;
                self.expect(Tok::RParen, "to close `(`")?;
                self.depth -= 1;
                Ok(inner)
            }
            Some(Tok::Path(p)) if p == "true" || p == "false" => {
                let b = p == "true";
                self.pos += 1;
                if matches!(self.peek(), Some(Tok::Cmp(_))) {
                    return Err("comparing `true`/`false` is not supported; use the value directly or `!`".into());
                }
                Ok(Node::Bool(b))
            }
            Some(Tok::Path(p)) if p == "resource.name.startsWith" => {
                self.pos += 1;
                self.expect(Tok::LParen, "after `resource.name.startsWith`")?;
                let prefix = match self.next() {
                    Some(Tok::Str(s)) => s,
                    _ => return Err("`resource.name.startsWith` takes one string literal".into()),
                };
                self.expect(Tok::RParen, "after the argument of `resource.name.startsWith`")?;
                Ok(Node::NameStartsWith(prefix))
            }
            _ => self.comparison(),
        }
    }

    fn operand(&mut self) -> Result<Operand, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Operand::Str(s)),
            Some(Tok::Path(p)) => match p.as_str() {
                "request.time" => Ok(Operand::Time),
                "resource.name" => Ok(Operand::Name),
                "resource.type" => Ok(Operand::Type),
                "timestamp" => {
                    self.expect(Tok::LParen, "after `timestamp`")?;
                    let text = match self.next() {
                        Some(Tok::Str(s)) => s,
                        _ => return Err("`timestamp` takes one RFC 3339 string literal".into()),
                    };
                    self.expect(Tok::RParen, "after the argument of `timestamp`")?;
                    let parsed = time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                        .map_err(|e| format!("`{text}` is not an RFC 3339 timestamp ({e})"))?;
                    Ok(Operand::Timestamp(SystemTime::from(parsed)))
                }
                other => Err(unsupported_path(other, self.peek() == Some(&Tok::LParen))),
            },
            Some(t @ (Tok::Number(_) | Tok::Other(_))) => Err(t.unexpected("")),
            Some(t) => Err(format!("expected a condition, found {}", t.describe())),
            None => Err("the expression ends where a condition was expected".into()),
        }
    }

    fn comparison(&mut self) -> Result<Node, String> {
        let left = self.operand()?;
        let op = match self.next() {
            Some(Tok::Cmp(op)) => op,
            Some(t @ Tok::Other(_)) => return Err(t.unexpected("")),
            Some(t) => {
                return Err(format!(
                    "expected a comparison (`==`, `!=`, `<`, `<=`, `>`, `>=`) after {}, found {}",
                    describe_operand(&left),
                    t.describe()
                ))
            }
            None => return Err(format!("{} alone is not a condition; compare it", describe_operand(&left))),
        };
        let right = self.operand()?;
        let (attr, op, value) = match (&left, &right) {
            (Operand::Time | Operand::Name | Operand::Type, _) => (left, op, right),
            (_, Operand::Time | Operand::Name | Operand::Type) => (right, op.flip(), left),
            _ => return Err("a comparison needs `request.time`, `resource.name` or `resource.type` on one side".into()),
        };
        match (attr, op, value) {
            (Operand::Time, op, Operand::Timestamp(ts)) => Ok(Node::Time(op, ts)),
            (Operand::Time, _, _) => Err("`request.time` can only be compared with `timestamp('…')`".into()),
            (Operand::Name, Cmp::Eq | Cmp::Ne, Operand::Str(value)) => Ok(Node::NameEq { negate: op == Cmp::Ne, value }),
            (Operand::Type, Cmp::Eq | Cmp::Ne, Operand::Str(value)) => Ok(Node::TypeEq { negate: op == Cmp::Ne, value }),
            (Operand::Name | Operand::Type, Cmp::Eq | Cmp::Ne, _) => {
                Err("`resource.name` and `resource.type` can only be compared with a string literal".into())
            }
            (Operand::Name | Operand::Type, op, _) => Err(format!(
                "ordering operator `{}` on `resource.name`/`resource.type` is not supported; use `==`, `!=` or `resource.name.startsWith`",
                cmp_str(op)
            )),
            _ => Err("a comparison needs `request.time`, `resource.name` or `resource.type` on one side".into()),
        }
    }
}

fn describe_operand(o: &Operand) -> &'static str {
    match o {
        Operand::Time => "`request.time`",
        Operand::Name => "`resource.name`",
        Operand::Type => "`resource.type`",
        Operand::Timestamp(_) => "`timestamp(…)`",
        Operand::Str(_) => "a string literal",
    }
}

fn unsupported_path(path: &str, is_call: bool) -> String {
    if is_call {
        let func = path.rsplit('.').next().unwrap_or(path);
        let on = path.rsplit_once('.').map(|(recv, _)| format!(" on `{recv}`")).unwrap_or_default();
        return format!("unsupported function `{func}`{on}; {SUPPORTED}");
    }
    format!("unsupported attribute `{path}`; {SUPPORTED}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(rfc3339: &str) -> SystemTime {
        SystemTime::from(time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).unwrap())
    }

    fn check(expr: &str, now: &str, name: &str, ty: &str) -> bool {
        let c = Condition::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        c.eval(&ConditionContext { now: at(now), resource_name: name, resource_type: ty })
    }

    const T: &str = "2020-06-01T00:00:00Z";
    const SA: &str = "projects/p/serviceAccounts/a@p.iam.gserviceaccount.com";
    const SA_TYPE: &str = "iam.googleapis.com/ServiceAccount";

    #[test]
    fn supported_forms_evaluate() {
        let table: &[(&str, bool)] = &[
            ("request.time < timestamp('2020-10-01T00:00:00.000Z')", true),
            ("request.time > timestamp('2020-10-01T00:00:00Z')", false),
            ("request.time <= timestamp('2020-06-01T00:00:00Z')", true),
            ("request.time >= timestamp('2020-06-01T00:00:00Z')", true),
            ("request.time == timestamp('2020-06-01T02:00:00+02:00')", true),
            ("request.time != timestamp('2020-06-01T00:00:00Z')", false),
            ("timestamp('2020-10-01T00:00:00Z') > request.time", true),
            ("timestamp(\"2020-01-01T00:00:00Z\") >= request.time", false),
            ("resource.name == 'projects/p/serviceAccounts/a@p.iam.gserviceaccount.com'", true),
            ("resource.name != \"projects/p/serviceAccounts/a@p.iam.gserviceaccount.com\"", false),
            ("'projects/p/serviceAccounts/other' == resource.name", false),
            ("resource.name.startsWith('projects/p/serviceAccounts/')", true),
            ("resource.name.startsWith('projects/q/')", false),
            ("resource.type == 'iam.googleapis.com/ServiceAccount'", true),
            ("resource.type != 'iam.googleapis.com/ServiceAccount'", false),
            ("true", true),
            ("false", false),
            ("!false", true),
            ("!!true", true),
            ("true && false", false),
            ("true || false", true),
            ("false || false || true", true),
            ("(true || false) && !(false)", true),
            ("true || false && false", true),
            ("(true || false) && false", false),
            (
                "resource.type == 'iam.googleapis.com/ServiceAccount' && request.time < timestamp('2021-01-01T00:00:00Z')",
                true,
            ),
            ("resource.name == 'it\\'s'", false),
        ];
        for (expr, want) in table {
            assert_eq!(check(expr, T, SA, SA_TYPE), *want, "{expr}");
        }
    }

    #[test]
    fn time_comparisons_follow_the_clock() {
        let c = Condition::parse("request.time < timestamp('2020-10-01T00:00:00Z')").unwrap();
        let deadline = at("2020-10-01T00:00:00Z");
        let ctx = |now| ConditionContext { now, resource_name: "", resource_type: "" };
        assert!(c.eval(&ctx(deadline - Duration::from_secs(1))));
        assert!(!c.eval(&ctx(deadline)));
    }

    #[test]
    fn unsupported_forms_are_rejected_with_a_reason() {
        let table: &[(&str, &str)] = &[
            ("request.auth.claims.email == 'a@b.c'", "unsupported attribute `request.auth.claims.email`"),
            ("resource.name.endsWith('x')", "unsupported function `endsWith`"),
            ("api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', [])", "unsupported function `getAttribute`"),
            ("has(resource.labels)", "unsupported function `has`"),
            ("request.time.getHours('UTC') > 9", "unsupported function `getHours`"),
            ("1 + 1 == 2", "number `1`"),
            ("request.time - request.time", "arithmetic"),
            ("1 == request.time", "number `1`"),
            ("resource.name == 'a' + 'b'", "arithmetic"),
            ("resource.name in ['a']", "`in`"),
            ("true ? true : false", "conditional operator"),
            ("request.time < timestamp('yesterday')", "not an RFC 3339 timestamp"),
            ("request.time < 'x'", "only be compared with `timestamp"),
            ("resource.name < 'x'", "ordering operator `<`"),
            ("resource.name", "alone is not a condition"),
            ("'a' == 'b'", "on one side"),
            ("(true", "to close `(`"),
            ("true)", "after the end"),
            ("resource.name == 'x", "not closed"),
            ("", "empty"),
            ("true == true", "comparing `true`"),
            ("resource.name == r'x'", "prefixed string"),
            ("true & false", "unsupported operator `&`"),
        ];
        for (expr, want) in table {
            match Condition::parse(expr) {
                Err(IamError::InvalidCondition { expression, reason }) => {
                    assert_eq!(expression, *expr);
                    assert!(reason.contains(want), "{expr}: {reason}");
                }
                other => panic!("{expr}: {other:?}"),
            }
        }
    }

    #[test]
    fn deep_nesting_and_long_expressions_are_rejected_not_crashing() {
        let deep = format!("{}true{}", "(".repeat(5000), ")".repeat(5000));
        assert!(Condition::parse(&deep).unwrap_err().to_string().contains("nests deeper"));
        let nots = format!("{}true", "!".repeat(5000));
        assert!(Condition::parse(&nots).is_err());
        let ok = format!("{}true{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(Condition::parse(&ok).is_ok());
        let long = "true && ".repeat(2000) + "true";
        assert!(Condition::parse(&long).unwrap_err().to_string().contains("at most 12800"));
        // A long flat chain within the limit parses and evaluates without deep recursion.
        let chain = "true && ".repeat(1500) + "false";
        let c = Condition::parse(&chain).unwrap();
        assert!(!c.eval(&ConditionContext { now: SystemTime::UNIX_EPOCH, resource_name: "", resource_type: "" }));
    }
}
