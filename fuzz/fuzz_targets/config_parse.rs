//! Agent configuration text through `config::load`, the one public way in (it reads files, so
//! the input is written to a file in a per-process directory first, under /dev/shm when there
//! is one), `config::hcl_to_json` (HCL as the JSON tree the loader reads), and Go durations
//! (`config::parse_go_duration`, `format_go_duration`).
//!
//! The first byte picks: 0 HCL text, 1 JSON text, 2 a Go duration; the rest is the text.
//!
//! Properties: HCL that loads gives the same configuration as the JSON `hcl_to_json` makes of
//! it, and HCL that does not load fails as that JSON does; a duration formats to text that
//! parses back to itself.

#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use config::{Config, Overrides};
use libfuzzer_sys::fuzz_target;

/// A directory of this process's own, for the files `config::load` reads.
static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let shm = PathBuf::from("/dev/shm");
    let base = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("mesh-fuzz-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creating the fuzz config directory");
    dir
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    match selector % 3 {
        0 => hcl(text),
        1 => {
            let _ = load("fuzz.json", text);
        }
        _ => duration(text),
    }
});

/// Loads `text` as the one config file `name`, with no flags; sources are cleared so that
/// configurations from different files compare.
fn load(name: &str, text: &str) -> Result<Config, config::ConfigError> {
    let path = DIR.join(name);
    std::fs::write(&path, text).expect("writing the fuzz config file");
    let mut config = config::load(&[path], &[], &Overrides::default())?;
    config.sources = Default::default();
    Ok(config)
}

fn hcl(text: &str) {
    let tree = config::hcl_to_json(text);
    let loaded = load("fuzz.hcl", text);
    let Ok(tree) = tree else {
        assert!(loaded.is_err(), "HCL that hcl_to_json refuses loads");
        return;
    };
    let json = serde_json::to_string(&tree).expect("JSON values encode");
    let from_json = load("fuzz.json", &json);
    match (loaded, from_json) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "HCL and its JSON load differently\n{json}"),
        (Err(_), Err(_)) => {}
        (a, b) => panic!(
            "HCL and its JSON disagree: HCL {:?}, JSON {:?}\n{json}",
            a.map(|_| "loads"),
            b.map(|_| "loads")
        ),
    }
}

fn duration(text: &str) {
    let Ok(parsed) = config::parse_go_duration(text) else {
        return;
    };
    let formatted = config::format_go_duration(parsed);
    let again = config::parse_go_duration(&formatted)
        .unwrap_or_else(|e| panic!("{text:?} formats as {formatted:?}, which does not parse: {e}"));
    assert_eq!(again, parsed, "{text:?} formats as {formatted:?}");
    // The CA reads durations with its own copy of the parser: where both read a value, it
    // must be the same one.
    if let Ok(by_ca) = ca::parse_go_duration(text) {
        assert_eq!(by_ca, parsed, "the CA parses {text:?} differently");
    }
}
