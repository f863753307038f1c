//! What a catalog write needs from a token (Consul's `vetRegisterWithACL` and
//! `vetDeregisterWithACL`), for every path that writes the catalog: `/v1/catalog/register` and
//! `/deregister`, and client agents' anti-entropy over server RPC.

use acl::{Access, Authorizer, Resource};
use catalog::{Catalog, CatalogOp, Registration};

/// The first permission a write lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub resource: Resource,
    pub segment: String,
    pub access: Access,
}

fn require(authorizer: &Authorizer, resource: Resource, segment: &str) -> Result<(), Missing> {
    if authorizer.allows(resource, segment, Access::Write) {
        Ok(())
    } else {
        Err(Missing {
            resource,
            segment: segment.to_owned(),
            access: Access::Write,
        })
    }
}

/// Whether `authorizer` may apply `op` to `catalog` as it stands.
pub fn vet_catalog_op(
    authorizer: &Authorizer,
    catalog: &Catalog,
    op: &CatalogOp,
) -> Result<(), Missing> {
    match op {
        CatalogOp::Register(registration) => vet_register(authorizer, catalog, registration),
        CatalogOp::Deregister {
            node,
            service_id,
            check_id,
        } => vet_deregister(
            authorizer,
            catalog,
            node,
            service_id.as_deref(),
            check_id.as_deref(),
        ),
    }
}

/// `node:write` when the node is new or changes, `service:write` on the service (and on the
/// service a proxy stands for), and for each check its service's `service:write` or, for a
/// node check, `node:write`.
fn vet_register(
    authorizer: &Authorizer,
    catalog: &Catalog,
    registration: &Registration,
) -> Result<(), Missing> {
    let node = &registration.node;
    let node_changes = !registration.skip_node_update
        && catalog.node(&node.name).is_none_or(|existing| {
            existing.address != node.address
                || existing.tagged_addresses != node.tagged_addresses
                || existing.meta != node.meta
                || (!node.id.is_empty() && existing.id != node.id)
        });
    if node_changes {
        require(authorizer, Resource::Node, &node.name)?;
    }
    if let Some(service) = &registration.service {
        require(authorizer, Resource::Service, &service.service)?;
        if let Some(proxy) = service.proxy.as_ref() {
            if !proxy.destination_service_name.is_empty() {
                require(
                    authorizer,
                    Resource::Service,
                    &proxy.destination_service_name,
                )?;
            }
        }
    }
    for check in &registration.checks {
        let service_name = if check.service_id.is_empty() {
            None
        } else if let Some(service) = registration
            .service
            .as_ref()
            .filter(|s| s.id == check.service_id)
        {
            Some(service.service.clone())
        } else {
            service_of(catalog, &node.name, &check.service_id)
        };
        match service_name {
            Some(name) => require(authorizer, Resource::Service, &name)?,
            None => require(authorizer, Resource::Node, &node.name)?,
        }
    }
    Ok(())
}

/// The service's `service:write`, a check's service's (or for a node check the node's
/// `node:write`), and `node:write` for the whole node.
fn vet_deregister(
    authorizer: &Authorizer,
    catalog: &Catalog,
    node: &str,
    service_id: Option<&str>,
    check_id: Option<&str>,
) -> Result<(), Missing> {
    let service = match (service_id, check_id) {
        (Some(id), _) => service_of(catalog, node, id),
        (None, Some(id)) => catalog
            .node_checks(node)
            .into_iter()
            .find(|c| c.check_id == id)
            .map(|c| c.service_name.clone())
            .filter(|name| !name.is_empty()),
        (None, None) => None,
    };
    match service {
        Some(name) => require(authorizer, Resource::Service, &name),
        None => require(authorizer, Resource::Node, node),
    }
}

/// The name of the service with ID `id` on `node`.
fn service_of(catalog: &Catalog, node: &str, id: &str) -> Option<String> {
    catalog.node_services(node).and_then(|(_, services)| {
        services
            .into_iter()
            .find(|s| s.id == id)
            .map(|s| s.service.clone())
    })
}
