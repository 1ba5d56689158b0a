use std::sync::Arc;

use bytes::Bytes;
use ferrymq_log::FsyncPolicy;
use tokio::time::{Duration, Instant, advance};

use super::*;

fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay: Duration::from_millis(500),
        ..GroupConfig::default()
    }
}

fn request(member_id: &str, instance: Option<&str>) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        instance_id: instance.map(Into::into),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![
            ("range".into(), Bytes::from_static(b"sub")),
            ("roundrobin".into(), Bytes::new()),
        ],
        require_known_member_id: true,
    }
}

async fn settle<T>(pending: Pending<T>, c: &Coordinator) -> T {
    match pending {
        Pending::Ready(v) => v,
        Pending::Wait(mut rx) => loop {
            c.tick(Instant::now());
            if let Ok(v) = rx.try_recv() {
                return v;
            }
            advance(Duration::from_millis(100)).await;
        },
    }
}

/// Joins a new dynamic member through the MEMBER_ID_REQUIRED round trip.
fn join_new(c: &Coordinator) -> (String, Pending<JoinResponse>) {
    let Pending::Ready(first) = c.join(&request("", None)) else {
        panic!("expected an id")
    };
    assert!(matches!(
        first.error,
        Some(GroupError::MemberIdRequired { .. })
    ));
    let id = first.member_id.clone();
    (id.clone(), c.join(&request(&id, None)))
}

fn open(dir: &std::path::Path) -> Arc<Coordinator> {
    Coordinator::open(dir, FsyncPolicy::Always, config()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn two_members_rebalance_sync_and_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let (a, join_a) = join_new(&c);
    let (b, join_b) = join_new(&c);
    let ra = settle(join_a, &c).await;
    let rb = settle(join_b, &c).await;
    assert_eq!((ra.generation, rb.generation), (1, 1));
    assert_eq!(ra.protocol.as_deref(), Some("range"));
    assert_eq!(ra.leader, a);
    assert_eq!(ra.members.len(), 2, "the leader sees every member");
    assert!(rb.members.is_empty());

    let follower = c.sync("g", 1, &b, None, Some("consumer"), Some("range"), vec![]);
    let leader = c.sync(
        "g",
        1,
        &a,
        None,
        None,
        None,
        vec![
            (a.clone(), Bytes::from_static(b"A")),
            (b.clone(), Bytes::from_static(b"B")),
        ],
    );
    assert_eq!(
        settle(leader, &c).await.assignment,
        Bytes::from_static(b"A")
    );
    assert_eq!(
        settle(follower, &c).await.assignment,
        Bytes::from_static(b"B")
    );
    assert_eq!(c.describe("g").state, GroupState::Stable);
    c.heartbeat("g", 1, &a, None).unwrap();
    assert!(matches!(
        c.heartbeat("g", 0, &a, None),
        Err(GroupError::IllegalGeneration { current: 1, .. })
    ));
    assert!(matches!(
        c.heartbeat("g", 1, "nobody", None),
        Err(GroupError::UnknownMember { .. })
    ));

    // A third member makes the others rejoin.
    let (_, join_c) = join_new(&c);
    assert!(matches!(
        c.heartbeat("g", 1, &a, None),
        Err(GroupError::RebalanceInProgress { .. })
    ));
    let again_a = c.join(&request(&a, None));
    let again_b = c.join(&request(&b, None));
    let (ra, rb, rc) = (
        settle(again_a, &c).await,
        settle(again_b, &c).await,
        settle(join_c, &c).await,
    );
    assert_eq!((ra.generation, rb.generation, rc.generation), (2, 2, 2));
    assert_eq!(ra.members.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_silent_member_expires_and_the_rest_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let (a, join_a) = join_new(&c);
    let (b, join_b) = join_new(&c);
    settle(join_a, &c).await;
    settle(join_b, &c).await;
    let leader = c.sync("g", 1, &a, None, None, None, vec![]);
    let follower = c.sync("g", 1, &b, None, None, None, vec![]);
    settle(leader, &c).await;
    settle(follower, &c).await;
    // Only `a` heartbeats; `b` is gone after its 10 s session.
    let start = Instant::now();
    while Instant::now() - start < Duration::from_secs(11) {
        let _ = c.heartbeat("g", 1, &a, None);
        advance(Duration::from_millis(500)).await;
        c.tick(Instant::now());
    }
    assert!(matches!(
        c.heartbeat("g", 1, &a, None),
        Err(GroupError::RebalanceInProgress { .. })
    ));
    let r = settle(c.join(&request(&a, None)), &c).await;
    assert_eq!(r.generation, 2);
    assert_eq!(r.members.len(), 1);
    assert!(matches!(
        c.heartbeat("g", 2, &b, None),
        Err(GroupError::UnknownMember { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_static_member_rejoins_without_a_rebalance_and_fences_its_old_id() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let (a, join_a) = join_new(&c);
    let join_s = c.join(&request("", Some("instance-1")));
    let ra = settle(join_a, &c).await;
    let rs = settle(join_s, &c).await;
    let s = rs.member_id.clone();
    assert_eq!(
        ra.members
            .iter()
            .filter(|m| m.instance_id.as_deref() == Some("instance-1"))
            .count(),
        1
    );
    let syncs = [
        c.sync(
            "g",
            1,
            &a,
            None,
            None,
            None,
            vec![(s.clone(), Bytes::from_static(b"S"))],
        ),
        c.sync("g", 1, &s, Some("instance-1"), None, None, vec![]),
    ];
    for p in syncs {
        settle(p, &c).await;
    }
    // The static member restarts: new member id, same instance, same subscription.
    let restarted = settle(c.join(&request("", Some("instance-1"))), &c).await;
    assert_eq!(restarted.error, None);
    assert_eq!(restarted.generation, 1, "no rebalance");
    assert_ne!(restarted.member_id, s);
    assert!(matches!(
        c.heartbeat("g", 1, &s, Some("instance-1")),
        Err(GroupError::FencedInstance { .. })
    ));
    let sync = settle(
        c.sync(
            "g",
            1,
            &restarted.member_id,
            Some("instance-1"),
            None,
            None,
            vec![],
        ),
        &c,
    )
    .await;
    assert_eq!(
        sync.assignment,
        Bytes::from_static(b"S"),
        "the assignment carries over"
    );
}

#[tokio::test(start_paused = true)]
async fn offsets_and_group_metadata_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let a = {
        let c = open(dir.path());
        let (a, join) = join_new(&c);
        settle(join, &c).await;
        settle(
            c.sync(
                "g",
                1,
                &a,
                None,
                None,
                None,
                vec![(a.clone(), Bytes::from_static(b"A"))],
            ),
            &c,
        )
        .await;
        let offset = CommittedOffset {
            offset: 42,
            leader_epoch: -1,
            metadata: Some("m".into()),
            commit_ms: 1,
        };
        let committed = c
            .commit("g", 1, &a, None, vec![("t".into(), 3, offset)])
            .unwrap();
        assert_eq!(committed.errors, vec![None]);
        c.wait_durable(committed.end.unwrap()).await.unwrap();
        // A simple (generation -1) commit to a group without members.
        let simple = CommittedOffset {
            offset: 7,
            leader_epoch: -1,
            metadata: None,
            commit_ms: 1,
        };
        c.commit("solo", -1, "", None, vec![("t".into(), 0, simple)])
            .unwrap();
        c.shutdown().unwrap();
        a
    };
    let c = open(dir.path());
    let fetched = c.fetch_offsets("g", Some(&[("t".into(), vec![3, 4])]));
    assert_eq!(
        fetched[0]
            .2
            .as_ref()
            .map(|o| (o.offset, o.metadata.clone())),
        Some((42, Some("m".into())))
    );
    assert_eq!(fetched[1].2, None);
    assert_eq!(c.fetch_offsets("solo", None).len(), 1);
    // The member is still known in its generation: it heartbeats on, no rebalance.
    c.heartbeat("g", 1, &a, None).unwrap();
    let described = c.describe("g");
    assert_eq!(
        (described.state, described.members.len()),
        (GroupState::Stable, 1)
    );
    assert_eq!(described.members[0].assignment, Bytes::from_static(b"A"));
}

#[tokio::test(start_paused = true)]
async fn commits_from_strangers_and_old_generations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let (a, join) = join_new(&c);
    settle(join, &c).await;
    let offset = || {
        vec![(
            "t".to_owned(),
            0,
            CommittedOffset {
                offset: 1,
                leader_epoch: -1,
                metadata: None,
                commit_ms: 1,
            },
        )]
    };
    assert!(matches!(
        c.commit("g", 1, &a, None, offset()),
        Err(GroupError::RebalanceInProgress { .. })
    ));
    settle(c.sync("g", 1, &a, None, None, None, vec![]), &c).await;
    assert!(matches!(
        c.commit("g", 0, &a, None, offset()),
        Err(GroupError::IllegalGeneration { .. })
    ));
    assert!(matches!(
        c.commit("g", 1, "x", None, offset()),
        Err(GroupError::UnknownMember { .. })
    ));
    assert!(matches!(
        c.commit("g", -1, "", None, offset()),
        Err(GroupError::UnknownMember { .. })
    ));
    let long = vec![(
        "t".to_owned(),
        0,
        CommittedOffset {
            offset: 1,
            leader_epoch: -1,
            metadata: Some("x".repeat(5000)),
            commit_ms: 1,
        },
    )];
    let res = c.commit("g", 1, &a, None, long).unwrap();
    assert!(matches!(
        res.errors[0],
        Some(GroupError::MetadataTooLarge { .. })
    ));
    assert!(matches!(
        c.delete_group("g"),
        Err(GroupError::NotEmpty { .. })
    ));
    c.leave("g", &[(a.clone(), None)]).unwrap();
    assert_eq!(c.describe("g").state, GroupState::Empty);
    // The background tick must not forget a group that was just left (Kafka keeps it until
    // its retention check), or a DeleteGroups right after the leave fails with not-found.
    c.tick(Instant::now());
    assert_eq!(c.describe("g").state, GroupState::Empty);
    c.delete_group("g").unwrap();
    assert_eq!(c.describe("g").state, GroupState::Dead);
    assert!(matches!(
        c.delete_group("g"),
        Err(GroupError::NotFound { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn invalid_joins_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let mut short = request("", None);
    short.session_timeout_ms = 10;
    let r = settle(c.join(&short), &c).await;
    assert!(matches!(
        r.error,
        Some(GroupError::InvalidSessionTimeout { .. })
    ));
    let r = settle(c.join(&request("ghost", None)), &c).await;
    assert!(matches!(r.error, Some(GroupError::UnknownMember { .. })));
    let (_, join) = join_new(&c);
    settle(join, &c).await;
    let mut other = request("", None);
    other.protocols = vec![("sticky".into(), Bytes::new())];
    other.require_known_member_id = false;
    let r = settle(c.join(&other), &c).await;
    assert!(matches!(
        r.error,
        Some(GroupError::InconsistentProtocol { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn members_that_miss_the_rebalance_deadline_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let (a, join_a) = join_new(&c);
    let (b, join_b) = join_new(&c);
    settle(join_a, &c).await;
    settle(join_b, &c).await;
    let syncs = [
        c.sync("g", 1, &a, None, None, None, vec![]),
        c.sync("g", 1, &b, None, None, None, vec![]),
    ];
    for s in syncs {
        settle(s, &c).await;
    }
    // A third member arrives; `a` rejoins, `b` keeps heartbeating but never rejoins.
    let (_, join_c) = join_new(&c);
    let rejoin_a = c.join(&request(&a, None));
    let started = Instant::now();
    let mut rc = None;
    let mut ra = None;
    let (mut join_c, mut rejoin_a) = (Some(join_c), Some(rejoin_a));
    while rc.is_none() || ra.is_none() {
        let _ = c.heartbeat("g", 1, &b, None);
        advance(Duration::from_millis(500)).await;
        c.tick(Instant::now());
        for (slot, pending) in [(&mut rc, &mut join_c), (&mut ra, &mut rejoin_a)] {
            if let Some(Pending::Wait(rx)) = pending.as_mut()
                && let Ok(r) = rx.try_recv()
            {
                *slot = Some(r);
                *pending = None;
            }
        }
        assert!(
            Instant::now() - started < Duration::from_secs(40),
            "rebalance never completed"
        );
    }
    assert!(
        Instant::now() - started >= Duration::from_secs(29),
        "waited for the 30 s rebalance timeout"
    );
    let (ra, rc) = (ra.unwrap(), rc.unwrap());
    assert_eq!((ra.generation, rc.generation), (2, 2));
    assert_eq!(ra.members.len().max(rc.members.len()), 2, "b was removed");
    assert!(matches!(
        c.heartbeat("g", 2, &b, None),
        Err(GroupError::UnknownMember { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_never_syncs_is_removed_after_the_rebalance_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let (a, join_a) = join_new(&c);
    let (b, join_b) = join_new(&c);
    let ra = settle(join_a, &c).await;
    settle(join_b, &c).await;
    assert_eq!(ra.leader, a);
    let Pending::Wait(mut follower) = c.sync("g", 1, &b, None, None, None, vec![]) else {
        panic!("the follower waits for the leader's assignment")
    };
    let started = Instant::now();
    let answer = loop {
        advance(Duration::from_millis(500)).await;
        c.tick(Instant::now());
        if let Ok(r) = follower.try_recv() {
            break r;
        }
        assert!(Instant::now() - started < Duration::from_secs(40));
    };
    assert!(matches!(
        answer.error,
        Some(GroupError::RebalanceInProgress { .. })
    ));
    let r = settle(c.join(&request(&b, None)), &c).await;
    assert_eq!(
        (r.generation, r.leader.as_str(), r.members.len()),
        (2, b.as_str(), 1)
    );
}

#[tokio::test]
async fn an_empty_group_without_offsets_is_forgotten_after_its_retention() {
    let dir = tempfile::tempdir().unwrap();
    let c = Coordinator::open(
        dir.path(),
        FsyncPolicy::Always,
        GroupConfig {
            initial_rebalance_delay: Duration::ZERO,
            empty_group_retention: Duration::ZERO,
            ..GroupConfig::default()
        },
    )
    .unwrap();
    let (a, join) = join_new(&c);
    let joined = settle(join, &c).await;
    assert_eq!(joined.member_id, a);
    c.leave("g", &[(a, None)]).unwrap();
    assert_eq!(c.describe("g").state, GroupState::Empty);
    std::thread::sleep(Duration::from_millis(2));
    c.tick(Instant::now());
    assert_eq!(c.describe("g").state, GroupState::Dead);
    assert!(c.list().iter().all(|g| g.group_id != "g"));
}
