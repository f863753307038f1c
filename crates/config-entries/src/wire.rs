//! Consul's JSON for config entries: what `/v1/config*` answer, and how `PUT /v1/config`
//! bodies are read.
//!
//! Output is built as [`serde_json::Value`] in the order of Go's struct fields, with Go's
//! `omitempty` rules: zero scalars are left out, struct-valued fields (`TransparentProxy`,
//! `MeshGateway`, `Expose`, `AccessLogs`) are always written (`{}` when unset), a
//! proxy-defaults' `Config` is `null` when unset and has its keys sorted, as Go writes a map.
//! Consul's `Hash` field is not written: clients do not read it and its value is Go's
//! `hashstructure` of the entry.
//!
//! Input follows Consul's `decodeBodyDeprecated` then `DecodeConfigEntry`: the kind comes
//! from `Kind` or `kind`; field names match the Go name in any case or its snake_case alias
//! (`protocol`, `Protocol`, `mesh_gateway`); scalars are weakly typed (`5` reads as `"5"`) and
//! a one-element list stands for its element; a field Consul does not define is refused with
//! `invalid config key`.

use serde_json::{json, Map, Value};

use crate::fields::{self, Field, Shape};
use crate::go;
use crate::model::{ConfigEntry, ConfigEntryWrite, JsonObject, Kind};
use crate::validate;

// ---- output ------------------------------------------------------------------------------

/// One entry as Consul returns it (`GET /v1/config/:kind/:name`).
pub fn entry_json(entry: &ConfigEntry) -> Value {
    let mut out = Map::new();
    for field in fields::of(entry.kind) {
        let value = match field.name {
            "Kind" => Some(json!(entry.kind.as_str())),
            "Name" => Some(json!(entry.name)),
            // proxy-defaults' protocol is Consul's `json:"-"`: it lives in `Config`.
            "Protocol" => {
                (entry.kind == Kind::ServiceDefaults).then(|| json!(entry.protocol.as_str()))
            }
            "Mode" => (!entry.mode.as_str().is_empty()).then(|| json!(entry.mode.as_str())),
            "Config" => Some(
                entry
                    .config
                    .as_ref()
                    .map_or(Value::Null, |c| sorted(&Value::Object(c.0.clone()))),
            ),
            "Meta" => (!entry.meta.is_empty()).then(|| json!(entry.meta)),
            "Hash" => None,
            name => render(field.shape, entry.other.get(name)),
        };
        if let Some(value) = value {
            out.insert(field.name.to_owned(), value);
        }
    }
    out.insert("CreateIndex".into(), json!(entry.create_index));
    out.insert("ModifyIndex".into(), json!(entry.modify_index));
    Value::Object(out)
}

/// A list of entries (`[]` when empty, never `null`).
pub fn entries_json<'a>(list: impl IntoIterator<Item = &'a ConfigEntry>) -> Value {
    Value::Array(list.into_iter().map(entry_json).collect())
}

/// Consul's 404 text for a missing entry.
pub fn not_found(kind: &str, name: &str) -> String {
    format!(
        "Config entry not found for {} / {}",
        go::quote(kind),
        go::quote(name)
    )
}

/// A field as Go writes it; `None` when `omitempty` leaves it out.
fn render(shape: Shape, value: Option<&Value>) -> Option<Value> {
    let value = value.filter(|v| !v.is_null());
    match shape {
        Shape::Modelled => None,
        Shape::Scalar => value.filter(|v| !is_zero(v)).cloned(),
        Shape::Pointer => value.cloned(),
        Shape::Slice => value
            .filter(|v| v.as_array().is_none_or(|items| !items.is_empty()))
            .cloned(),
        Shape::Struct(inner) => Some(render_struct(inner, value.and_then(Value::as_object))),
        Shape::StructSlice(inner) => match value {
            Some(Value::Array(items)) if !items.is_empty() => Some(Value::Array(
                items
                    .iter()
                    .map(|item| render_struct(inner, item.as_object()))
                    .collect(),
            )),
            _ => None,
        },
    }
}

fn render_struct(fields: &[Field], value: Option<&Map<String, Value>>) -> Value {
    let mut out = Map::new();
    for field in fields {
        if let Some(v) = render(field.shape, value.and_then(|m| m.get(field.name))) {
            out.insert(field.name.to_owned(), v);
        }
    }
    Value::Object(out)
}

/// Go's zero value of a scalar.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// A `map[string]interface{}` as Go writes it: keys sorted, at every depth.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut pairs: Vec<(&String, &Value)> = map.iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

// ---- input -------------------------------------------------------------------------------

/// Why a body could not be read; `Display` is Consul's text, which its HTTP handler answers
/// as `Request decoding failed: …` with a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// Reads the body of `PUT /v1/config` as Consul does. Only the first JSON value counts, as
/// with Go's `json.Decoder`; an empty body is `EOF`.
pub fn decode(body: &[u8]) -> Result<ConfigEntryWrite, DecodeError> {
    decode_value(first_value(body)?)
}

/// Reads an entry from a JSON value (see [`decode`]).
pub fn decode_value(value: Value) -> Result<ConfigEntryWrite, DecodeError> {
    let map = match value {
        Value::Null => Map::new(),
        Value::Object(map) => map,
        other => {
            return Err(DecodeError(format!(
                "'' expected a map, got '{}'",
                go::kind(&other)
            )))
        }
    };
    let kind = match map.get("Kind").or_else(|| map.get("kind")) {
        None => {
            return Err(DecodeError(
                "Payload does not contain a kind/Kind key at the top level".into(),
            ))
        }
        Some(Value::String(kind)) => Kind::parse(kind).map_err(|e| DecodeError(e.to_string()))?,
        Some(_) => return Err(DecodeError("Kind value in payload is not a string".into())),
    };
    let mut decoder = Decoder::default();
    let (modelled, other) = decoder.fields(map, fields::of(kind), "");
    let mut write = ConfigEntryWrite::new(kind, "");
    for (field, value) in modelled {
        match field.name {
            "Name" => write.name = decoder.string(field.name, &value),
            "Protocol" if kind == Kind::ServiceDefaults => {
                write.protocol = decoder.string(field.name, &value);
            }
            "Mode" => write.mode = decoder.string(field.name, &value),
            "Meta" => {
                for (key, v) in decoder.map(field.name, value) {
                    let text = decoder.string(&format!("Meta[{key}]"), &v);
                    write.meta.insert(key, text);
                }
            }
            "Config" => {
                if let Some(config) = decoder.object(field.name, value) {
                    // A Go map has no order; kept the way Go writes it.
                    if let Value::Object(config) = sorted(&Value::Object(config)) {
                        write.config = Some(JsonObject(config));
                    }
                }
            }
            // Computed by the server: its own hash, and a proxy-defaults' protocol from
            // `Config`.
            "Hash" | "Protocol" => {}
            // Overwritten by the server with the kind read above.
            _ => {
                let _ = decoder.string(field.name, &value);
            }
        }
    }
    write.other = JsonObject(other);
    decoder.finish()?;
    Ok(write)
}

/// An entry from Consul's JSON, as a client reads `GET /v1/config/:kind/:name`: decoded,
/// normalized and validated like a write, with the indexes the answer carries.
pub fn parse_entry(body: &[u8]) -> Result<ConfigEntry, DecodeError> {
    let value = first_value(body)?;
    let index = |key: &str| value.get(key).and_then(Value::as_u64).unwrap_or(0);
    let (create_index, modify_index) = (index("CreateIndex"), index("ModifyIndex"));
    let write = decode_value(value)?;
    let mut entry = validate::normalize(&write).map_err(|e| DecodeError(e.to_string()))?;
    entry.create_index = create_index;
    entry.modify_index = modify_index;
    Ok(entry)
}

fn first_value(body: &[u8]) -> Result<Value, DecodeError> {
    let eof = || DecodeError("EOF".to_owned());
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(eof());
    }
    match serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .next()
    {
        Some(Ok(value)) => Ok(value),
        Some(Err(err)) => Err(DecodeError(err.to_string())),
        None => Err(eof()),
    }
}

/// mapstructure's decoding of a map into Consul's struct: the type errors it collects and
/// the keys it leaves unused.
#[derive(Debug, Default)]
struct Decoder {
    errors: Vec<String>,
    unused: Vec<String>,
}

impl Decoder {
    /// Matches the keys of `map` to `fields` (alias, then exact name, then any case; an exact
    /// match wins over another spelling of the same field). Returns the modelled fields'
    /// values, and the other fields under their Go names with nested structs matched too.
    fn fields(
        &mut self,
        map: Map<String, Value>,
        fields: &'static [Field],
        prefix: &str,
    ) -> (Vec<(&'static Field, Value)>, Map<String, Value>) {
        let mut claims: Vec<Option<(String, bool, Value)>> = vec![None; fields.len()];
        for (key, value) in map {
            let lower = key.to_lowercase();
            // Consul's `HookTranslateKeys`: an alias becomes the lower-cased Go name.
            let key = fields
                .iter()
                .find(|f| f.alias == Some(lower.as_str()))
                .map_or(key, |f| f.name.to_lowercase());
            let found = fields
                .iter()
                .position(|f| f.name == key)
                .map(|i| (i, true))
                .or_else(|| {
                    fields
                        .iter()
                        .position(|f| f.name.eq_ignore_ascii_case(&key))
                        .map(|i| (i, false))
                });
            let Some((i, exact)) = found else {
                self.unused.push(format!("{prefix}{key}"));
                continue;
            };
            match &mut claims[i] {
                slot @ None => *slot = Some((key, exact, value)),
                Some(claim) if exact && !claim.1 => {
                    let loser = std::mem::replace(claim, (key, exact, value));
                    self.unused.push(format!("{prefix}{}", loser.0));
                }
                Some(_) => self.unused.push(format!("{prefix}{key}")),
            }
        }
        let mut modelled = Vec::new();
        let mut other = Map::new();
        for (field, claim) in fields.iter().zip(claims) {
            let Some((_, _, value)) = claim else { continue };
            if value.is_null() {
                continue;
            }
            let path = format!("{prefix}{}", field.name);
            let value = match field.shape {
                Shape::Modelled => {
                    modelled.push((field, value));
                    continue;
                }
                Shape::Scalar | Shape::Pointer | Shape::Slice => Some(value),
                Shape::Struct(inner) => self.nested(&path, value, inner),
                Shape::StructSlice(inner) => self.nested_list(&path, value, inner),
            };
            // Kept as Go would write it back, so what is stored is what is shown: zero
            // values left out, an empty struct the same as none.
            let shown = render(field.shape, value.as_ref())
                .filter(|v| !matches!(field.shape, Shape::Struct(_)) || v != &json!({}));
            if let Some(value) = shown {
                other.insert(field.name.to_owned(), value);
            }
        }
        (modelled, other)
    }

    /// A struct-valued field, its own keys matched.
    fn nested(&mut self, path: &str, value: Value, inner: &'static [Field]) -> Option<Value> {
        let map = self.object(path, value)?;
        let (_, fields) = self.fields(map, inner, &format!("{path}."));
        Some(Value::Object(fields))
    }

    /// A list of structs; a single struct stands for a list of one, as mapstructure allows.
    fn nested_list(&mut self, path: &str, value: Value, inner: &'static [Field]) -> Option<Value> {
        let items = match value {
            Value::Array(items) => items,
            Value::Object(map) => vec![Value::Object(map)],
            other => {
                self.errors.push(format!(
                    "'{path}': source data must be an array or slice, got {}",
                    go::kind(&other)
                ));
                return None;
            }
        };
        let items = items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| self.nested(&format!("{path}[{i}]"), item, inner))
            .collect();
        Some(Value::Array(items))
    }

    /// A Go `string` field, weakly typed.
    fn string(&mut self, path: &str, value: &Value) -> String {
        go::weak_string(value).unwrap_or_else(|| {
            self.errors.push(go::unconvertible(path, value));
            String::new()
        })
    }

    /// A Go map (or struct) field: an object, a list of one, or a list of objects merged, as
    /// mapstructure reads a list into a map.
    fn object(&mut self, path: &str, value: Value) -> Option<Map<String, Value>> {
        match value {
            Value::Null => None,
            Value::Object(map) => Some(map),
            Value::Array(items) if items.iter().all(Value::is_object) => Some(
                items
                    .into_iter()
                    .filter_map(|item| match item {
                        Value::Object(map) => Some(map),
                        _ => None,
                    })
                    .flatten()
                    .collect(),
            ),
            other => {
                self.errors.push(format!(
                    "'{path}' expected a map, got '{}'",
                    go::kind(&other)
                ));
                None
            }
        }
    }

    /// [`Decoder::object`] as key/value pairs.
    fn map(&mut self, path: &str, value: Value) -> Vec<(String, Value)> {
        self.object(path, value)
            .map(|m| m.into_iter().collect())
            .unwrap_or_default()
    }

    /// The decode errors, else Consul's `validateUnusedKeys` on what was left unused.
    fn finish(self) -> Result<(), DecodeError> {
        if !self.errors.is_empty() {
            return Err(DecodeError(go::mapstructure_error(&self.errors)));
        }
        let mut unused: Vec<String> = self
            .unused
            .into_iter()
            .filter(|k| !matches!(k.as_str(), "CreateIndex" | "ModifyIndex" | "kind" | "Kind"))
            .collect();
        if unused.is_empty() {
            return Ok(());
        }
        unused.sort();
        let errors: Vec<String> = unused
            .iter()
            .map(|key| {
                let lower = key.to_lowercase();
                if lower.ends_with("namespace") {
                    format!(
                        "invalid config key {}, namespaces are a consul enterprise feature",
                        go::quote(key)
                    )
                } else if lower.contains("jwt") {
                    format!(
                        "invalid config key {}, api-gateway jwt validation is a consul enterprise feature",
                        go::quote(key)
                    )
                } else {
                    format!("invalid config key {}", go::quote(key))
                }
            })
            .collect();
        Err(DecodeError(go::multierror(&errors)))
    }
}

#[cfg(test)]
mod tests;
