//! The cases of the suite. Every node has three sockets: `a` in room `r`, `b` in rooms `r` and `q`,
//! `c` in no room but its own.

use std::collections::HashSet;
use std::time::Duration;

use ferrio_proto::socket::Packet;
use ferrio_proto::value::Value;
use tokio::sync::mpsc;

use super::{Cluster, Harness, QUIET, WITHIN, eventually, sizes};
use crate::adapter::{AckEvent, BroadcastOptions, RecoveryOptions, Room, Session, Sid};

/// Which sockets of a node a case expects.
type Pick = fn(&Sockets) -> Vec<&Sid>;

/// The sockets of one node.
struct Sockets {
    a: Sid,
    b: Sid,
    c: Sid,
}

async fn populated(harness: &dyn Harness, n: usize) -> (Cluster, Vec<Sockets>) {
    let cluster = Cluster::start(harness, n).await;
    let sockets = cluster
        .nodes
        .iter()
        .map(|ns| {
            let s = Sockets {
                a: ns.connect("a"),
                b: ns.connect("b"),
                c: ns.connect("c"),
            };
            ns.adapter().add_all(&s.a, &[room("r")]);
            ns.adapter().add_all(&s.b, &[room("r"), room("q")]);
            s
        })
        .collect();
    harness.settle().await;
    (cluster, sockets)
}

fn room(name: &str) -> Room {
    Room::from(name)
}

fn opts(rooms: &[&str], except: &[&str]) -> BroadcastOptions {
    BroadcastOptions {
        rooms: rooms.iter().map(|r| room(r)).collect(),
        except: except.iter().map(|r| room(r)).collect(),
        ..Default::default()
    }
}

fn local(mut o: BroadcastOptions) -> BroadcastOptions {
    o.flags.local = true;
    o
}

fn event(name: &str, args: Vec<Value>) -> Packet {
    Packet::Event {
        nsp: "/".into(),
        event: name.into(),
        args,
        id: None,
    }
}

/// `(socket, text)` pairs, sorted, as [`FakeNamespace::delivered`](super::FakeNamespace::delivered)
/// lists them.
fn expected(sids: &[&Sid], text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = sids
        .iter()
        .map(|s| (s.to_string(), text.to_owned()))
        .collect();
    out.sort();
    out
}

/// Waits until every node's deliveries of `needle` are `want(node)`, then a little longer to see that
/// no more come.
async fn expect_deliveries(
    cluster: &Cluster,
    needle: &str,
    what: &str,
    want: impl Fn(usize) -> Vec<(String, String)>,
) {
    for ns in &cluster.nodes {
        let want = want(ns.node());
        let ok = eventually(WITHIN, || ns.delivered(needle) == want).await;
        assert!(
            ok,
            "{what}: node {} of {} got {:?}, expected {want:?}",
            ns.node(),
            cluster.nodes.len(),
            ns.delivered(needle)
        );
    }
    tokio::time::sleep(QUIET).await;
    for ns in &cluster.nodes {
        assert_eq!(
            ns.delivered(needle),
            want(ns.node()),
            "{what}: node {} got more than expected",
            ns.node()
        );
    }
}

/// Every node counts every node.
pub async fn server_count(harness: &dyn Harness) {
    for n in sizes(harness) {
        let cluster = Cluster::start(harness, n).await;
        for ns in &cluster.nodes {
            assert_eq!(ns.adapter().server_count().await, n);
        }
    }
}

/// Local room bookkeeping (`add_all`, `del`, `del_all`, `socket_rooms`, `sockets`) and `all_rooms`.
pub async fn rooms(harness: &dyn Harness) {
    for n in sizes(harness) {
        let (cluster, sockets) = populated(harness, n).await;
        let ns = cluster.node(0);
        let adapter = ns.adapter();
        let s = &sockets[0];
        let sorted = |mut v: Vec<Sid>| {
            v.sort();
            v
        };
        assert_eq!(
            sorted(adapter.socket_rooms(&s.b)),
            sorted(vec![s.b.clone(), room("q"), room("r")])
        );
        assert_eq!(
            sorted(adapter.sockets(&opts(&["r"], &[]))),
            sorted(vec![s.a.clone(), s.b.clone()]),
            "sockets() is local"
        );
        assert_eq!(
            sorted(adapter.sockets(&opts(&["r", "q"], &[]))),
            sorted(vec![s.a.clone(), s.b.clone()]),
            "a socket in two rooms counts once"
        );
        assert_eq!(adapter.sockets(&opts(&[], &["r"])), vec![s.c.clone()]);
        assert_eq!(adapter.sockets(&opts(&["r"], &["q"])), vec![s.a.clone()]);

        let mine = adapter.all_rooms(true).await.expect("local rooms");
        let want: HashSet<Room> = [&s.a, &s.b, &s.c]
            .into_iter()
            .cloned()
            .chain([room("r"), room("q")])
            .collect();
        assert_eq!(mine, want);
        // Every room of the cluster or this node's only (ClusterAdapter answers this node's): at least
        // this node's, and nothing that exists nowhere.
        let all = adapter.all_rooms(false).await.expect("rooms");
        let everywhere: HashSet<Room> = sockets
            .iter()
            .flat_map(|s| [s.a.clone(), s.b.clone(), s.c.clone()])
            .chain([room("r"), room("q")])
            .collect();
        assert!(all.is_superset(&mine), "{all:?}");
        assert!(all.is_subset(&everywhere), "{all:?}");

        adapter.del(&s.b, &room("q"));
        assert!(adapter.sockets(&opts(&["q"], &[])).is_empty());
        assert!(!adapter.all_rooms(true).await.unwrap().contains("q"));
        adapter.del_all(&s.a);
        assert!(adapter.socket_rooms(&s.a).is_empty());
        assert_eq!(adapter.sockets(&opts(&["r"], &[])), vec![s.b.clone()]);
        adapter.add_all(&s.a, &[room("r"), room("z")]);
        assert_eq!(
            sorted(adapter.socket_rooms(&s.a)),
            sorted(vec![room("r"), room("z")])
        );
    }
}

/// `broadcast` from every node: to everyone, one room, two rooms, with exceptions, volatile, binary.
pub async fn broadcast(harness: &dyn Harness) {
    for n in sizes(harness) {
        let (cluster, sockets) = populated(harness, n).await;
        for origin in 0..n {
            let adapter = cluster.node(origin).adapter();
            let cases: [(&str, BroadcastOptions, Pick); 5] = [
                ("all", opts(&[], &[]), |s| vec![&s.a, &s.b, &s.c]),
                ("r", opts(&["r"], &[]), |s| vec![&s.a, &s.b]),
                ("rq", opts(&["r", "q"], &[]), |s| vec![&s.a, &s.b]),
                ("except", opts(&[], &["r"]), |s| vec![&s.c]),
                ("r-but-q", opts(&["r"], &["q"]), |s| vec![&s.a]),
            ];
            for (name, o, targets) in cases {
                let name = format!("{name}-from-{origin}");
                adapter
                    .broadcast(event(&name, vec![Value::from(1u64)]), o)
                    .await
                    .expect("broadcast");
                let text = format!(r#"42["{name}",1]"#);
                expect_deliveries(&cluster, &format!(r#""{name}""#), &name, |node| {
                    expected(&targets(&sockets[node]), &text)
                })
                .await;
            }
            // One socket, by its own room, on the last node.
            let last = &sockets[n - 1];
            let name = format!("direct-from-{origin}");
            let o = opts(&[&last.c], &[]);
            adapter.broadcast(event(&name, vec![]), o).await.unwrap();
            let text = format!(r#"42["{name}"]"#);
            expect_deliveries(&cluster, &format!(r#""{name}""#), &name, |node| {
                if node == n - 1 {
                    expected(&[&last.c], &text)
                } else {
                    vec![]
                }
            })
            .await;
        }

        // Volatile and compress reach every node; binary arrives as an attachment.
        let mut o = opts(&["q"], &[]);
        o.flags.volatile = true;
        o.flags.compress = Some(false);
        let bin = Value::Binary(ferrio_proto::Bytes::from_static(&[1, 2, 3]));
        cluster
            .node(0)
            .adapter()
            .broadcast(event("flagged", vec![bin]), o)
            .await
            .unwrap();
        for ns in &cluster.nodes {
            let b = sockets[ns.node()].b.to_string();
            let got = eventually(WITHIN, || {
                ns.deliveries().iter().any(|d| d.text.contains("flagged"))
            })
            .await;
            assert!(got, "node {} got the volatile broadcast", ns.node());
            let d = ns
                .deliveries()
                .into_iter()
                .find(|d| d.text.contains("flagged"))
                .unwrap();
            assert_eq!(d.sid, b);
            assert_eq!(d.text, r#"451-["flagged",{"_placeholder":true,"num":0}]"#);
            assert_eq!(d.attachments, 1);
            assert!(d.flags.volatile, "node {}: volatile", ns.node());
            assert_eq!(d.flags.compress, Some(false), "node {}", ns.node());
        }
    }
}

/// A `local` broadcast stays on its node.
pub async fn broadcast_local(harness: &dyn Harness) {
    for n in sizes(harness) {
        let (cluster, sockets) = populated(harness, n).await;
        let origin = n - 1;
        cluster
            .node(origin)
            .adapter()
            .broadcast(event("mine", vec![]), local(opts(&["r"], &[])))
            .await
            .unwrap();
        expect_deliveries(&cluster, r#""mine""#, "local broadcast", |node| {
            if node == origin {
                let s = &sockets[node];
                expected(&[&s.a, &s.b], r#"42["mine"]"#)
            } else {
                vec![]
            }
        })
        .await;
    }
}

/// What a sink of acks received.
#[derive(Debug, Default)]
struct Acks {
    counts: Vec<usize>,
    complete: bool,
    /// How many counts had arrived when the counts were said complete.
    counts_when_complete: usize,
    responses: Vec<Value>,
}

impl Acks {
    fn clients(&self) -> usize {
        self.counts.iter().sum()
    }
}

/// Reads ack events until counts are complete and `responses` responses arrived, or `within` is over.
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<AckEvent>,
    acks: &mut Acks,
    responses: usize,
    within: Duration,
) {
    let end = tokio::time::Instant::now() + within;
    while !(acks.complete && acks.responses.len() >= responses) {
        match tokio::time::timeout_at(end, rx.recv()).await {
            Ok(Some(AckEvent::ClientCount(n))) => acks.counts.push(n),
            Ok(Some(AckEvent::CountsComplete)) => {
                assert!(!acks.complete, "counts complete twice");
                acks.complete = true;
                acks.counts_when_complete = acks.counts.len();
            }
            Ok(Some(AckEvent::Response(mut args))) => {
                assert_eq!(args.len(), 1, "an ack's first argument");
                acks.responses.push(args.remove(0));
            }
            Ok(Some(AckEvent::TimedOut)) | Ok(None) | Err(_) => return,
        }
    }
}

/// Sends `ask-<tag>` to everyone with acks from node `origin`, with `timeout`.
async fn ask(
    cluster: &Cluster,
    origin: usize,
    tag: &str,
    timeout: Duration,
) -> mpsc::UnboundedReceiver<AckEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut o = opts(&[], &[]);
    o.flags.timeout = Some(timeout);
    cluster
        .node(origin)
        .adapter()
        .broadcast_with_ack(event(&format!("ask-{tag}"), vec![]), o, tx)
        .await
        .expect("broadcast with acks");
    rx
}

/// Waits until every node delivered `ask-<tag>` to its three sockets.
async fn asked(cluster: &Cluster, tag: &str) {
    let needle = format!(r#""ask-{tag}""#);
    for ns in &cluster.nodes {
        let ok = eventually(WITHIN, || ns.delivered(&needle).len() == 3).await;
        assert!(ok, "node {}: {:?}", ns.node(), ns.delivered(&needle));
        assert!(
            ns.deliveries()
                .iter()
                .filter(|d| d.text.contains(&needle))
                .all(|d| d.ack_id.is_some()),
            "a packet expecting an ack carries an ack id"
        );
    }
}

/// `broadcast_with_ack` from every node: each node reports its client count once, every answer comes
/// back.
pub async fn broadcast_with_ack(harness: &dyn Harness) {
    for n in sizes(harness) {
        let (cluster, sockets) = populated(harness, n).await;
        for origin in 0..n {
            let tag = format!("all-{origin}");
            let mut rx = ask(&cluster, origin, &tag, WITHIN).await;
            asked(&cluster, &tag).await;
            for ns in &cluster.nodes {
                let s = &sockets[ns.node()];
                for sid in [&s.a, &s.b, &s.c] {
                    let answered = ns.answer_acks(sid, &tag, Value::from(sid.to_string()));
                    assert_eq!(answered, 1);
                }
            }
            let mut acks = Acks::default();
            collect(&mut rx, &mut acks, 3 * n, WITHIN).await;
            assert!(acks.complete, "counts complete: {acks:?}");
            assert_eq!(acks.clients(), 3 * n, "{acks:?}");
            assert_eq!(acks.counts.len(), n, "one count per node: {acks:?}");
            assert_eq!(acks.counts_when_complete, n, "complete once all counted");
            let mut got: Vec<String> = acks
                .responses
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect();
            got.sort();
            let mut want: Vec<String> = sockets
                .iter()
                .flat_map(|s| [&s.a, &s.b, &s.c])
                .map(|s| s.to_string())
                .collect();
            want.sort();
            assert_eq!(got, want);
        }
    }
}

/// Clients that do not answer: the counts still complete, the answers that came are there.
pub async fn broadcast_with_ack_partial(harness: &dyn Harness) {
    for n in sizes(harness) {
        let (cluster, sockets) = populated(harness, n).await;
        let mut rx = ask(&cluster, 0, "some", WITHIN).await;
        asked(&cluster, "some").await;
        for ns in &cluster.nodes {
            let a = &sockets[ns.node()].a;
            assert_eq!(ns.answer_acks(a, "some", Value::from(ns.node() as u64)), 1);
        }
        let mut acks = Acks::default();
        collect(&mut rx, &mut acks, n, WITHIN).await;
        assert!(acks.complete, "{acks:?}");
        assert_eq!(
            acks.counts_when_complete, n,
            "complete once all counted: {acks:?}"
        );
        assert_eq!(acks.clients(), 3 * n);
        let mut got: Vec<u64> = acks.responses.iter().filter_map(Value::as_u64).collect();
        got.sort();
        assert_eq!(got, (0..n as u64).collect::<Vec<_>>());
        // No more than what was answered.
        collect(&mut rx, &mut acks, n + 1, QUIET).await;
        assert_eq!(acks.responses.len(), n);
    }
}

/// Past its timeout (and a grace period), a broadcast's answers from other nodes are dropped, not
/// kept forever (on one node: nothing answers, nothing arrives but the counts).
pub async fn broadcast_with_ack_timeout(harness: &dyn Harness) {
    for n in sizes(harness) {
        let (cluster, sockets) = populated(harness, n).await;
        let timeout = Duration::from_millis(200);
        let mut rx = ask(&cluster, 0, "late", timeout).await;
        asked(&cluster, "late").await;
        let mut acks = Acks::default();
        collect(&mut rx, &mut acks, 0, WITHIN).await;
        assert!(acks.complete, "{acks:?}");
        assert_eq!(acks.clients(), 3 * n);
        tokio::time::sleep(timeout + Duration::from_secs(2)).await;
        for ns in &cluster.nodes[1..] {
            let s = &sockets[ns.node()];
            // The node may have dropped its side already: then there is nothing to answer.
            let _ = ns.answer_acks(&s.a, "late", Value::from("too late"));
        }
        collect(&mut rx, &mut acks, 1, QUIET * 2).await;
        assert!(acks.responses.is_empty(), "{acks:?}");
    }
}

/// `fetch_sockets` from every node: every matching socket of every node, described by its own node.
pub async fn fetch_sockets(harness: &dyn Harness) {
    for n in sizes(harness) {
        let (cluster, sockets) = populated(harness, n).await;
        for origin in 0..n {
            let adapter = cluster.node(origin).adapter();
            let ids = |infos: &[crate::adapter::SocketInfo]| {
                let mut ids: Vec<String> = infos.iter().map(|i| i.id.clone()).collect();
                ids.sort();
                ids
            };
            let want = |pick: Pick| {
                let mut ids: Vec<String> = sockets
                    .iter()
                    .flat_map(pick)
                    .map(|s| s.to_string())
                    .collect();
                ids.sort();
                ids
            };
            let all = adapter.fetch_sockets(opts(&[], &[])).await.unwrap();
            assert_eq!(ids(&all), want(|s| vec![&s.a, &s.b, &s.c]));
            for (node, s) in sockets.iter().enumerate() {
                let b = all.iter().find(|i| i.id == *s.b).expect("b");
                assert_eq!(b.data, Value::from(node as u64), "described by its node");
                let mut rooms = vec![s.b.to_string(), "q".into(), "r".into()];
                rooms.sort();
                let mut got = b.rooms.clone();
                got.sort();
                assert_eq!(got, rooms);
                assert!(b.handshake.url.starts_with("/socket.io/"));
            }
            let in_r = adapter.fetch_sockets(opts(&["r"], &[])).await.unwrap();
            assert_eq!(ids(&in_r), want(|s| vec![&s.a, &s.b]));
            let not_q = adapter.fetch_sockets(opts(&[], &["q"])).await.unwrap();
            assert_eq!(ids(&not_q), want(|s| vec![&s.a, &s.c]));
            let here = adapter.fetch_sockets(local(opts(&[], &[]))).await.unwrap();
            let s = &sockets[origin];
            let mut mine = vec![s.a.to_string(), s.b.to_string(), s.c.to_string()];
            mine.sort();
            assert_eq!(ids(&here), mine);
        }
    }
}

/// `socket_ids` and `sockets_count` (a room's members and size) from every node: every matching
/// socket of every node, or the origin's alone with `local`.
pub async fn socket_ids_and_count(harness: &dyn Harness) {
    for n in sizes(harness) {
        let (cluster, sockets) = populated(harness, n).await;
        for origin in 0..n {
            let adapter = cluster.node(origin).adapter();
            let want = |pick: Pick| {
                let mut ids: Vec<String> = sockets
                    .iter()
                    .flat_map(pick)
                    .map(|s| s.to_string())
                    .collect();
                ids.sort();
                ids
            };
            let ids = |mut got: Vec<Sid>| {
                got.sort();
                got.into_iter().map(|s| s.to_string()).collect::<Vec<_>>()
            };
            let in_r = adapter.socket_ids(opts(&["r"], &[])).await.unwrap();
            assert_eq!(ids(in_r), want(|s| vec![&s.a, &s.b]));
            let not_q = adapter.socket_ids(opts(&[], &["q"])).await.unwrap();
            assert_eq!(ids(not_q), want(|s| vec![&s.a, &s.c]));
            let count = |o| adapter.sockets_count(o);
            assert_eq!(count(opts(&[], &[])).await.unwrap(), 3 * n);
            assert_eq!(count(opts(&["r"], &[])).await.unwrap(), 2 * n);
            assert_eq!(count(opts(&["q"], &[])).await.unwrap(), n);
            assert_eq!(count(opts(&["r"], &["q"])).await.unwrap(), n);
            assert_eq!(count(opts(&["nobody"], &[])).await.unwrap(), 0);
            assert_eq!(count(local(opts(&["r"], &[]))).await.unwrap(), 2);
        }
    }
}

/// `add_sockets` / `del_sockets` (socketsJoin / socketsLeave) from every node reach every node's
/// matching sockets; `local` only the origin's.
pub async fn sockets_join_and_leave(harness: &dyn Harness) {
    for n in sizes(harness) {
        let (cluster, sockets) = populated(harness, n).await;
        for origin in 0..n {
            let adapter = cluster.node(origin).adapter();
            let joined = format!("j{origin}");
            adapter
                .add_sockets(opts(&["q"], &[]), vec![room(&joined)])
                .await
                .unwrap();
            for ns in &cluster.nodes {
                let s = &sockets[ns.node()];
                let ok = eventually(WITHIN, || {
                    ns.adapter().socket_rooms(&s.b).contains(&room(&joined))
                })
                .await;
                assert!(ok, "node {}: b joined {joined}", ns.node());
                assert!(!ns.adapter().socket_rooms(&s.a).contains(&room(&joined)));
            }
            adapter
                .del_sockets(opts(&[], &[]), vec![room(&joined), room("r")])
                .await
                .unwrap();
            for ns in &cluster.nodes {
                let s = &sockets[ns.node()];
                let ok = eventually(WITHIN, || {
                    let b = ns.adapter().socket_rooms(&s.b);
                    !b.contains(&room(&joined)) && !b.contains(&room("r"))
                })
                .await;
                assert!(ok, "node {}: b left {joined} and r", ns.node());
                assert!(ns.adapter().sockets(&opts(&["r"], &[])).is_empty());
                ns.adapter().add_all(&s.a, &[room("r")]);
                ns.adapter().add_all(&s.b, &[room("r")]);
            }
            harness.settle().await;
        }
        // Local: the origin's sockets only.
        let origin = n - 1;
        cluster
            .node(origin)
            .adapter()
            .add_sockets(local(opts(&[], &[])), vec![room("here")])
            .await
            .unwrap();
        tokio::time::sleep(QUIET).await;
        for ns in &cluster.nodes {
            let members = ns.adapter().sockets(&opts(&["here"], &[])).len();
            assert_eq!(members, if ns.node() == origin { 3 } else { 0 });
        }
        cluster
            .node(origin)
            .adapter()
            .del_sockets(local(opts(&["here"], &[])), vec![room("here")])
            .await
            .unwrap();
        assert!(
            cluster
                .node(origin)
                .adapter()
                .sockets(&opts(&["here"], &[]))
                .is_empty()
        );
    }
}

/// `disconnect_sockets` from the last node reaches every node's matching sockets with its `close`
/// flag; `local` only the origin's.
pub async fn disconnect_sockets(harness: &dyn Harness) {
    for n in sizes(harness) {
        let (cluster, sockets) = populated(harness, n).await;
        // From the last node, so that on one node it is node 0 and on more another one than the first.
        let origin = n - 1;
        let adapter = cluster.node(origin).adapter();
        adapter
            .disconnect_sockets(opts(&["q"], &[]), true)
            .await
            .unwrap();
        for ns in &cluster.nodes {
            let want = vec![(sockets[ns.node()].b.to_string(), true)];
            let ok = eventually(WITHIN, || ns.disconnected() == want).await;
            assert!(ok, "node {}: {:?}", ns.node(), ns.disconnected());
            assert!(
                ns.adapter().sockets(&opts(&["q"], &[])).is_empty(),
                "a disconnected socket leaves its rooms"
            );
        }
        adapter
            .disconnect_sockets(local(opts(&["r"], &[])), false)
            .await
            .unwrap();
        tokio::time::sleep(QUIET).await;
        for ns in &cluster.nodes {
            let s = &sockets[ns.node()];
            let mut want = vec![(s.b.to_string(), true)];
            if ns.node() == origin {
                want.push((s.a.to_string(), false));
            }
            assert_eq!(ns.disconnected(), want, "node {}", ns.node());
        }
        let left = cluster
            .node(0)
            .adapter()
            .fetch_sockets(opts(&[], &[]))
            .await
            .unwrap();
        // b everywhere, a on the origin.
        assert_eq!(left.len(), 2 * n - 1);
    }
}

/// `server_side_emit` without acks reaches every other node's handlers, never the sender's.
pub async fn server_side_emit(harness: &dyn Harness) {
    for n in sizes(harness) {
        let cluster = Cluster::start(harness, n).await;
        for origin in 0..n {
            let name = format!("hello-{origin}");
            cluster
                .node(origin)
                .adapter()
                .server_side_emit(name.clone(), vec![Value::from(origin as u64)], None)
                .await
                .unwrap();
            for ns in &cluster.nodes {
                let want = usize::from(ns.node() != origin);
                let count = || ns.server_side().iter().filter(|e| e.event == name).count();
                assert!(eventually(WITHIN, || count() == want).await);
                tokio::time::sleep(QUIET / 5).await;
                assert_eq!(count(), want, "node {}", ns.node());
                if want == 1 {
                    let e = ns
                        .server_side()
                        .into_iter()
                        .find(|e| e.event == name)
                        .unwrap();
                    assert_eq!(e.args, vec![Value::from(origin as u64)]);
                    assert!(!e.with_ack);
                }
            }
        }
    }
}

/// `server_side_emit` with acks: the count of other nodes, then their answers; a silent node only
/// leaves its answer out.
pub async fn server_side_emit_with_ack(harness: &dyn Harness) {
    for n in sizes(harness) {
        let cluster = Cluster::start(harness, n).await;
        for ns in &cluster.nodes {
            ns.answer_server_side(Some(Value::from(format!("pong {}", ns.node()))));
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        cluster
            .node(0)
            .adapter()
            .server_side_emit("ping".into(), vec![Value::from("x")], Some(tx))
            .await
            .unwrap();
        let mut acks = Acks::default();
        collect(&mut rx, &mut acks, n - 1, WITHIN).await;
        assert!(acks.complete, "{acks:?}");
        assert_eq!(acks.clients(), n - 1, "one answer expected per other node");
        let mut got: Vec<String> = acks
            .responses
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        got.sort();
        assert_eq!(got, (1..n).map(|i| format!("pong {i}")).collect::<Vec<_>>());
        assert!(
            cluster.node(0).server_side().is_empty(),
            "the sender's own handlers do not run"
        );
        for ns in &cluster.nodes[1..] {
            assert!(ns.server_side().iter().all(|e| e.with_ack));
        }

        // The last node stays silent.
        if n >= 2 {
            cluster.node(n - 1).answer_server_side(None);
            let (tx, mut rx) = mpsc::unbounded_channel();
            cluster
                .node(0)
                .adapter()
                .server_side_emit("ping".into(), vec![], Some(tx))
                .await
                .unwrap();
            let mut acks = Acks::default();
            collect(&mut rx, &mut acks, n - 1, Duration::from_secs(1)).await;
            assert!(acks.complete);
            assert_eq!(acks.clients(), n - 1);
            assert_eq!(acks.responses.len(), n - 2, "{acks:?}");
        }
    }
}

/// One node of an adapter that supports recovery, turned on before any socket joins, with the usual
/// sockets `a`, `b`, `c`.
async fn recovering(harness: &dyn Harness, window: Duration) -> Option<(Cluster, Sockets)> {
    if !harness.supports_recovery() {
        return None;
    }
    // Recovery across nodes is not part of the contract yet: one node restores its own sessions.
    let cluster = Cluster::start(harness, 1).await;
    let ns = cluster.node(0);
    let on = ns.adapter().enable_recovery(RecoveryOptions {
        max_disconnection_duration: window,
        max_packets: 100,
    });
    assert!(on, "the harness says the adapter supports recovery");
    let s = Sockets {
        a: ns.connect("a"),
        b: ns.connect("b"),
        c: ns.connect("c"),
    };
    ns.adapter().add_all(&s.a, &[room("r")]);
    ns.adapter().add_all(&s.b, &[room("r"), room("q")]);
    harness.settle().await;
    Some((cluster, s))
}

/// The arguments of a delivered `42[…]` frame, event name first.
fn frame_args(text: &str) -> Vec<Value> {
    let json = text
        .strip_prefix("42")
        .unwrap_or_else(|| panic!("an event frame without ack id, got {text}"));
    match Value::from_json(json) {
        Ok(Value::Array(items)) => items,
        other => panic!("an array expected in {text}: {other:?}"),
    }
}

/// The offset a socket got with the delivery containing `needle` (its last argument).
async fn offset_of(cluster: &Cluster, sid: &Sid, needle: &str) -> String {
    let ns = cluster.node(0);
    let ok = eventually(WITHIN, || {
        ns.delivered(needle).iter().any(|(s, _)| s == &**sid)
    })
    .await;
    assert!(ok, "{needle} not delivered to {sid}");
    let (_, text) = ns
        .delivered(needle)
        .into_iter()
        .find(|(s, _)| s == &**sid)
        .unwrap_or_default();
    match frame_args(&text).last() {
        Some(Value::String(o)) => o.clone(),
        other => panic!("an offset as last argument expected in {text}, got {other:?}"),
    }
}

/// With recovery on, each plain broadcast carries a distinct offset as its last argument, the same for
/// every recipient; volatile broadcasts and broadcasts expecting acks carry none.
pub async fn recovery_offsets(harness: &dyn Harness) {
    let Some((cluster, s)) = recovering(harness, Duration::from_secs(60)).await else {
        return;
    };
    let ns = cluster.node(0);
    let adapter = ns.adapter();
    adapter
        .broadcast(event("first", vec![]), opts(&["r"], &[]))
        .await
        .unwrap();
    adapter
        .broadcast(event("second", vec![Value::from(1u64)]), opts(&[], &[]))
        .await
        .unwrap();
    let first_a = offset_of(&cluster, &s.a, "first").await;
    let first_b = offset_of(&cluster, &s.b, "first").await;
    let second = offset_of(&cluster, &s.c, "second").await;
    assert_eq!(first_a, first_b, "one offset per packet");
    assert_ne!(first_a, second, "one packet, one offset");

    let mut volatile = opts(&[], &[]);
    volatile.flags.volatile = true;
    adapter
        .broadcast(event("volatile", vec![]), volatile)
        .await
        .unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    adapter
        .broadcast_with_ack(event("acked", vec![]), opts(&[], &[]), tx)
        .await
        .unwrap();
    let ok = eventually(WITHIN, || {
        ns.delivered("volatile").len() == 3 && ns.delivered("acked").len() == 3
    })
    .await;
    assert!(ok, "{:?}", ns.deliveries());
    for (_, text) in ns.delivered("volatile") {
        assert_eq!(frame_args(&text), vec![Value::from("volatile")]);
    }
    for d in ns.deliveries().iter().filter(|d| d.text.contains("acked")) {
        assert!(
            d.text.ends_with(r#"["acked"]"#),
            "no offset with an ack: {}",
            d.text
        );
    }
}

/// A persisted session comes back once, with the broadcasts its rooms missed after its offset, in
/// order; the socket is back in its rooms and held for its namespace. An unknown pid, a used one or an
/// offset the adapter does not know give nothing.
pub async fn recovery_restore(harness: &dyn Harness) {
    let Some((cluster, s)) = recovering(harness, Duration::from_secs(60)).await else {
        return;
    };
    let ns = cluster.node(0);
    let adapter = ns.adapter();
    adapter
        .broadcast(event("seen", vec![]), opts(&["r"], &[]))
        .await
        .unwrap();
    let offset = offset_of(&cluster, &s.b, "seen").await;

    // `b` drops: it leaves its rooms, its session is kept.
    let rooms = adapter.socket_rooms(&s.b);
    adapter.del_all(&s.b);
    adapter
        .persist_session(Session {
            sid: s.b.clone(),
            pid: "pid-of-b".into(),
            rooms,
            data: Value::from("data of b"),
        })
        .await
        .unwrap();
    for (name, o) in [
        ("m1", opts(&["r"], &[])),
        ("m2", opts(&["q"], &[])),
        ("not-for-b", opts(&["x"], &[])),
        ("except-b", opts(&[], &["q"])),
        ("m3", opts(&[], &[])),
    ] {
        adapter.broadcast(event(name, vec![]), o).await.unwrap();
    }

    assert_eq!(
        adapter
            .restore_session("unknown-pid", &offset)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        adapter
            .restore_session("pid-of-b", "not-an-offset")
            .await
            .unwrap(),
        None,
        "an unknown offset gives nothing (and uses the session)"
    );
    adapter.del_all(&s.b);
    let rooms = vec![s.b.clone(), room("r"), room("q")];
    adapter
        .persist_session(Session {
            sid: s.b.clone(),
            pid: "pid-of-b".into(),
            rooms: rooms.clone(),
            data: Value::from("data of b"),
        })
        .await
        .unwrap();
    let restored = adapter
        .restore_session("pid-of-b", &offset)
        .await
        .unwrap()
        .expect("restored");
    assert_eq!(restored.session.sid, s.b);
    assert_eq!(restored.session.data, Value::from("data of b"));
    let names: Vec<Value> = restored
        .missed
        .iter()
        .map(|p| match p {
            Packet::Event { event, args, .. } => {
                assert!(
                    matches!(args.last(), Some(Value::String(_))),
                    "offset kept: {args:?}"
                );
                Value::from(event.as_str())
            }
            other => panic!("an event expected, got {other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        vec![Value::from("m1"), Value::from("m2"), Value::from("m3")]
    );
    assert_eq!(ns.held(), vec![s.b.to_string()]);
    let mut back: Vec<Room> = adapter.socket_rooms(&s.b);
    back.sort();
    let mut want = rooms;
    want.sort();
    assert_eq!(back, want, "back in its rooms");
    assert!(adapter.sockets(&opts(&["q"], &[])).contains(&s.b));
    assert_eq!(
        adapter.restore_session("pid-of-b", &offset).await.unwrap(),
        None,
        "a session is given back once"
    );
}

/// A session older than `max_disconnection_duration` is gone.
pub async fn recovery_expiry(harness: &dyn Harness) {
    let window = Duration::from_millis(200);
    let Some((cluster, s)) = recovering(harness, window).await else {
        return;
    };
    let adapter = cluster.node(0).adapter();
    adapter
        .broadcast(event("seen", vec![]), opts(&[], &[]))
        .await
        .unwrap();
    let offset = offset_of(&cluster, &s.c, "seen").await;
    adapter.del_all(&s.c);
    adapter
        .persist_session(Session {
            sid: s.c.clone(),
            pid: "pid-of-c".into(),
            rooms: vec![s.c.clone()],
            data: Value::Null,
        })
        .await
        .unwrap();
    tokio::time::sleep(window + Duration::from_millis(100)).await;
    assert_eq!(
        adapter.restore_session("pid-of-c", &offset).await.unwrap(),
        None
    );
}
