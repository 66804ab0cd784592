//! What the core does with what other nodes send: one handler per [`Message`] kind, and the answers
//! to this node's own requests.

use std::collections::HashSet;

use ferrio_core::adapter::{AckEvent, Adapter, BroadcastOptions, Room, SessionLog, Sid};
use ferrio_proto::socket::Packet;
use ferrio_proto::value::Value;
use futures_util::FutureExt;
use tokio::sync::mpsc;

use super::transport::{Inbox, Transport};
use super::{
    ACK_GRACE, Collected, Core, Incoming, Message, Pending, RequestId, Response, SocketOp, one_room,
};

impl<T: Transport> Core<T> {
    // ---- handlers of other nodes' messages, one per kind

    /// With connection state recovery on, the offset is appended to the packet, as the official
    /// `addOffsetIfNecessary` does, so that a client can resume from it.
    fn on_broadcast(&self, mut packet: Packet, mut opts: BroadcastOptions, offset: Option<String>) {
        if self.recovery.get().is_some()
            && let Some(offset) = offset
            && SessionLog::is_eligible(&packet, &opts)
            && let Packet::Event { args, .. } = &mut packet
        {
            args.push(Value::String(offset));
        }
        opts.flags.local = true;
        let _ = self.local.broadcast(packet, opts).now_or_never();
    }

    fn on_broadcast_with_ack(
        &self,
        from: Option<String>,
        request_id: RequestId,
        mut packet: Packet,
        opts: BroadcastOptions,
    ) {
        let Ok(ns) = self.ns() else { return };
        if let Packet::Event { nsp, .. } = &mut packet {
            ns.name().clone_into(nsp);
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let count = self.deliver_with_ack(&ns, packet, &opts, &tx);
        drop(tx);
        self.respond(
            from.as_deref(),
            Response::BroadcastClientCount {
                request_id: request_id.clone(),
                count,
            },
        );
        let Some(me) = self.me.upgrade() else { return };
        if count == 0 {
            return;
        }
        let deadline = opts.flags.timeout.unwrap_or(self.options.requests_timeout) + ACK_GRACE;
        tokio::spawn(async move {
            let forward = async {
                let mut got = 0;
                while let Some(ev) = rx.recv().await {
                    if let AckEvent::Response(args) = ev {
                        let value = args.into_iter().next().unwrap_or(Value::Null);
                        me.respond(
                            from.as_deref(),
                            Response::BroadcastAck {
                                request_id: request_id.clone(),
                                value,
                            },
                        );
                        got += 1;
                        if got >= count {
                            return;
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(deadline, forward).await;
        });
    }

    fn on_fetch_sockets(
        &self,
        from: Option<String>,
        request_id: RequestId,
        opts: BroadcastOptions,
    ) {
        let Ok(ns) = self.ns() else { return };
        let sockets = self
            .local
            .sockets(&opts)
            .iter()
            .filter_map(|sid| ns.socket_info(sid))
            .collect();
        self.respond(
            from.as_deref(),
            Response::FetchSockets {
                request_id,
                sockets,
            },
        );
    }

    fn on_server_side_emit(
        &self,
        from: Option<String>,
        request_id: Option<RequestId>,
        event: String,
        args: Vec<Value>,
    ) {
        let Ok(ns) = self.ns() else { return };
        let Some(request_id) = request_id else {
            return ns.on_server_side_emit(event, args, None);
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        ns.on_server_side_emit(event, args, Some(tx));
        let Some(me) = self.me.upgrade() else { return };
        let timeout = self.options.requests_timeout;
        tokio::spawn(async move {
            // Only the first ack is answered, as a JavaScript callback runs once.
            let first = tokio::time::timeout(timeout, async {
                while let Some(ev) = rx.recv().await {
                    if let AckEvent::Response(args) = ev {
                        return Some(args);
                    }
                }
                None
            })
            .await;
            if let Ok(Some(args)) = first {
                let value = args.into_iter().next().unwrap_or(Value::Null);
                me.respond(
                    from.as_deref(),
                    Response::ServerSideEmit { request_id, value },
                );
            }
        });
    }

    fn on_all_rooms(&self, from: Option<String>, request_id: RequestId) {
        let rooms = self
            .local
            .all_rooms(true)
            .now_or_never()
            .and_then(Result::ok)
            .unwrap_or_default()
            .into_iter()
            .collect();
        self.respond(from.as_deref(), Response::AllRooms { request_id, rooms });
    }

    fn on_socket_ids(&self, from: Option<String>, request_id: RequestId, rooms: HashSet<Room>) {
        let opts = BroadcastOptions {
            rooms,
            ..Default::default()
        };
        let ids = self
            .local
            .sockets(&opts)
            .iter()
            .map(|s| s.to_string())
            .collect();
        self.respond(from.as_deref(), Response::SocketIds { request_id, ids });
    }

    fn on_socket_op(
        &self,
        from: Option<String>,
        request_id: Option<RequestId>,
        sid: String,
        op: SocketOp,
    ) {
        let Ok(ns) = self.ns() else { return };
        if ns.socket_info(&sid).is_none() {
            return;
        }
        let sid = Sid::from(sid);
        match op {
            SocketOp::Join(room) => self.add_all(&sid, &[room]),
            SocketOp::Leave(room) => self.del(&sid, &room),
            SocketOp::Disconnect { close } => ns.disconnect(&sid, close),
        }
        self.respond(from.as_deref(), Response::SocketOpDone { request_id });
    }

    // ---- answers to this node's requests

    fn on_client_count(&self, request_id: &str, count: usize) {
        if let Some(p) = self.acks.lock().get_mut(request_id) {
            let _ = p.sink.send(AckEvent::ClientCount(count));
            p.counts += 1;
            p.maybe_complete();
        }
    }

    fn on_broadcast_ack(&self, request_id: &str, value: Value) {
        if let Some(p) = self.acks.lock().get(request_id) {
            let _ = p.sink.send(AckEvent::Response(vec![value]));
        }
    }

    fn on_gathered(&self, request_id: &str, answer: Collected) {
        let mut requests = self.requests.lock();
        let Some(Pending::Gather {
            expected,
            received,
            collected,
            done,
        }) = requests.get_mut(request_id)
        else {
            return;
        };
        match (collected, answer) {
            (Collected::Sockets(all), Collected::Sockets(more)) => all.extend(more),
            (Collected::Rooms(all), Collected::Rooms(more)) => all.extend(more),
            // An answer of another kind under this id: not ours.
            _ => return,
        }
        *received += 1;
        if *received >= *expected
            && let Some(d) = done.take()
        {
            let _ = d.send(());
        }
    }

    fn on_server_side_ack(&self, request_id: &str, value: Value) {
        let mut requests = self.requests.lock();
        let Some(Pending::ServerSideEmit {
            expected,
            received,
            sink,
        }) = requests.get_mut(request_id)
        else {
            return;
        };
        let _ = sink.send(AckEvent::Response(vec![value]));
        *received += 1;
        if *received >= *expected {
            requests.remove(request_id);
        }
    }
}

impl<T: Transport> Inbox for Core<T> {
    fn on_message(&self, incoming: Incoming) {
        let Incoming {
            from,
            message,
            offset,
        } = incoming;
        // With recovery on, this node's own broadcasts are delivered here as the log orders them
        // (see `broadcast`); every other message of its own was handled when it was sent.
        let own_logged = self.recovery.get().is_some()
            && offset.is_some()
            && matches!(&message, Message::Broadcast { packet, opts } if SessionLog::is_eligible(packet, opts));
        if from.as_deref() == Some(self.uid.as_str()) && !own_logged {
            return;
        }
        match message {
            Message::Broadcast { packet, opts } => self.on_broadcast(packet, opts, offset),
            Message::BroadcastWithAck {
                request_id,
                packet,
                opts,
            } => self.on_broadcast_with_ack(from, request_id, packet, opts),
            m @ (Message::SocketsJoin { .. }
            | Message::SocketsLeave { .. }
            | Message::DisconnectSockets { .. }) => self.apply_here(&m),
            Message::FetchSockets { request_id, opts } => {
                self.on_fetch_sockets(from, request_id, opts)
            }
            Message::ServerSideEmit {
                request_id,
                event,
                args,
            } => self.on_server_side_emit(from, request_id, event, args),
            Message::AllRooms { request_id } => self.on_all_rooms(from, request_id),
            Message::SocketIds { request_id, rooms } => self.on_socket_ids(from, request_id, rooms),
            Message::SocketOp {
                request_id,
                sid,
                op,
            } => self.on_socket_op(from, request_id, sid, op),
            // Membership comes from the transport's server count (NUMSUB / SHARDNUMSUB).
            Message::Heartbeat { .. } | Message::AdapterClose => {}
        }
    }

    fn on_response(&self, response: Response) {
        match response {
            Response::BroadcastClientCount { request_id, count } => {
                self.on_client_count(&request_id, count)
            }
            Response::BroadcastAck { request_id, value } => {
                self.on_broadcast_ack(&request_id, value)
            }
            Response::FetchSockets {
                request_id,
                sockets,
            } => self.on_gathered(&request_id, Collected::Sockets(sockets)),
            Response::AllRooms { request_id, rooms } => {
                self.on_gathered(&request_id, Collected::Rooms(rooms.into_iter().collect()))
            }
            Response::ServerSideEmit { request_id, value } => {
                self.on_server_side_ack(&request_id, value)
            }
            // This node never asks for these (they answer Node nodes' requests).
            Response::SocketIds { .. } | Response::SocketOpDone { .. } => {}
        }
    }

    fn has_room(&self, room: &str) -> bool {
        !self.local.sockets(&one_room(room)).is_empty()
    }
}
