//! Go's `strconv.Quote` (what `%q` prints), for the strings Consul quotes in its error texts:
//! ACL rule errors, intention and config entry validation. Clients match those texts, so every
//! crate quotes through this one function rather than each its own approximation.
//!
//! Std only: no dependencies, no IO.

/// `s` as Go's `strconv.Quote` writes it: in double quotes, with `"` and `\` escaped, the C
/// escapes for the seven control characters that have one, and `\x`, `\u` or `\U` for
/// everything else Go does not print as it is.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_print(c) => out.push(c),
            c if u32::from(c) < 0x80 => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if u32::from(c) < 0x10000 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push_str(&format!("\\U{:08x}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

/// Approximates Go's `unicode.IsPrint`: graphic characters and the ASCII space; not control,
/// format, private-use or separator characters other than the space.
fn is_print(c: char) -> bool {
    c == ' '
        || !(c.is_control()
            || c.is_whitespace()
            || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}' | '\u{e000}'..='\u{f8ff}')
            || ('\u{f0000}'..='\u{10ffff}').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quotes_as_go_does() {
        let check = |input: &str, expected: &str| assert_eq!(quote(input), expected, "{input:?}");
        check("web", r#""web""#);
        check("", r#""""#);
        check(r#"a"b\c"#, r#""a\"b\\c""#);
        check("a\nb\tc\r", r#""a\nb\tc\r""#);
        check("\u{7}\u{8}\u{b}\u{c}", r#""\a\b\v\f""#);
        check("\u{1}\u{7f}", r#""\x01\x7f""#);
        check("é ü", "\"é ü\"");
        check("a\u{a0}b", r#""a\u00a0b""#);
        check("soft\u{ad}hyphen", r#""soft\u00adhyphen""#);
        check("\u{feff}", r#""\ufeff""#);
        check("\u{f0000}", r#""\U000f0000""#);
        check("😀", "\"😀\"");
    }
}
