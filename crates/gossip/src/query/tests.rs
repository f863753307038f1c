use super::*;

#[test]
fn responses_are_counted_once_and_only_while_open() {
    let mut queries = Queries::default();
    let id = QueryId(1);
    assert!(!queries.accept_response(id, "a"));
    queries.start(id);
    assert!(queries.accept_response(id, "a"));
    assert!(!queries.accept_response(id, "a"));
    assert!(queries.finish(id));
    assert!(!queries.accept_response(id, "b"));
    assert!(!queries.finish(id));
}

#[test]
fn a_received_query_is_answered_once_before_its_deadline() {
    let now = Instant::now();
    let addr = "10.0.0.1:8301".parse().unwrap();
    let mut queries = Queries::default();
    queries.received(QueryId(1), "a".into(), addr, Duration::from_secs(1), now);
    queries.received(QueryId(2), "a".into(), addr, Duration::from_secs(1), now);
    assert_eq!(queries.take_asker(QueryId(1), now).unwrap().name, "a");
    assert!(queries.take_asker(QueryId(1), now).is_none());
    assert!(queries
        .take_asker(QueryId(2), now + Duration::from_secs(2))
        .is_none());
}

#[test]
fn incoming_queries_are_bounded() {
    let now = Instant::now();
    let addr = "10.0.0.1:8301".parse().unwrap();
    let mut queries = Queries::default();
    for i in 0..(MAX_INCOMING as u64 + 10) {
        queries.received(QueryId(i), "a".into(), addr, Duration::from_secs(1), now);
    }
    assert!(queries.take_asker(QueryId(0), now).is_none());
    assert!(queries
        .take_asker(QueryId(MAX_INCOMING as u64 + 9), now)
        .is_some());
}
