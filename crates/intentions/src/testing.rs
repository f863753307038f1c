//! Builders shared by the unit tests.

use crate::model::{Action, Intention, Permission, SourceType, DEFAULT_NAMESPACE};
use crate::precedence::precedence;

/// An L4 intention between two default-namespace services.
pub fn l4(source: &str, destination: &str, action: &str) -> Intention {
    let mut ixn = base(source, destination);
    ixn.action = Some(Action::parse(action).expect("allow or deny"));
    ixn
}

/// An L7 intention with the given permissions.
pub fn l7(source: &str, destination: &str, permissions: Vec<Permission>) -> Intention {
    let mut ixn = base(source, destination);
    ixn.permissions = permissions;
    ixn
}

fn base(source: &str, destination: &str) -> Intention {
    Intention {
        id: String::new(),
        description: String::new(),
        source_ns: DEFAULT_NAMESPACE.to_owned(),
        source_name: source.to_owned(),
        destination_ns: DEFAULT_NAMESPACE.to_owned(),
        destination_name: destination.to_owned(),
        source_type: SourceType::Consul,
        action: None,
        permissions: Vec::new(),
        meta: Default::default(),
        precedence: precedence(DEFAULT_NAMESPACE, source, DEFAULT_NAMESPACE, destination),
        created_at: None,
        updated_at: None,
        create_index: 0,
        modify_index: 0,
    }
}
