//! A hand-written parser for bexpr's grammar, with PEG-style ordered choice.
//!
//! Every rule either succeeds, fails *softly* (the caller may backtrack and try another
//! alternative) or fails *hard* (the input is definitely malformed: an unterminated string, a
//! bad escape, a bad number, a bad index, an invalid regex or too much nesting). Soft failures
//! record what was expected at the position they happened; when the whole parse fails, the
//! farthest such position and its expectations become the error message, the way PEG
//! parser generators (pigeon, which bexpr uses) report syntax errors.
//!
//! Deviations from bexpr's grammar, all of them accepting strictly more input:
//! * whitespace around keywords is optional when the token boundary is unambiguous
//!   (`(a == 1)and(b == 2)`, `not(a == 1)`); a keyword must still not run into a
//!   following identifier character (`andx` is not `and x`);
//! * double-quoted strings may contain `\"`.

use super::{Expr, FilterError, Match, MatchOp};
use regex::Regex;

/// How deeply parentheses and `not`s may nest; bounds the parser's and evaluator's recursion.
const MAX_NESTING: usize = 64;

/// Parses a whole filter expression.
pub(super) fn parse(src: &str) -> Result<Expr, FilterError> {
    let mut parser = Parser {
        src,
        pos: 0,
        depth: 0,
        farthest: 0,
        expected: Vec::new(),
    };
    match parser.input() {
        Ok(expr) => Ok(expr),
        Err(Fail::Hard(err)) => Err(err),
        Err(Fail::Soft) => Err(parser.syntax_error()),
    }
}

/// Why a rule did not match.
enum Fail {
    /// Did not match here; the caller may try something else.
    Soft,
    /// The input is malformed; parsing stops.
    Hard(FilterError),
}

type PResult<T> = Result<T, Fail>;

/// Parser state: the input, a byte cursor, and the farthest soft failure seen so far.
struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
    farthest: usize,
    expected: Vec<String>,
}

/// Label recorded when no match expression, `not` or `(` starts at a position.
const EXPECT_EXPR: &str = "an expression";
/// Label recorded when a selector is not followed by any operator.
const EXPECT_OPERATOR: &str = "an operator";

impl<'a> Parser<'a> {
    // ----- grammar rules -------------------------------------------------------------

    /// `Input <- _? OrExpression _? EOF`
    fn input(&mut self) -> PResult<Expr> {
        self.skip_ws();
        if self.at_end() {
            return Err(Fail::Hard(FilterError("empty expression".to_owned())));
        }
        let expr = self.or_expr()?;
        self.skip_ws();
        if !self.at_end() {
            return Err(self.soft("end of input"));
        }
        Ok(expr)
    }

    /// `OrExpression <- AndExpression ("or" AndExpression)*`
    fn or_expr(&mut self) -> PResult<Expr> {
        let mut terms = vec![self.and_expr()?];
        while let Some(term) = self.attempt(|p| {
            p.skip_ws();
            p.keyword("or")?;
            p.skip_ws();
            p.and_expr()
        })? {
            terms.push(term);
        }
        Ok(collapse(terms, Expr::Or))
    }

    /// `AndExpression <- NotExpression ("and" NotExpression)*`
    fn and_expr(&mut self) -> PResult<Expr> {
        let mut terms = vec![self.not_expr()?];
        while let Some(term) = self.attempt(|p| {
            p.skip_ws();
            p.keyword("and")?;
            p.skip_ws();
            p.not_expr()
        })? {
            terms.push(term);
        }
        Ok(collapse(terms, Expr::And))
    }

    /// `NotExpression <- "not" NotExpression / ParenthesizedExpression`
    fn not_expr(&mut self) -> PResult<Expr> {
        let negated = self.attempt(|p| {
            if !p.eat_keyword("not") {
                return Err(Fail::Soft);
            }
            p.skip_ws();
            p.nested(Self::not_expr)
        })?;
        match negated {
            Some(Expr::Not(inner)) => Ok(*inner),
            Some(inner) => Ok(Expr::Not(Box::new(inner))),
            None => self.paren_expr(),
        }
    }

    /// `ParenthesizedExpression <- "(" OrExpression ")" / MatchExpression`
    fn paren_expr(&mut self) -> PResult<Expr> {
        let grouped = self.attempt(|p| {
            if !p.eat("(") {
                return Err(Fail::Soft);
            }
            p.nested(|p| {
                p.skip_ws();
                let expr = p.or_expr()?;
                p.skip_ws();
                p.punct(")")?;
                Ok(expr)
            })
        })?;
        match grouped {
            Some(expr) => Ok(expr),
            None => self.match_expr(),
        }
    }

    /// `MatchExpression <- Selector Op Value / Selector Op / Value ("in" / "not in") Selector`
    fn match_expr(&mut self) -> PResult<Expr> {
        let start = self.pos;
        let (raw, from_selector) = match self.selector_opt()? {
            Some(selector) => {
                if let Some((op, negated)) = self.attempt(Self::selector_op)? {
                    return Ok(Expr::Match(Match {
                        selector,
                        op,
                        negated,
                    }));
                }
                // A bare word before `in` is a value standing for its own text, as in bexpr.
                (selector.join("."), true)
            }
            None => match self.literal_opt()? {
                Some(raw) => (raw, false),
                None => return Err(self.soft_at(start, EXPECT_EXPR)),
            },
        };
        let negated = self.in_op(from_selector)?;
        self.skip_ws();
        let at = self.pos;
        let selector = self
            .selector_opt()?
            .ok_or_else(|| self.soft_at(at, "a selector"))?;
        Ok(Expr::Match(Match {
            selector,
            op: MatchOp::In(raw),
            negated,
        }))
    }

    /// The operator (and value) after a selector; `Ok((op, negated))`.
    fn selector_op(&mut self) -> PResult<(MatchOp, bool)> {
        self.skip_ws();
        if self.eat("==") {
            return Ok((MatchOp::Equal(self.value()?), false));
        }
        if self.eat("!=") {
            return Ok((MatchOp::Equal(self.value()?), true));
        }
        if self.eat_keyword("is") {
            self.skip_ws();
            let negated = self.eat_keyword("not");
            if negated {
                self.skip_ws();
                self.keyword("empty")?;
            } else {
                self.one_of(&["empty", "not"])?;
            }
            return Ok((MatchOp::IsEmpty, negated));
        }
        let negated = self.eat_keyword("not");
        if negated {
            self.skip_ws();
        }
        if self.eat_keyword("contains") {
            return Ok((MatchOp::In(self.value()?), negated));
        }
        if self.eat_keyword("matches") {
            return Ok((MatchOp::Matches(self.regex()?), negated));
        }
        if negated {
            self.one_of(&["contains", "matches"])?;
        }
        Err(self.soft(EXPECT_OPERATOR))
    }

    /// `"in"` or `"not" "in"`; returns whether it was negated.
    fn in_op(&mut self, after_selector: bool) -> PResult<bool> {
        self.skip_ws();
        if self.eat_keyword("in") {
            return Ok(false);
        }
        let at = self.pos;
        if self.eat_keyword("not") {
            self.skip_ws();
            self.keyword("in")?;
            return Ok(true);
        }
        if after_selector {
            // The selector-first alternative already recorded "an operator" here.
            return Err(Fail::Soft);
        }
        self.record(at, "\"in\"");
        Err(self.soft_at(at, "\"not in\""))
    }

    /// A value after an operator: a bare word (selector text), a number or a string.
    fn value(&mut self) -> PResult<String> {
        self.skip_ws();
        let at = self.pos;
        if let Some(path) = self.selector_opt()? {
            return Ok(path.join("."));
        }
        self.literal_opt()?
            .ok_or_else(|| self.soft_at(at, "a value"))
    }

    /// The value after `matches`, compiled as a regular expression.
    fn regex(&mut self) -> PResult<Regex> {
        self.skip_ws();
        let at = self.pos;
        let raw = self.value()?;
        Regex::new(&raw).map_err(|err| {
            let reason = err.to_string();
            let reason = reason.lines().last().unwrap_or_default();
            let reason = reason.strip_prefix("error: ").unwrap_or(reason);
            self.hard(at, &format!("invalid regular expression {raw:?}: {reason}"))
        })
    }

    /// A number or string literal, or `None` if neither starts here.
    fn literal_opt(&mut self) -> PResult<Option<String>> {
        if let Some(number) = self.number_opt()? {
            return Ok(Some(number));
        }
        self.string_opt()
    }

    /// `Selector <- Identifier ("." Identifier / "[" StringLiteral "]")*`, or `None` if no
    /// identifier starts here.
    fn selector_opt(&mut self) -> PResult<Option<Vec<String>>> {
        let Some(first) = self.identifier() else {
            return Ok(None);
        };
        let mut path = vec![first];
        loop {
            match self.peek() {
                Some('.') => {
                    self.pos += 1;
                    let Some(segment) = self.identifier() else {
                        self.record(self.pos, "a field name");
                        self.pos -= 1;
                        break;
                    };
                    path.push(segment);
                }
                Some('[') => path.push(self.index()?),
                _ => break,
            }
        }
        Ok(Some(path))
    }

    /// `"[" _? StringLiteral _? "]"`, at a `[`.
    fn index(&mut self) -> PResult<String> {
        self.pos += 1;
        self.skip_ws();
        let at = self.pos;
        let key = self
            .string_opt()?
            .ok_or_else(|| self.hard(at, "invalid index: expected a quoted string after \"[\""))?;
        self.skip_ws();
        if !self.eat("]") {
            return Err(self.hard(self.pos, "unclosed index expression: expected \"]\""));
        }
        Ok(key)
    }

    /// `Identifier <- [a-zA-Z] [a-zA-Z0-9_]*`
    fn identifier(&mut self) -> Option<String> {
        let rest = self.rest();
        if !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return None;
        }
        let len = rest.find(|c| !is_ident_char(c)).unwrap_or(rest.len());
        self.pos += len;
        Some(rest[..len].to_owned())
    }

    /// `NumberLiteral <- "-"? ("0" / [1-9][0-9]*) ("." [0-9]+)?`, which must be followed by
    /// whitespace, `)` or the end of input.
    fn number_opt(&mut self) -> PResult<Option<String>> {
        let bytes = self.src.as_bytes();
        let start = self.pos;
        let mut end = start + usize::from(bytes.get(start) == Some(&b'-'));
        match bytes.get(end) {
            Some(b'0') => end += 1,
            Some(b'1'..=b'9') => end = skip_digits(bytes, end),
            _ => return Ok(None),
        }
        if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
            end = skip_digits(bytes, end + 1);
        }
        match bytes.get(end) {
            None | Some(b' ' | b'\t' | b'\r' | b'\n' | b')') => {}
            Some(_) => return Err(self.hard(start, "invalid number literal")),
        }
        self.pos = end;
        Ok(Some(self.src[start..end].to_owned()))
    }

    /// A double-quoted (Go escapes) or backtick (raw) string, or `None` if none starts here.
    fn string_opt(&mut self) -> PResult<Option<String>> {
        let start = self.pos;
        let quote = match self.peek() {
            Some(quote @ ('"' | '`')) => quote,
            _ => return Ok(None),
        };
        let body_start = start + 1;
        let Some(len) = closing_quote(&self.src[body_start..], quote) else {
            return Err(self.hard(start, "unterminated string literal"));
        };
        let body = &self.src[body_start..body_start + len];
        let text = if quote == '`' {
            body.to_owned()
        } else {
            unescape(body).map_err(|(offset, msg)| self.hard(body_start + offset, &msg))?
        };
        self.pos = body_start + len + 1;
        Ok(Some(text))
    }

    // ----- combinators and low-level helpers -------------------------------------------

    /// Runs `rule`; on a soft failure rewinds and returns `Ok(None)`.
    fn attempt<T>(&mut self, rule: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<Option<T>> {
        let start = self.pos;
        match rule(self) {
            Ok(value) => Ok(Some(value)),
            Err(Fail::Soft) => {
                self.pos = start;
                Ok(None)
            }
            Err(hard) => Err(hard),
        }
    }

    /// Runs `rule` one nesting level deeper, failing hard past [`MAX_NESTING`].
    fn nested<T>(&mut self, rule: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<T> {
        if self.depth >= MAX_NESTING {
            let msg = format!("expression is nested too deeply (more than {MAX_NESTING} levels)");
            return Err(self.hard(self.pos, &msg));
        }
        self.depth += 1;
        let result = rule(self);
        self.depth -= 1;
        result
    }

    /// Consumes `lit` if the input continues with it.
    fn eat(&mut self, lit: &str) -> bool {
        let found = self.rest().starts_with(lit);
        if found {
            self.pos += lit.len();
        }
        found
    }

    /// Consumes `lit` or records it as expected.
    fn punct(&mut self, lit: &str) -> PResult<()> {
        if self.eat(lit) {
            Ok(())
        } else {
            Err(self.soft(&format!("{lit:?}")))
        }
    }

    /// Consumes the keyword `kw` if it is not immediately followed by an identifier character.
    fn eat_keyword(&mut self, kw: &str) -> bool {
        let rest = self.rest();
        let found = rest.starts_with(kw) && !rest[kw.len()..].starts_with(is_ident_char);
        if found {
            self.pos += kw.len();
        }
        found
    }

    /// Consumes the keyword `kw` or records it as expected.
    fn keyword(&mut self, kw: &str) -> PResult<()> {
        self.one_of(&[kw])
    }

    /// Consumes the first of `keywords` present, or records them all as expected.
    fn one_of(&mut self, keywords: &[&str]) -> PResult<()> {
        if keywords.iter().any(|kw| self.eat_keyword(kw)) {
            return Ok(());
        }
        for kw in keywords {
            self.record(self.pos, &format!("{kw:?}"));
        }
        Err(Fail::Soft)
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        self.pos += rest.len() - trimmed.len();
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    // ----- errors ------------------------------------------------------------------------

    /// Notes that `what` was expected at byte offset `pos`.
    fn record(&mut self, pos: usize, what: &str) {
        if pos > self.farthest {
            self.farthest = pos;
            self.expected.clear();
        }
        if pos == self.farthest && !self.expected.iter().any(|e| e == what) {
            self.expected.push(what.to_owned());
        }
    }

    /// A soft failure expecting `what` at the cursor.
    fn soft(&mut self, what: &str) -> Fail {
        self.soft_at(self.pos, what)
    }

    /// A soft failure expecting `what` at `pos`.
    fn soft_at(&mut self, pos: usize, what: &str) -> Fail {
        self.record(pos, what);
        Fail::Soft
    }

    /// A hard failure at `pos`.
    fn hard(&self, pos: usize, msg: &str) -> Fail {
        Fail::Hard(FilterError(format!("{}: {msg}", self.location(pos))))
    }

    /// The error for a parse that failed softly: the farthest position reached and what
    /// could have continued there.
    fn syntax_error(&self) -> FilterError {
        let found = describe(&self.src[self.farthest..]);
        let msg = if self.expected.is_empty() {
            format!("unexpected {found}")
        } else {
            format!("expected {}, found {found}", alternatives(&self.expected))
        };
        FilterError(format!("{}: {msg}", self.location(self.farthest)))
    }

    /// `line L, column C` (both 1-based, columns counted in characters) of byte offset `pos`.
    fn location(&self, pos: usize) -> String {
        let before = &self.src[..pos];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        format!("line {line}, column {column}")
    }
}

/// The only term itself, or all terms combined with `combine`.
fn collapse(mut terms: Vec<Expr>, combine: fn(Vec<Expr>) -> Expr) -> Expr {
    if terms.len() == 1 {
        if let Some(only) = terms.pop() {
            return only;
        }
    }
    combine(terms)
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The index just past the run of ASCII digits starting at `from`.
fn skip_digits(bytes: &[u8], from: usize) -> usize {
    from + bytes[from..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count()
}

/// The byte length of a string body up to (not including) its closing `quote`. Inside
/// double quotes a backslash protects the next byte (UTF-8 continuation bytes are never
/// `"` or `\`, so scanning bytes is safe).
fn closing_quote(body: &str, quote: char) -> Option<usize> {
    if quote == '`' {
        return body.find('`');
    }
    let bytes = body.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => return Some(i),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// Decodes Go's double-quoted string escapes (`strconv.Unquote`). Errors carry the byte
/// offset of the offending escape within `body`.
fn unescape(body: &str) -> Result<String, (usize, String)> {
    let bytes = body.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => i = unescape_one(bytes, i, &mut out)?,
            b'\n' => return Err((i, "newline in string literal".to_owned())),
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| (0, "string literal is not valid UTF-8".to_owned()))
}

/// Decodes the escape sequence at `bytes[at]` (a backslash) into `out`, returning the index
/// just past it.
fn unescape_one(bytes: &[u8], at: usize, out: &mut Vec<u8>) -> Result<usize, (usize, String)> {
    let invalid = |what: &str| {
        (
            at,
            format!("invalid escape sequence in string literal: {what}"),
        )
    };
    let Some(&kind) = bytes.get(at + 1) else {
        return Err(invalid("trailing backslash"));
    };
    let simple = match kind {
        b'a' => Some(0x07),
        b'b' => Some(0x08),
        b'f' => Some(0x0c),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        b'v' => Some(0x0b),
        b'\\' | b'"' => Some(kind),
        _ => None,
    };
    if let Some(byte) = simple {
        out.push(byte);
        return Ok(at + 2);
    }
    let (digits_at, len, radix) = match kind {
        b'x' => (at + 2, 2, 16),
        b'0'..=b'7' => (at + 1, 3, 8),
        b'u' => (at + 2, 4, 16),
        b'U' => (at + 2, 8, 16),
        _ => {
            let shown = String::from_utf8_lossy(&bytes[at..(at + 2).min(bytes.len())]).into_owned();
            return Err(invalid(&format!("{shown:?}")));
        }
    };
    let code = bytes
        .get(digits_at..digits_at + len)
        .and_then(|digits| digits_value(digits, radix))
        .ok_or_else(|| invalid("malformed numeric escape"))?;
    if matches!(kind, b'u' | b'U') {
        let c = char::from_u32(code).ok_or_else(|| invalid("not a valid Unicode code point"))?;
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
    } else {
        out.push(u8::try_from(code).map_err(|_| invalid("octal value above \\377"))?);
    }
    Ok(digits_at + len)
}

/// The value of `digits` in `radix`, if every byte is a digit of that radix.
fn digits_value(digits: &[u8], radix: u32) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| {
        let digit = char::from(d).to_digit(radix)?;
        Some(acc * radix + digit)
    })
}

/// A short rendering of what the input continues with, for error messages.
fn describe(rest: &str) -> String {
    let Some(first) = rest.chars().next() else {
        return "end of input".to_owned();
    };
    if first.is_whitespace() {
        return "whitespace".to_owned();
    }
    if "()[]".contains(first) {
        return format!("{:?}", first.to_string());
    }
    let token: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && !"()[]".contains(*c))
        .take(24)
        .collect();
    format!("{token:?}")
}

/// `a`, `a or b`, `a, b or c`.
fn alternatives(items: &[String]) -> String {
    match items.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, init)) => format!("{} or {last}", init.join(", ")),
        None => String::new(),
    }
}
