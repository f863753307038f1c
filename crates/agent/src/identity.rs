//! Who this node is: its UUID (kept in the data dir so a restarted agent keeps it, as Consul's
//! does) and the node record it registers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use catalog::Node;

/// Where an agent keeps its state: the configured `data_dir`, or in `-dev` mode a throwaway
/// directory removed with the returned guard. `None` when neither applies.
pub fn data_dir(
    config: &config::Config,
    dev_prefix: &str,
) -> std::io::Result<Option<(PathBuf, Option<tempfile::TempDir>)>> {
    match &config.data_dir {
        Some(dir) => Ok(Some((dir.clone(), None))),
        None if config.dev => {
            let tmp = tempfile::Builder::new().prefix(dev_prefix).tempdir()?;
            Ok(Some((tmp.path().to_path_buf(), Some(tmp))))
        }
        None => Ok(None),
    }
}

/// The node's UUID: `configured`, else the one saved in `<data_dir>/node-id`, else a new one
/// saved there.
pub fn node_id(configured: Option<&str>, data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join("node-id");
    std::fs::create_dir_all(data_dir)?;
    if let Some(id) = configured {
        std::fs::write(&path, id)?;
        return Ok(id.to_owned());
    }
    match std::fs::read_to_string(&path) {
        Ok(saved) if uuid::Uuid::parse_str(saved.trim()).is_ok() => Ok(saved.trim().to_owned()),
        Ok(_) | Err(_) => {
            let id = uuid::Uuid::new_v4().to_string();
            std::fs::write(&path, &id)?;
            Ok(id)
        }
    }
}

/// A node as agents register it: Consul's tagged addresses and its network-segment meta.
pub fn node_record(name: &str, id: &str, address: &str, datacenter: &str) -> Node {
    let tagged = ["lan", "lan_ipv4", "wan", "wan_ipv4"]
        .into_iter()
        .map(|k| (k.to_owned(), address.to_owned()))
        .collect();
    Node {
        id: id.to_owned(),
        name: name.to_owned(),
        address: address.to_owned(),
        datacenter: datacenter.to_owned(),
        tagged_addresses: tagged,
        meta: BTreeMap::from([("consul-network-segment".to_owned(), String::new())]),
        create_index: 0,
        modify_index: 0,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_node_keeps_its_id_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let first = super::node_id(None, dir.path()).unwrap();
        assert_eq!(super::node_id(None, dir.path()).unwrap(), first);
        let set = "8b0c1d6e-0000-4000-8000-000000000001";
        assert_eq!(super::node_id(Some(set), dir.path()).unwrap(), set);
        assert_eq!(super::node_id(None, dir.path()).unwrap(), set);
    }
}
