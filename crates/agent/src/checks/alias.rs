//! Alias checks (Consul's `CheckAlias`): a check whose health is that of another service or
//! node. Pure: the runtime feeds it the aliased node's checks, local or from a blocking query
//! on the servers.

use catalog::{HealthCheck, Status};

/// The status and output of an alias of `service` on `node` (of the node's own health when
/// `service` is empty), from the node's `checks`, as Consul computes them: the node-level
/// checks and those of the service count; a critical one wins, else a warning, else passing.
/// `service_exists` says whether the node runs the service (an aliased service with no checks
/// of its own is healthy; one that is not there is critical).
pub fn alias_status<'a>(
    node: &str,
    service: &str,
    service_exists: bool,
    checks: impl IntoIterator<Item = &'a HealthCheck>,
) -> (Status, String) {
    let mut status = Status::Passing;
    let mut output = "No checks found.".to_owned();
    let mut service_found = false;
    for check in checks {
        let of_service = !check.service_id.is_empty();
        if of_service && check.service_id != service {
            continue;
        }
        service_found |= of_service;
        match check.status {
            Status::Critical | Status::Warning if status != Status::Critical => {
                status = check.status;
                output = format!("Aliased check {:?} failing: {}", check.name, check.output);
            }
            Status::Critical | Status::Warning => {}
            _ if status == Status::Passing => output = "All checks passing.".to_owned(),
            _ => {}
        }
    }
    if !service.is_empty() && !service_found && !service_exists {
        return (
            Status::Critical,
            format!("Service {service} could not be found on node {node}"),
        );
    }
    (status, output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(id: &str, service: &str, status: Status, output: &str) -> HealthCheck {
        let mut check = HealthCheck::new("db-1", id, id, status);
        check.service_id = service.into();
        check.output = output.into();
        check
    }

    #[test]
    fn the_worst_relevant_check_wins() {
        let checks = [
            check("serfHealth", "", Status::Passing, "alive"),
            check("db-check", "db", Status::Warning, "slow"),
            check("web-check", "web", Status::Critical, "down"),
        ];
        assert_eq!(
            alias_status("db-1", "db", true, &checks),
            (
                Status::Warning,
                r#"Aliased check "db-check" failing: slow"#.into()
            ),
            "web's critical check is not db's"
        );
        let mut node_down = checks.clone();
        node_down[0].status = Status::Critical;
        node_down[0].output = "Agent not live or unreachable".into();
        assert_eq!(
            alias_status("db-1", "db", true, &node_down),
            (
                Status::Critical,
                r#"Aliased check "serfHealth" failing: Agent not live or unreachable"#.into()
            ),
            "a node-level check counts, and critical beats warning"
        );
        assert_eq!(
            alias_status("db-1", "", true, &checks[..1]),
            (Status::Passing, "All checks passing.".into()),
            "a node alias: node-level checks only"
        );
    }

    #[test]
    fn a_missing_service_is_critical_and_one_without_checks_is_fine() {
        assert_eq!(
            alias_status("db-1", "db", false, &[]),
            (
                Status::Critical,
                "Service db could not be found on node db-1".into()
            )
        );
        assert_eq!(
            alias_status("db-1", "db", true, &[]),
            (Status::Passing, "No checks found.".into())
        );
        assert_eq!(
            alias_status("db-1", "", false, &[]),
            (Status::Passing, "No checks found.".into())
        );
    }
}
