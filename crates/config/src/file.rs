//! Reading config files and dirs into a generic JSON value tree, whatever their format.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::ConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Hcl,
}

/// Like Consul, the extension alone decides the format (case-sensitive).
fn format_of(path: &Path) -> Option<Format> {
    match path.extension()?.to_str()? {
        "json" => Some(Format::Json),
        "hcl" => Some(Format::Hcl),
        _ => None,
    }
}

/// Reads and parses one file; HCL blocks become nested objects as in HCL's JSON form.
pub(crate) fn read(path: &Path) -> Result<Value, ConfigError> {
    let format = format_of(path).ok_or_else(|| ConfigError::UnknownFormat {
        path: path.to_owned(),
    })?;
    let text = fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })?;
    parse(format, &text).map_err(|message| ConfigError::Parse {
        path: path.to_owned(),
        message,
    })
}

fn parse(format: Format, text: &str) -> Result<Value, String> {
    match format {
        Format::Json => serde_json::from_str(text).map_err(|e| e.to_string()),
        Format::Hcl => hcl_to_json(text),
    }
}

/// HCL text as the JSON value tree Consul reads it as: blocks become nested objects, and
/// expressions such as `-1` are evaluated (with no variables). Errors are one line.
///
/// The remainder operator is refused: hcl-rs panics on `8 % 0` (found by the `config_parse`
/// fuzz target), and Consul's HCL has no arithmetic anyway.
pub fn hcl_to_json(text: &str) -> Result<Value, String> {
    let body = hcl::parse(text).map_err(one_line)?;
    if has_remainder(&body) {
        return Err("the remainder operator `%` is not supported".to_owned());
    }
    hcl::eval::from_str(text, &hcl::eval::Context::new()).map_err(one_line)
}

/// An hcl-rs error on one line.
fn one_line(e: hcl::Error) -> String {
    match e {
        // The parser's own Display spans several lines; keep one.
        hcl::Error::Parse(e) => format!(
            "line {}, column {}: {}",
            e.location().line(),
            e.location().column(),
            e.message()
        ),
        other => other.to_string(),
    }
}

/// Whether `body` uses `%` anywhere, in templates too.
fn has_remainder(body: &hcl::Body) -> bool {
    body.iter().any(|structure| match structure {
        hcl::Structure::Attribute(attribute) => expr_has_remainder(&attribute.expr),
        hcl::Structure::Block(block) => has_remainder(&block.body),
    })
}

fn expr_has_remainder(expr: &hcl::Expression) -> bool {
    use hcl::expr::{BinaryOperator, ObjectKey, Operation, TraversalOperator};
    use hcl::Expression as E;
    match expr {
        E::Array(items) => items.iter().any(expr_has_remainder),
        E::Object(object) => object.iter().any(|(key, value)| {
            matches!(key, ObjectKey::Expression(key) if expr_has_remainder(key))
                || expr_has_remainder(value)
        }),
        E::TemplateExpr(template) => {
            hcl::Template::from_expr(template).is_ok_and(|t| template_has_remainder(&t))
        }
        E::Traversal(traversal) => {
            expr_has_remainder(&traversal.expr)
                || traversal.operators.iter().any(
                    |op| matches!(op, TraversalOperator::Index(index) if expr_has_remainder(index)),
                )
        }
        E::FuncCall(call) => call.args.iter().any(expr_has_remainder),
        E::Parenthesis(inner) => expr_has_remainder(inner),
        E::Conditional(c) => [&c.cond_expr, &c.true_expr, &c.false_expr]
            .into_iter()
            .any(expr_has_remainder),
        E::Operation(operation) => match operation.as_ref() {
            Operation::Unary(unary) => expr_has_remainder(&unary.expr),
            Operation::Binary(binary) => {
                binary.operator == BinaryOperator::Mod
                    || expr_has_remainder(&binary.lhs_expr)
                    || expr_has_remainder(&binary.rhs_expr)
            }
        },
        E::ForExpr(for_expr) => {
            expr_has_remainder(&for_expr.collection_expr)
                || for_expr.key_expr.as_ref().is_some_and(expr_has_remainder)
                || expr_has_remainder(&for_expr.value_expr)
                || for_expr.cond_expr.as_ref().is_some_and(expr_has_remainder)
        }
        _ => false,
    }
}

fn template_has_remainder(template: &hcl::Template) -> bool {
    use hcl::template::{Directive, Element};
    template.elements().iter().any(|element| match element {
        Element::Literal(_) => false,
        Element::Interpolation(interpolation) => expr_has_remainder(&interpolation.expr),
        Element::Directive(directive) => match directive.as_ref() {
            Directive::If(d) => {
                expr_has_remainder(&d.cond_expr)
                    || template_has_remainder(&d.true_template)
                    || d.false_template
                        .as_ref()
                        .is_some_and(template_has_remainder)
            }
            Directive::For(d) => {
                expr_has_remainder(&d.collection_expr) || template_has_remainder(&d.template)
            }
        },
    })
}

/// The `*.json` and `*.hcl` files in `dir`, in lexical order of their names. Other files
/// and subdirectories are skipped, like Consul.
pub(crate) fn dir_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let read_dir_error = |error| ConfigError::ReadDir {
        path: dir.to_owned(),
        error,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_dir_error)? {
        let path = entry.map_err(read_dir_error)?.path();
        if format_of(&path).is_none() {
            continue;
        }
        // `fs::metadata` follows symlinks, so a link to a file counts as a file.
        let metadata = fs::metadata(&path).map_err(|error| ConfigError::Read {
            path: path.clone(),
            error,
        })?;
        if metadata.is_file() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}
