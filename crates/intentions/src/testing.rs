//! Builders shared by the unit tests.

use crate::model::{Action, Intention, Permission, SourceType, DEFAULT_NAMESPACE};
use crate::precedence::precedence;
use crate::error::IntentionError;
use crate::store::{Applied, IntentionOp, Intentions};
use crate::write::IntentionWrite;

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

/// Each write as a method, for tests; the product proposes [`IntentionOp`]s through raft and
/// applies them with [`Intentions::apply`].
impl Intentions {
    /// `PUT /v1/connect/intentions/exact`.
    pub(crate) fn upsert(
        &mut self,
        source: &str,
        destination: &str,
        write: IntentionWrite,
        index: u64,
    ) -> Result<Applied, IntentionError> {
        let op = IntentionOp::Upsert {
            source: source.to_owned(),
            destination: destination.to_owned(),
            write,
        };
        self.apply(&op, index)
    }

    /// `POST /v1/connect/intentions`.
    pub(crate) fn create(
        &mut self,
        id: &str,
        now: &str,
        write: IntentionWrite,
        index: u64,
    ) -> Result<Applied, IntentionError> {
        let op = IntentionOp::Create {
            id: id.to_owned(),
            now: now.to_owned(),
            write,
        };
        self.apply(&op, index)
    }

    /// `PUT /v1/connect/intentions/:id`.
    pub(crate) fn update(
        &mut self,
        id: &str,
        now: &str,
        write: IntentionWrite,
        index: u64,
    ) -> Result<Applied, IntentionError> {
        let op = IntentionOp::Update {
            id: id.to_owned(),
            now: now.to_owned(),
            write,
        };
        self.apply(&op, index)
    }

    /// `DELETE /v1/connect/intentions/:id`.
    pub(crate) fn delete(&mut self, id: &str, index: u64) -> Result<Applied, IntentionError> {
        self.apply(&IntentionOp::Delete { id: id.to_owned() }, index)
    }

    /// `DELETE /v1/connect/intentions/exact`.
    pub(crate) fn delete_exact(
        &mut self,
        source: &str,
        destination: &str,
        index: u64,
    ) -> Result<Applied, IntentionError> {
        let op = IntentionOp::DeleteExact {
            source: source.to_owned(),
            destination: destination.to_owned(),
        };
        self.apply(&op, index)
    }
}
