//! Consul's `?filter` expression language (HashiCorp go-bexpr semantics).
//!
//! A [`Filter`] is parsed once from the `filter` query parameter and then evaluated against
//! every top-level element of an endpoint's result, serialized to Consul's JSON shape
//! (PascalCase field names). Elements for which [`Filter::matches`] is `false` are dropped.
//!
//! # Syntax
//!
//! ```text
//! <Selector> == <Value>           <Selector> != <Value>
//! <Selector> is empty             <Selector> is not empty
//! <Value> in <Selector>           <Value> not in <Selector>
//! <Selector> contains <Value>     <Selector> not contains <Value>
//! <Selector> matches <Value>      <Selector> not matches <Value>
//! <Expr> and <Expr>    <Expr> or <Expr>    not <Expr>    ( <Expr> )
//! ```
//!
//! * Precedence is `not` > `and` > `or`; keywords are lower-case and case-sensitive.
//! * A selector is a field name (`[A-Za-z][A-Za-z0-9_]*`) followed by any number of
//!   `.Field` or `["any key"]` segments, e.g. `Service.Meta.env` or `NodeMeta["rack-id"]`.
//! * A value is a double-quoted string with Go escapes (`"a\tb"`), a backtick raw string
//!   (`` `^v1\.` ``), a number (`8080`, `-1.5`) or a bare word (`passing`, `true`,
//!   `foo.bar`) which stands for its own text.
//! * Whitespace between tokens is optional wherever the boundary is unambiguous
//!   (`(a==1)and(b==2)` is accepted); a keyword is never a prefix of a longer word.
//!
//! # Semantics
//!
//! The literal is interpreted according to the JSON type found at the selector: strings
//! compare as text, numbers parse the literal as a number (Go `ParseInt`/`ParseFloat` rules;
//! a literal that is not a number is simply unequal) and booleans parse it with Go's
//! `ParseBool` rules (`true`, `True`, `TRUE`, `t`, `1`, …). The private `eval` module
//! documents the full rules; the ones that matter most are on [`Filter::matches`].
//!
//! # Errors
//!
//! [`Filter::parse`] rejects an empty expression, unbalanced parentheses, a missing operator,
//! value or selector, trailing input, unterminated strings, bad escapes, malformed numbers
//! (bexpr has no `0x2a` or `1e3` literal: quote such values), malformed `[...]` indexes,
//! invalid regular expressions and nesting deeper than 64 levels. The message names the
//! line and column and what was expected there.

mod eval;
mod parse;
#[cfg(test)]
mod tests;

use regex::Regex;

/// A parsed filter expression, ready to be evaluated against many JSON values.
#[derive(Debug, Clone)]
pub struct Filter {
    expr: Expr,
}

/// Why a filter expression was rejected; its `Display` is the HTTP 400 body text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Failed to create boolean expression evaluator: {0}")]
pub struct FilterError(String);

impl Filter {
    /// Parses `expr`, compiling any regular expression it contains.
    pub fn parse(expr: &str) -> Result<Filter, FilterError> {
        parse::parse(expr).map(|expr| Filter { expr })
    }

    /// Evaluates against one element of a result, as Consul's JSON shape (PascalCase fields).
    ///
    /// As in go-bexpr v0.1.2 (which Consul uses):
    /// * a selector that has to continue through an array is evaluated against every element
    ///   and matches if it matches for **any** of them, negated operators included: on a
    ///   CheckServiceNode `Checks.Status != "passing"` selects instances with at least one
    ///   non-passing check, `not Checks.Status == "passing"` those with no passing check, and
    ///   with no checks at all both are false;
    /// * a missing key (or JSON `null`) behaves as an empty value: `==`, `in`, `contains`,
    ///   `matches` and `is not empty` are false, their negations and `is empty` are true;
    /// * an operator that does not apply to the JSON type found (e.g. `==` on an array,
    ///   `contains` on a number, selecting a field of a string) is false whether negated or
    ///   not, since bexpr would have rejected it against Consul's Go types.
    pub fn matches(&self, value: &serde_json::Value) -> bool {
        eval::eval(&self.expr, value)
    }
}

/// The syntax tree of an expression.
#[derive(Debug, Clone)]
enum Expr {
    /// True when every operand is (at least two operands).
    And(Vec<Expr>),
    /// True when any operand is (at least two operands).
    Or(Vec<Expr>),
    /// Logical negation.
    Not(Box<Expr>),
    /// A single comparison against the value at a selector.
    Match(Match),
}

/// One match expression: `selector <op> value`, possibly negated (`!=`, `not in`, …).
#[derive(Debug, Clone)]
struct Match {
    /// The path of field names / map keys to walk from the element's root.
    selector: Vec<String>,
    /// The positive form of the operator, with its literal.
    op: MatchOp,
    /// Whether the operator is the negated form (`!=`, `not in`, `is not empty`, …).
    negated: bool,
}

/// The positive form of a match operator.
#[derive(Debug, Clone)]
enum MatchOp {
    /// `==`: the raw literal, coerced to the type found at the selector.
    Equal(String),
    /// `in` / `contains`: the raw literal.
    In(String),
    /// `is empty`.
    IsEmpty,
    /// `matches`: the compiled regular expression.
    Matches(Regex),
}
