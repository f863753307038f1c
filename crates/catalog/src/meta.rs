//! Consul's rules for node and service metadata (`structs.validateMetadata`): at most 64
//! pairs, keys of letters, digits, `_` and `-` up to 128 characters, not starting with
//! `consul-`, values up to 512 characters.

use std::collections::BTreeMap;

/// Consul's metadata rules, with its texts.
pub fn validate_meta(meta: &BTreeMap<String, String>) -> Result<(), String> {
    if meta.len() > 64 {
        return Err("Node metadata cannot contain more than 64 key/value pairs".into());
    }
    for (key, value) in meta {
        let problem = if key.is_empty() {
            Some("Key cannot be blank")
        } else if !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            Some("Key contains invalid characters")
        } else if key.len() > 128 {
            Some("Key is too long (limit: 128 characters)")
        } else if key.starts_with("consul-") {
            Some("Key prefix 'consul-' is reserved for internal use")
        } else if value.len() > 512 {
            Some("Value is too long (limit: 512 characters)")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(format!(
                "Couldn't load metadata pair ('{key}', '{value}'): {problem}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consuls_limits_and_texts() {
        let ok: BTreeMap<String, String> = [("env".to_owned(), "prod".to_owned())].into();
        assert_eq!(validate_meta(&ok), Ok(()));
        let many: BTreeMap<String, String> =
            (0..65).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(
            validate_meta(&many).unwrap_err(),
            "Node metadata cannot contain more than 64 key/value pairs"
        );
        let long_value: BTreeMap<String, String> = [("k".to_owned(), "v".repeat(513))].into();
        assert!(validate_meta(&long_value)
            .unwrap_err()
            .ends_with("Value is too long (limit: 512 characters)"));
        let reserved: BTreeMap<String, String> =
            [("consul-version".to_owned(), "1".to_owned())].into();
        assert!(validate_meta(&reserved)
            .unwrap_err()
            .ends_with("Key prefix 'consul-' is reserved for internal use"));
    }
}
