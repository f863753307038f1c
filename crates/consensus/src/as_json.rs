//! Serde adapter that stores a value as a JSON string inside postcard.
//!
//! postcard is not self-describing: it cannot read back types whose serde representation
//! depends on the value (fields skipped when empty, numbers written as integers or floats),
//! which the CA's types have because they double as Consul's JSON shapes. Written as JSON
//! text, they round-trip exactly; the CA is a few kilobytes and rarely written.

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub fn serialize<T: Serialize, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    let text = serde_json::to_string(value).map_err(S::Error::custom)?;
    s.serialize_str(&text)
}

pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    let text = String::deserialize(d)?;
    serde_json::from_str(&text).map_err(D::Error::custom)
}
