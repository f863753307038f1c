//! Three real UDP nodes on loopback addresses.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::{Keyring, MemberStatus};

/// Generous: real sockets, a debug build and a busy 2-core machine.
const DEADLINE: Duration = Duration::from_secs(20);

fn loopback(last: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 40, last)), 0)
}

async fn node(name: &str, last: u8, adjust: impl FnOnce(&mut Config)) -> GossipHandle {
    let mut config = Config::new(name, loopback(last));
    adjust(&mut config);
    spawn(config, loopback(last))
        .await
        .expect("bind a loopback gossip socket")
}

/// Polls `check` until it holds or the deadline passes.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

fn status_of(handle: &GossipHandle, name: &str) -> Option<MemberStatus> {
    handle
        .members()
        .into_iter()
        .find(|member| member.name == name)
        .map(|member| member.status)
}

#[tokio::test]
async fn three_nodes_join_leave_and_fail_over_udp() {
    let a = node("a", 1, |_| {}).await;
    let b = node("b", 2, |_| {}).await;
    let c = node("c", 3, |_| {}).await;
    let mut events = a.subscribe();
    let mut changes = a.changes();

    assert_eq!(b.join(vec![a.local_addr()]).await.unwrap(), 1);
    assert_eq!(
        c.join(vec![b.local_addr()]).await.unwrap(),
        1,
        "any member's address works"
    );
    for handle in [&a, &b, &c] {
        eventually("every node sees three alive members", || async {
            let members = handle.members();
            members.len() == 3
                && members
                    .iter()
                    .all(|member| member.status == MemberStatus::Alive)
        })
        .await;
    }
    let joined = events.recv().await.unwrap();
    assert!(matches!(joined, Event::MemberJoin(_)), "{joined:?}");
    assert!(changes.has_changed().unwrap(), "the member list changed");
    changes.mark_unchanged();

    // Tags travel.
    let mut tags = Tags::new();
    tags.insert("role".into(), "consul".into());
    c.set_tags(tags.clone()).await.unwrap();
    eventually("a sees c's new tags", || async {
        a.members()
            .iter()
            .any(|member| member.name == "c" && member.tags == tags)
    })
    .await;

    // A query reaches everyone and comes back.
    let responder = {
        let b = b.clone();
        let mut queries = b.subscribe();
        tokio::spawn(async move {
            while let Ok(event) = queries.recv().await {
                if let Event::Query(query) = event {
                    let _ = b.respond(query.id, b"pong".to_vec()).await;
                }
            }
        })
    };
    let responses = a
        .query("ping", b"?".to_vec(), Duration::from_millis(1500))
        .await
        .unwrap();
    assert_eq!(
        responses,
        [QueryResponse {
            from: "b".into(),
            payload: b"pong".to_vec()
        }]
    );
    // Waiting for the answers expected returns without sitting out a long timeout.
    let responses = tokio::time::timeout(
        Duration::from_secs(10),
        a.query_until("ping", b"?".to_vec(), Duration::from_secs(600), 1),
    )
    .await
    .expect("the query returns once b answered")
    .unwrap();
    assert_eq!(responses.len(), 1);
    responder.abort();

    // Graceful leave: left, not failed.
    b.leave().await.unwrap();
    assert_eq!(b.local().status, MemberStatus::Left);
    eventually("a and c see b left", || async {
        status_of(&a, "b") == Some(MemberStatus::Left)
            && status_of(&c, "b") == Some(MemberStatus::Left)
    })
    .await;

    // Crash: the task stops without a word.
    c.abort();
    eventually("a sees c failed", || async {
        status_of(&a, "c") == Some(MemberStatus::Failed)
    })
    .await;
    assert_eq!(
        status_of(&a, "b"),
        Some(MemberStatus::Left),
        "left stays left"
    );
}

#[tokio::test]
async fn encrypted_nodes_join_and_a_wrong_key_is_refused() {
    let key = generate_key();
    let shared = |config: &mut Config| config.keyring = Some(Keyring::new(&key).unwrap());
    let a = node("a", 11, shared).await;
    let b = node("b", 12, shared).await;
    let stranger = node("stranger", 13, |config| {
        config.keyring = Some(Keyring::new(&generate_key()).unwrap());
        config.join_attempts = 2;
    })
    .await;

    assert_eq!(b.join(vec![a.local_addr()]).await.unwrap(), 1);
    eventually("a sees b", || async {
        status_of(&a, "b") == Some(MemberStatus::Alive)
    })
    .await;

    assert_eq!(stranger.join(vec![a.local_addr()]).await.unwrap(), 0);
    assert_eq!(status_of(&a, "stranger"), None);

    // Rotation through the handles: install the new key on both, then make it a's primary. b reads a's
    // datagrams with the installed key, so nobody fails.
    let mut b_events = b.subscribe();
    let second = generate_key();
    let both = [key.clone(), second.clone()];
    assert_eq!(b.keyring_install(&second).await.unwrap(), both);
    assert_eq!(a.keyring_install(&second).await.unwrap(), both);
    let rotated = [second.clone(), key.clone()];
    assert_eq!(a.keyring_use(&second).await.unwrap(), rotated);
    let primary = a.keyring_remove(&second).await.unwrap_err();
    assert_eq!(
        primary.to_string(),
        "Removing the primary key is not allowed"
    );
    assert_eq!(a.keyring_list().await.unwrap(), rotated);
    assert_eq!(a.keyring().unwrap().list(), rotated, "the snapshot follows");
    let quiet = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            if let Ok(Event::MemberFailed(member)) = b_events.recv().await {
                return member;
            }
        }
    });
    assert!(quiet.await.is_err(), "a rotation step made a member fail");
    assert_eq!(status_of(&b, "a"), Some(MemberStatus::Alive));
}

#[tokio::test]
async fn joining_nobody_answers_zero_and_plain_nodes_have_no_keyring() {
    let a = node("lonely", 21, |config| config.join_attempts = 2).await;
    let nobody = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 40, 22)), 9);
    assert_eq!(a.join(vec![nobody]).await.unwrap(), 0);
    assert!(matches!(
        a.keyring_list().await,
        Err(Error::EncryptionDisabled)
    ));
    let event = UserEvent {
        id: "x".into(),
        name: "deploy".into(),
        payload: vec![0; 600],
        node_filter: String::new(),
        service_filter: String::new(),
        tag_filter: String::new(),
        ltime: 0,
    };
    assert!(matches!(
        a.fire_event(event).await,
        Err(Error::EventTooLarge { .. })
    ));
}

/// Collects formatted log lines.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .expect("log buffer lock")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().expect("log buffer lock").clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// A wrong-key node keeps knocking; the seed says so once, with the address and memberlist's words.
#[tokio::test]
async fn undecryptable_datagrams_are_logged_once_per_source() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    // The test runtime is single-threaded, so the spawned gossip tasks log through this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let seed = node("seed", 31, |config| {
        config.keyring = Some(Keyring::new(&generate_key()).unwrap())
    })
    .await;
    let stranger = node("stranger", 32, |config| {
        config.keyring = Some(Keyring::new(&generate_key()).unwrap());
        config.join_attempts = 4;
        config.join_retry_interval = Duration::from_millis(100);
    })
    .await;
    assert_eq!(stranger.join(vec![seed.local_addr()]).await.unwrap(), 0);

    let source = stranger.local_addr().to_string();
    let warnings: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|line| line.contains("No installed keys could decrypt the message"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("WARN") && warnings[0].contains(&source),
        "{}",
        warnings[0]
    );
}
