//! Consul's validation of intentions, text for text.
//!
//! Two layers, as in Consul: a legacy (ID-based) write is first checked on its own by
//! `Intention.Validate` (all problems, listed go-multierror style); then every write, legacy or
//! not, rebuilds the destination's `service-intentions` entry and checks it as a whole
//! (`ServiceIntentionsConfigEntry.validate`), stopping at the first problem and naming it by
//! the source's position in the entry (`Sources[1].Action …`).
//!
//! Beyond Consul: regular expressions must compile here, because this crate evaluates them
//! (Consul leaves that to Envoy, which rejects the whole listener instead).

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{
    Action, Intention, Pattern, Permission, SourceType, DEFAULT_NAMESPACE, WILDCARD,
};
use crate::precedence::precedence;
use crate::write::{IntentionWrite, PermissionWrite};
pub(crate) use go_text::quote as go_quote;

/// Consul's limits on opaque values (`agent/structs`).
pub(crate) const META_MAX_KEY_PAIRS: usize = 64;
pub(crate) const META_KEY_MAX_LENGTH: usize = 128;
pub(crate) const META_VALUE_MAX_LENGTH: usize = 512;

/// One source of a destination's entry, in Consul's raw `SourceIntention` form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SourceDraft {
    pub name: String,
    pub action: String,
    pub permissions: Vec<PermissionWrite>,
    pub precedence: u32,
    pub legacy_id: String,
    pub source_type: String,
    pub description: String,
    pub legacy_meta: Option<BTreeMap<String, String>>,
    pub legacy_create_time: Option<String>,
    pub legacy_update_time: Option<String>,
}

impl SourceDraft {
    pub fn of(ixn: &Intention) -> SourceDraft {
        let legacy = !ixn.id.is_empty();
        SourceDraft {
            name: ixn.source_name.clone(),
            action: ixn.action.map_or("", Action::as_str).to_owned(),
            permissions: ixn.permissions.iter().map(Permission::to_write).collect(),
            precedence: ixn.precedence,
            legacy_id: ixn.id.clone(),
            source_type: ixn.source_type.as_str().to_owned(),
            description: ixn.description.clone(),
            legacy_meta: legacy.then(|| ixn.meta.clone()),
            legacy_create_time: ixn.created_at.clone(),
            legacy_update_time: ixn.updated_at.clone(),
        }
    }

    /// The stored intention; `Err` only if validation let something through (a bug).
    pub fn into_intention(self, destination: &str) -> Result<Intention, String> {
        let permissions = self
            .permissions
            .iter()
            .map(Permission::from_write)
            .collect::<Result<Vec<_>, _>>()?;
        let action = if permissions.is_empty() {
            Some(Action::parse(&self.action).ok_or("intention without an action")?)
        } else {
            None
        };
        Ok(Intention {
            id: self.legacy_id,
            description: self.description,
            source_ns: DEFAULT_NAMESPACE.to_owned(),
            source_name: self.name,
            destination_ns: DEFAULT_NAMESPACE.to_owned(),
            destination_name: destination.to_owned(),
            source_type: SourceType::Consul,
            action,
            permissions,
            meta: self.legacy_meta.unwrap_or_default(),
            precedence: self.precedence,
            created_at: self.legacy_create_time,
            updated_at: self.legacy_update_time,
            create_index: 0,
            modify_index: 0,
        })
    }
}

/// `ServiceIntentionsConfigEntry.normalize`: defaults, precedence, legacy fields, upper-case
/// methods, and the sources ordered by precedence (stable, so ties keep their order).
pub(crate) fn normalize_entry(destination: &str, sources: &mut [SourceDraft], legacy: bool) {
    for src in sources.iter_mut() {
        if src.source_type.is_empty() {
            src.source_type = SourceType::Consul.as_str().to_owned();
        }
        src.precedence = precedence(DEFAULT_NAMESPACE, &src.name, DEFAULT_NAMESPACE, destination);
        if legacy {
            src.legacy_meta.get_or_insert_with(BTreeMap::new);
        } else {
            src.legacy_id.clear();
            src.legacy_create_time = None;
            src.legacy_update_time = None;
        }
        for perm in &mut src.permissions {
            if let Some(http) = &mut perm.http {
                for method in &mut http.methods {
                    *method = method.to_uppercase();
                }
            }
        }
    }
    sources.sort_by_key(|s| std::cmp::Reverse(s.precedence));
}

/// `ServiceIntentionsConfigEntry.validate` for a normalized entry: the first problem, in
/// Consul's words.
pub(crate) fn validate_entry(
    destination: &str,
    sources: &[SourceDraft],
    legacy: bool,
) -> Result<(), String> {
    if destination.is_empty() {
        return Err("Name is required".to_owned());
    }
    if let Some(e) = wildcard_error(destination) {
        return Err(e.to_owned());
    }
    if sources.is_empty() {
        return Err("At least one source is required".to_owned());
    }
    let dest_is_wild = destination == WILDCARD;
    let mut seen = BTreeSet::new();
    for (i, src) in sources.iter().enumerate() {
        if src.name.is_empty() {
            return Err(format!("Sources[{i}].Name is required"));
        }
        if let Some(e) = wildcard_error(&src.name) {
            return Err(format!("Sources[{i}].{e}"));
        }
        if src.description.len() > META_VALUE_MAX_LENGTH {
            return Err(format!(
                "Sources[{i}].Description exceeds maximum length {META_VALUE_MAX_LENGTH}"
            ));
        }
        if legacy {
            let meta = src.legacy_meta.as_ref();
            if meta.map_or(0, BTreeMap::len) > META_MAX_KEY_PAIRS {
                return Err(format!(
                    "Sources[{i}].Meta exceeds maximum element count {META_MAX_KEY_PAIRS}"
                ));
            }
            for (k, v) in meta.into_iter().flatten() {
                if k.len() > META_KEY_MAX_LENGTH {
                    return Err(format!(
                        "Sources[{i}].Meta key {} exceeds maximum length {META_KEY_MAX_LENGTH}",
                        go_quote(k)
                    ));
                }
                if v.len() > META_VALUE_MAX_LENGTH {
                    return Err(format!(
                        "Sources[{i}].Meta value for key {} exceeds maximum length {META_VALUE_MAX_LENGTH}",
                        go_quote(k)
                    ));
                }
            }
            if src.legacy_create_time.is_none() {
                return Err(format!("Sources[{i}].LegacyCreateTime must be set"));
            }
            if src.legacy_update_time.is_none() {
                return Err(format!("Sources[{i}].LegacyUpdateTime must be set"));
            }
            if src.legacy_id.is_empty() {
                return Err(format!("Sources[{i}].LegacyID must be set"));
            }
        } else {
            if src.legacy_meta.as_ref().is_some_and(|m| !m.is_empty()) {
                return Err(format!("Sources[{i}].LegacyMeta must be omitted"));
            }
            if src.legacy_create_time.is_some() {
                return Err(format!("Sources[{i}].LegacyCreateTime must be omitted"));
            }
            if src.legacy_update_time.is_some() {
                return Err(format!("Sources[{i}].LegacyUpdateTime must be omitted"));
            }
            if !src.legacy_id.is_empty() {
                return Err(format!("Sources[{i}].LegacyID must be omitted"));
            }
        }
        if (legacy || src.permissions.is_empty()) && Action::parse(&src.action).is_none() {
            return Err(format!(
                "Sources[{i}].Action must be set to 'allow' or 'deny'"
            ));
        }
        if !src.permissions.is_empty() && !src.action.is_empty() {
            return Err(format!(
                "Sources[{i}].Action must be omitted if Permissions are specified"
            ));
        }
        if dest_is_wild && !src.permissions.is_empty() {
            return Err(format!(
                "Sources[{i}].Permissions cannot be specified on intentions with wildcarded destinations"
            ));
        }
        if src.source_type != SourceType::Consul.as_str() {
            return Err(format!("Sources[{i}].Type must be set to 'consul'"));
        }
        for (j, perm) in src.permissions.iter().enumerate() {
            validate_permission(i, j, perm)?;
        }
        if !seen.insert(src.name.as_str()) {
            return Err(format!(
                "Sources[{i}] defines {} more than once",
                go_quote(&src.name)
            ));
        }
    }
    Ok(())
}

fn validate_permission(i: usize, j: usize, perm: &PermissionWrite) -> Result<(), String> {
    if Action::parse(&perm.action).is_none() {
        return Err(format!(
            "Sources[{i}].Permissions[{j}].Action must be set to 'allow' or 'deny'"
        ));
    }
    let prefix = format!("Sources[{i}].Permissions[{j}].HTTP");
    let Some(http) = &perm.http else {
        return Err(format!("{prefix} is required"));
    };
    let mut path_parts = 0;
    if !http.path_exact.is_empty() {
        path_parts += 1;
        if !http.path_exact.starts_with('/') {
            return Err(format!(
                "{prefix}.PathExact doesn't start with '/': {}",
                go_quote(&http.path_exact)
            ));
        }
    }
    if !http.path_prefix.is_empty() {
        path_parts += 1;
        if !http.path_prefix.starts_with('/') {
            return Err(format!(
                "{prefix}.PathPrefix doesn't start with '/': {}",
                go_quote(&http.path_prefix)
            ));
        }
    }
    if !http.path_regex.is_empty() {
        path_parts += 1;
    }
    if path_parts > 1 {
        return Err(format!(
            "{prefix} should only contain at most one of PathExact, PathPrefix, or PathRegex"
        ));
    }
    if !http.path_regex.is_empty() && Pattern::new(&http.path_regex).is_err() {
        return Err(format!(
            "{prefix}.PathRegex is not a valid regular expression: {}",
            go_quote(&http.path_regex)
        ));
    }
    let mut perm_parts = path_parts;
    for (k, hdr) in http.header.iter().enumerate() {
        if hdr.name.is_empty() {
            return Err(format!("{prefix}.Header[{k}] missing required Name field"));
        }
        let hdr_parts = [
            hdr.present,
            !hdr.exact.is_empty(),
            !hdr.regex.is_empty(),
            !hdr.prefix.is_empty(),
            !hdr.suffix.is_empty(),
        ]
        .iter()
        .filter(|set| **set)
        .count();
        if hdr_parts != 1 {
            return Err(format!(
                "{prefix}.Header[{k}] should only contain one of Present, Exact, Prefix, Suffix, or Regex"
            ));
        }
        if !hdr.regex.is_empty() && Pattern::new(&hdr.regex).is_err() {
            return Err(format!(
                "{prefix}.Header[{k}].Regex is not a valid regular expression: {}",
                go_quote(&hdr.regex)
            ));
        }
        perm_parts += 1;
    }
    if !http.methods.is_empty() {
        let mut found = BTreeSet::new();
        for m in &http.methods {
            if !is_valid_http_method(m) {
                return Err(format!(
                    "{prefix}.Methods contains an invalid method {}",
                    go_quote(m)
                ));
            }
            if !found.insert(m.as_str()) {
                return Err(format!(
                    "{prefix}.Methods contains {} more than once",
                    go_quote(m)
                ));
            }
        }
        perm_parts += 1;
    }
    if perm_parts == 0 {
        return Err(format!("{prefix} should not be empty"));
    }
    Ok(())
}

/// `validateIntentionWildcards` for a name (namespaces are always `default` here).
fn wildcard_error(name: &str) -> Option<&'static str> {
    (name != WILDCARD && name.contains(WILDCARD))
        .then_some("Name: wildcard character '*' cannot be used with partial values")
}

/// Go's `net/http` method constants, the only methods Consul accepts.
fn is_valid_http_method(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "CONNECT" | "OPTIONS" | "TRACE"
    )
}

/// `Intention.Validate`: every problem of a legacy write, in Consul's order. Namespaces have
/// already been defaulted, as Consul does before validating.
pub(crate) fn validate_legacy_write(w: &IntentionWrite) -> Vec<String> {
    let mut errors = Vec::new();
    let mut fail = |e: String| errors.push(e);
    if w.source_ns.is_empty() {
        fail("SourceNS must be set".into());
    }
    if w.source_name.is_empty() {
        fail("SourceName must be set".into());
    }
    if w.destination_ns.is_empty() {
        fail("DestinationNS must be set".into());
    }
    if w.destination_name.is_empty() {
        fail("DestinationName must be set".into());
    }
    for (field_ns, ns, field_name, name) in [
        ("SourceNS", &w.source_ns, "SourceName", &w.source_name),
        (
            "DestinationNS",
            &w.destination_ns,
            "DestinationName",
            &w.destination_name,
        ),
    ] {
        if ns != WILDCARD && ns.contains(WILDCARD) {
            fail(format!(
                "{field_ns}: wildcard character '*' cannot be used with partial values"
            ));
        }
        if name != WILDCARD {
            if name.contains(WILDCARD) {
                fail(format!(
                    "{field_name}: wildcard character '*' cannot be used with partial values"
                ));
            }
            if ns == WILDCARD {
                fail(format!(
                    "{field_name}: exact value cannot follow wildcard namespace"
                ));
            }
        }
    }
    if w.description.len() > META_VALUE_MAX_LENGTH {
        fail(format!(
            "Description exceeds maximum length {META_VALUE_MAX_LENGTH}"
        ));
    }
    if w.meta.len() > META_MAX_KEY_PAIRS {
        fail(format!(
            "Meta exceeds maximum element count {META_MAX_KEY_PAIRS}"
        ));
    }
    for (k, v) in &w.meta {
        if k.len() > META_KEY_MAX_LENGTH {
            fail(format!(
                "Meta key {} exceeds maximum length {META_KEY_MAX_LENGTH}",
                go_quote(k)
            ));
        }
        if v.len() > META_VALUE_MAX_LENGTH {
            fail(format!(
                "Meta value for key {} exceeds maximum length {META_VALUE_MAX_LENGTH}",
                go_quote(k)
            ));
        }
    }
    if Action::parse(&w.action).is_none() {
        fail("Action must be set to 'allow' or 'deny'".into());
    }
    if !w.permissions.is_empty() {
        fail("Permissions must not be set when using the legacy APIs".into());
    }
    if w.source_type != SourceType::Consul.as_str() {
        fail("SourceType must be set to 'consul'".into());
    }
    errors
}

/// Why go-memdb's UUID index refuses `id` as a lookup key, in its words; `None` if it is
/// a well-formed UUID (case and hyphen placement do not matter to it).
pub(crate) fn uuid_error(id: &str) -> Option<String> {
    if id.len() != 36 {
        return Some("UUID must be 36 characters".to_owned());
    }
    let hyphens = id.matches('-').count();
    if hyphens > 4 {
        return Some(format!(
            "UUID should have maximum of 4 \"-\"; got {hyphens}"
        ));
    }
    let sanitized = id.replace('-', "");
    if !sanitized.len().is_multiple_of(2) {
        return Some("Input (without hyphens) must be even length".to_owned());
    }
    sanitized
        .bytes()
        .find(|b| !b.is_ascii_hexdigit())
        .map(|b| format!("Invalid UUID: encoding/hex: invalid byte: {}", go_rune(b)))
}

/// Go's `%#U` of a byte taken as a rune: `U+0067 'g'`.
fn go_rune(byte: u8) -> String {
    let c = char::from(byte);
    if c.is_control() {
        format!("U+{:04X}", byte)
    } else {
        format!("U+{:04X} '{c}'", byte)
    }
}

#[cfg(test)]
mod tests;
