//! The syntax layer of the rule language: HCL (version 1, as Consul's `hashicorp/hcl` decoder
//! reads it) or JSON, both turned into one [`Node`] tree that keeps repeated keys in order.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A value of the rule text, independent of the syntax it was written in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// A string literal (quoted string or heredoc).
    Str(String),
    /// A number literal, kept as written.
    Num(String),
    /// A boolean literal.
    Bool(bool),
    /// JSON `null`.
    Null,
    /// A list (`[...]`).
    List(Vec<Node>),
    /// An object: its items in order, repeated keys kept.
    Object(Vec<(String, Node)>),
}

/// Parses rule text: JSON when its first non-space character is `{`, HCL otherwise.
pub(crate) fn parse(text: &str) -> Result<Vec<(String, Node)>, String> {
    if text.trim_start().starts_with('{') {
        match serde_json::from_str::<Node>(text).map_err(|e| e.to_string())? {
            Node::Object(items) => Ok(items),
            _ => Err("root is not an object".to_owned()),
        }
    } else {
        Parser::new(text).file()
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

/// Builds a [`Node`] from JSON without losing repeated object keys.
struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Num(v.to_string()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Num(v.to_string()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Num(v.to_string()))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Node>()? {
            items.push((key, value));
        }
        Ok(Node::Object(items))
    }
}

/// A position in the text, 1-based, columns counted in characters as HCL does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    line: usize,
    column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// The tokens of HCL version 1.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    /// A quoted string: its value and its text as written (quotes included).
    Str(String, String),
    Heredoc(String),
    Number(String),
    Bool(bool),
    LBrace,
    RBrace,
    LBrack,
    RBrack,
    Assign,
    Comma,
    Eof,
}

impl Token {
    fn describe(&self) -> &'static str {
        match self {
            Token::Ident(_) => "IDENT",
            Token::Str(..) => "STRING",
            Token::Heredoc(_) => "HEREDOC",
            Token::Number(_) => "NUMBER",
            Token::Bool(_) => "BOOL",
            Token::LBrace => "LBRACE",
            Token::RBrace => "RBRACE",
            Token::LBrack => "LBRACK",
            Token::RBrack => "RBRACK",
            Token::Assign => "ASSIGN",
            Token::Comma => "COMMA",
            Token::Eof => "EOF",
        }
    }
}

/// Splits HCL text into tokens.
struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    pos: Pos,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer {
            chars: text.chars().peekable(),
            pos: Pos { line: 1, column: 1 },
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.pos.line += 1;
            self.pos.column = 1;
        } else {
            self.pos.column += 1;
        }
        Some(c)
    }

    fn error(&self, pos: Pos, msg: impl fmt::Display) -> String {
        format!("At {pos}: {msg}")
    }

    /// Skips white space and comments.
    fn skip_trivia(&mut self) -> Result<(), String> {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('#') => self.skip_line(),
                Some('/') => {
                    let start = self.pos;
                    self.bump();
                    match self.bump() {
                        Some('/') => self.skip_line(),
                        Some('*') => loop {
                            match self.bump() {
                                Some('*') if self.peek() == Some('/') => {
                                    self.bump();
                                    break;
                                }
                                Some(_) => {}
                                None => return Err(self.error(start, "comment not terminated")),
                            }
                        },
                        _ => return Err(self.error(start, "expected '/' for comment")),
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.bump() {
            if c == '\n' {
                break;
            }
        }
    }

    fn next_token(&mut self) -> Result<(Token, Pos), String> {
        self.skip_trivia()?;
        let pos = self.pos;
        let Some(c) = self.peek() else {
            return Ok((Token::Eof, pos));
        };
        let token = match c {
            '{' | '}' | '[' | ']' | '=' | ',' => {
                self.bump();
                match c {
                    '{' => Token::LBrace,
                    '}' => Token::RBrace,
                    '[' => Token::LBrack,
                    ']' => Token::RBrack,
                    '=' => Token::Assign,
                    _ => Token::Comma,
                }
            }
            '"' => self.string(pos)?,
            '<' => self.heredoc(pos)?,
            c if c.is_ascii_digit() || c == '-' => self.number(pos)?,
            c if c.is_alphabetic() || c == '_' => {
                let mut ident = String::new();
                while let Some(c) = self.peek() {
                    if c.is_alphanumeric() || matches!(c, '_' | '-' | '.') {
                        ident.push(c);
                        self.bump();
                    } else {
                        break;
                    }
                }
                match ident.as_str() {
                    "true" => Token::Bool(true),
                    "false" => Token::Bool(false),
                    _ => Token::Ident(ident),
                }
            }
            c => return Err(self.error(pos, format!("illegal char {c:?}"))),
        };
        Ok((token, pos))
    }

    fn number(&mut self, pos: Pos) -> Result<Token, String> {
        let mut text = String::new();
        if self.peek() == Some('-') {
            text.push('-');
            self.bump();
        }
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric()
                || c == '.'
                || ((c == '-' || c == '+') && text.ends_with(['e', 'E']))
            {
                text.push(c);
                self.bump();
            } else {
                break;
            }
        }
        let digits = text.trim_start_matches('-');
        let valid = digits.parse::<f64>().is_ok()
            || digits
                .strip_prefix("0x")
                .or_else(|| digits.strip_prefix("0X"))
                .is_some_and(|hex| !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()));
        if valid && digits.starts_with(|c: char| c.is_ascii_digit()) {
            Ok(Token::Number(text))
        } else {
            Err(self.error(pos, format!("illegal number {text:?}")))
        }
    }

    fn string(&mut self, pos: Pos) -> Result<Token, String> {
        let mut raw = String::from('"');
        let mut value = String::new();
        self.bump();
        // Depth of `${ ... }` interpolations, which HCL keeps verbatim.
        let mut braces = 0usize;
        loop {
            let Some(c) = self.bump() else {
                return Err(self.error(pos, "literal not terminated"));
            };
            raw.push(c);
            match c {
                '\n' => return Err(self.error(pos, "literal not terminated")),
                '"' if braces == 0 => return Ok(Token::Str(value, raw)),
                '$' if self.peek() == Some('{') => {
                    braces += 1;
                    value.push('$');
                    value.push('{');
                    raw.push('{');
                    self.bump();
                }
                '}' if braces > 0 => {
                    braces -= 1;
                    value.push('}');
                }
                '\\' => {
                    let Some(e) = self.bump() else {
                        return Err(self.error(pos, "literal not terminated"));
                    };
                    raw.push(e);
                    let decoded = match e {
                        'a' => '\u{7}',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        'v' => '\u{b}',
                        '\\' | '"' => e,
                        'x' | 'u' | 'U' => {
                            let len = match e {
                                'x' => 2,
                                'u' => 4,
                                _ => 8,
                            };
                            let mut code = 0u32;
                            for _ in 0..len {
                                let digit = self.bump().and_then(|d| {
                                    raw.push(d);
                                    d.to_digit(16)
                                });
                                let Some(digit) = digit else {
                                    return Err(self.error(pos, "invalid escape sequence"));
                                };
                                code = code * 16 + digit;
                            }
                            match char::from_u32(code) {
                                Some(ch) => ch,
                                None => return Err(self.error(pos, "invalid escape sequence")),
                            }
                        }
                        _ if braces > 0 => {
                            value.push('\\');
                            e
                        }
                        _ => return Err(self.error(pos, "unknown escape sequence")),
                    };
                    value.push(decoded);
                }
                c => value.push(c),
            }
        }
    }

    fn heredoc(&mut self, pos: Pos) -> Result<Token, String> {
        self.bump();
        if self.bump() != Some('<') {
            return Err(self.error(pos, "heredoc expected second '<'"));
        }
        let indented = self.peek() == Some('-');
        if indented {
            self.bump();
        }
        let mut anchor = String::new();
        while let Some(c) = self.peek() {
            if c == '\n' || c == '\r' {
                break;
            }
            anchor.push(c);
            self.bump();
        }
        if self.peek() == Some('\r') {
            self.bump();
        }
        if self.bump() != Some('\n')
            || anchor.is_empty()
            || !anchor.chars().all(|c| c.is_alphanumeric() || c == '_')
        {
            return Err(self.error(pos, "invalid heredoc anchor"));
        }
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let mut ended = false;
            loop {
                match self.bump() {
                    Some('\n') => break,
                    Some(c) => line.push(c),
                    None => {
                        ended = true;
                        break;
                    }
                }
            }
            let trimmed = line.trim_end_matches('\r');
            let closing = if indented {
                trimmed.trim_start()
            } else {
                trimmed
            };
            if closing == anchor {
                break;
            }
            if ended {
                return Err(self.error(pos, "heredoc not terminated"));
            }
            lines.push(line);
        }
        if indented {
            let indent = lines
                .iter()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.len() - l.trim_start().len())
                .min()
                .unwrap_or(0);
            for line in &mut lines {
                let cut = line
                    .char_indices()
                    .nth(indent)
                    .map_or(line.len(), |(i, _)| i);
                let cut = cut.min(line.len() - line.trim_start().len());
                line.drain(..cut);
            }
        }
        let mut value = String::new();
        for line in lines {
            value.push_str(&line);
            value.push('\n');
        }
        Ok(Token::Heredoc(value))
    }
}

/// An item key: its value, its text as written (quotes included) and its position.
type Key = (String, String, Pos);

/// The deepest nesting accepted, so hostile input cannot exhaust the stack.
const MAX_DEPTH: usize = 128;

/// A recursive-descent parser for HCL version 1 object lists.
struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<(Token, Pos)>,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            lexer: Lexer::new(text),
            peeked: None,
            depth: 0,
        }
    }

    fn next(&mut self) -> Result<(Token, Pos), String> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lexer.next_token(),
        }
    }

    fn peek(&mut self) -> Result<&Token, String> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next_token()?);
        }
        Ok(self.peeked.as_ref().map_or(&Token::Eof, |(t, _)| t))
    }

    fn file(mut self) -> Result<Vec<(String, Node)>, String> {
        self.object_list(false)
    }

    fn enter(&mut self, pos: Pos) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("At {pos}: nesting too deep"));
        }
        Ok(())
    }

    /// The items of an object, up to `}` (`in_object`) or the end of the text.
    fn object_list(&mut self, in_object: bool) -> Result<Vec<(String, Node)>, String> {
        let mut items = Vec::new();
        let mut assigned: Vec<String> = Vec::new();
        loop {
            match self.peek()? {
                Token::RBrace if in_object => break,
                Token::Eof if !in_object => break,
                _ => {}
            }
            let (keys, assign, value) = self.object_item()?;
            if assign {
                if let Some((raw, pos)) = keys.first().map(|(_, raw, pos)| (raw, pos)) {
                    if assigned.contains(raw) {
                        return Err(format!(
                            "The argument {raw:?} at {pos} was already set. Each argument can only be defined once"
                        ));
                    }
                    assigned.push(raw.clone());
                }
            }
            let mut keys = keys.into_iter().map(|(key, _, _)| key).rev();
            let mut node = value;
            let mut first = keys.next().unwrap_or_default();
            for outer in keys {
                node = Node::Object(vec![(first, node)]);
                first = outer;
            }
            items.push((first, node));
            if self.peek()? == &Token::Comma {
                self.next()?;
            }
        }
        Ok(items)
    }

    /// One item: keys, then `= value` or `{ object }`; whether it was an assignment.
    fn object_item(&mut self) -> Result<(Vec<Key>, bool, Node), String> {
        let mut keys = Vec::new();
        loop {
            let (token, pos) = self.next()?;
            match token {
                Token::Ident(name) => keys.push((name.clone(), name, pos)),
                Token::Str(value, raw) => keys.push((value, raw, pos)),
                Token::Assign if keys.len() == 1 => {
                    let value = self.value()?;
                    return Ok((keys, true, value));
                }
                Token::Assign if keys.len() > 1 => {
                    return Err(format!(
                        "At {pos}: nested object expected: LBRACE got: ASSIGN"
                    ));
                }
                Token::LBrace if !keys.is_empty() => {
                    let value = self.object(pos)?;
                    return Ok((keys, false, value));
                }
                Token::Eof if !keys.is_empty() => {
                    let names: Vec<&str> = keys.iter().map(|(_, raw, _)| raw.as_str()).collect();
                    return Err(format!(
                        "At {pos}: key '{}' expected start of object ('{{') or assignment ('=')",
                        names.join(" ")
                    ));
                }
                other => {
                    return Err(format!(
                        "At {pos}: expected: IDENT | STRING | ASSIGN | LBRACE got: {}",
                        other.describe()
                    ));
                }
            }
        }
    }

    /// The body of an object whose `{` was just read.
    fn object(&mut self, pos: Pos) -> Result<Node, String> {
        self.enter(pos)?;
        let items = self.object_list(true)?;
        match self.next()? {
            (Token::RBrace, _) => {}
            (other, pos) => {
                return Err(format!(
                    "At {pos}: object expected closing RBRACE got: {}",
                    other.describe()
                ))
            }
        }
        self.depth -= 1;
        Ok(Node::Object(items))
    }

    /// A value after `=` or in a list.
    fn value(&mut self) -> Result<Node, String> {
        let (token, pos) = self.next()?;
        match token {
            Token::Str(value, _) | Token::Heredoc(value) => Ok(Node::Str(value)),
            Token::Number(text) => Ok(Node::Num(text)),
            Token::Bool(b) => Ok(Node::Bool(b)),
            Token::LBrace => self.object(pos),
            Token::LBrack => self.list(pos),
            other => Err(format!("At {pos}: Unknown token: {}", other.describe())),
        }
    }

    /// The elements of a list whose `[` was just read.
    fn list(&mut self, pos: Pos) -> Result<Node, String> {
        self.enter(pos)?;
        let mut items = Vec::new();
        loop {
            if self.peek()? == &Token::RBrack {
                self.next()?;
                break;
            }
            items.push(self.value()?);
            match self.next()? {
                (Token::Comma, _) => {}
                (Token::RBrack, _) => break,
                (other, pos) => {
                    return Err(format!(
                        "At {pos}: unexpected token while parsing list: {}",
                        other.describe()
                    ));
                }
            }
        }
        self.depth -= 1;
        Ok(Node::List(items))
    }
}
