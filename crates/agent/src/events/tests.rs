use catalog::Service;
use gossip::UserEvent;

use super::*;

fn service(name: &str, tags: &[&str]) -> Service {
    Service {
        id: name.into(),
        service: name.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..Service::default()
    }
}

fn event(id: &str, name: &str) -> UserEvent {
    UserEvent {
        id: id.into(),
        name: name.into(),
        payload: Vec::new(),
        node_filter: String::new(),
        service_filter: String::new(),
        tag_filter: String::new(),
        ltime: 0,
    }
}

#[test]
fn filters_match_node_service_and_tag_as_consul_does() {
    let services = [service("web", &["v1", "blue"]), service("db", &[])];
    let all = EventFilters::parse("", "", "").unwrap();
    assert!(all.matches("node-1", &[]));

    let node = EventFilters::parse("^node-[12]$", "", "").unwrap();
    assert!(node.matches("node-1", &[]));
    assert!(!node.matches("node-3", &services));

    let web = EventFilters::parse("", "we", "").unwrap();
    assert!(web.matches("n", &services), "a regex, not an exact name");
    assert!(!web.matches("n", &[]), "no services, no match");

    let blue_web = EventFilters::parse("", "^web$", "^blu").unwrap();
    assert!(blue_web.matches("n", &services));
    let green_web = EventFilters::parse("", "^web$", "green").unwrap();
    assert!(!green_web.matches("n", &services));
    let tagged_db = EventFilters::parse("", "^db$", "v1").unwrap();
    assert!(
        !tagged_db.matches("n", &services),
        "the tag must be on the service that matched"
    );
}

#[test]
fn bad_filters_get_consuls_errors() {
    assert_eq!(
        EventFilters::parse("", "", "v1").unwrap_err(),
        EventError::TagWithoutService
    );
    assert_eq!(
        EventFilters::parse("", "", "v1").unwrap_err().to_string(),
        "Cannot provide tag filter without service filter"
    );
    let err = EventFilters::parse("(", "", "").unwrap_err().to_string();
    assert!(err.starts_with("Invalid node filter: "), "{err}");
    let err = EventFilters::parse("", "web[", "").unwrap_err().to_string();
    assert!(err.starts_with("Invalid service filter: "), "{err}");
}

#[test]
fn the_log_keeps_the_last_256_once_each_oldest_first() {
    let mut log = EventLog::default();
    assert!(log.push(event("a", "deploy")));
    assert!(!log.push(event("a", "deploy")), "the same ID once");
    assert!(log.push(event("b", "restart")));
    let names: Vec<_> = log.list(None).into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["deploy", "restart"]);
    assert_eq!(log.list(Some("restart")).len(), 1);
    assert!(log.list(Some("other")).is_empty());

    for i in 0..EVENT_BUFFER {
        log.push(event(&format!("e{i}"), "bulk"));
    }
    let all = log.list(None);
    assert_eq!(all.len(), EVENT_BUFFER);
    assert_eq!(all[0].id, "e0", "the two oldest were dropped");
    assert_eq!(all[EVENT_BUFFER - 1].id, format!("e{}", EVENT_BUFFER - 1));
}

#[test]
fn the_list_index_folds_the_newest_uuid() {
    assert_eq!(list_index(&[]), 1, "an empty list is not 0");
    let id = "00000000-0000-0001-0000-000000000003";
    assert_eq!(list_index(&[event("x", "a"), event(id, "b")]), 1 ^ 3);
    let id = "b54fe110-7af5-cafc-d1fb-afc8ba432b1c";
    assert_eq!(
        list_index(&[event(id, "deploy")]),
        0xb54fe1107af5cafc ^ 0xd1fbafc8ba432b1c
    );
}
