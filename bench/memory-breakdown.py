#!/usr/bin/env python3
"""Groups a DHAT profile's live heap at exit ("at t-end") by owner, per connection.

    python3 bench/memory-breakdown.py FILE.dhat CLIENTS [--unknown]

Each allocation stack goes to the first owner (in the order of RULES: the specific before the
general) whose pattern matches one of its frames. `--unknown` lists the
stacks no pattern matched, `--show TEXT` those of the owners whose name holds TEXT.
"""
import json
import re
import sys

# (owner, layer, pattern on one frame's function name); the first rule that matches a frame wins. Layers: `engine` / `socket.io` (the per-session state of crates/ferrio),
# `websocket` (transport/websocket.rs), `http1` (ferrio's own HTTP/1 server), `hyper` (when mounted in
# axum or hyper, and ferrio's before http1), `tokio`.
RULES = [
    ("task: websocket driver (cell and future, one task for reading and writing)", "websocket", r"Cell<ferrio::transport::websocket::.*run::\{async_block_env"),
    ("websocket codec: write buffer kept for the next frames", "websocket", r"ferrio_proto::ws::Encoder"),
    ("task: websocket reader (spawn_session / spawn_probe)", "websocket", r"Cell<ferrio::transport::websocket::spawn_(session|probe)"),
    ("task: websocket writer (write_loop)", "websocket", r"Cell<ferrio::transport::websocket::write_loop"),
    ("task: session timer (run_timers)", "engine", r"Cell<ferrio::engine::socket::.*run_timers"),
    ("task: HTTP connection (cell and future)", "http1", r"Cell<.*ferrio::http1::serve_connection|Cell<ferrio::service::serve_until"),
    ("HTTP connection: answer watch, shutdown gate", "http1", r"^ferrio::http1::serve_connection$"),
    ("pending GET: request extensions (peer address, answer watch)", "http1", r"http::extensions::Extensions::insert"),
    ("task: socket (run_socket), cell", "socket.io", r"Cell<core::pin::Pin<alloc::boxed::Box<\(dyn core::future::future::Future"),
    ("socket future (run_socket)", "socket.io", r"run_socket::\{async_(fn|block)_env"),
    ("hyper read buffer", "hyper", r"hyper::proto::h1::io::Buffered<T,B>::poll_read_from_io"),
    ("pending GET: request future (EngineService::call)", "engine", r"EngineService<S> as tower_service::Service.*>::call$"),
    ("pending GET: its request's URI and headers", "engine", r"own_request_bytes"),
    ("hyper: last response's headers, kept for reuse", "hyper", r"ferrio::transport::polling::payload_response|ferrio::transport::websocket::switching_protocols|HeaderMap<T>::insert"),
    ("session: handshake copy (headers, URI)", "engine", r"HandshakeInfo|HeaderMap<T> as core::clone::Clone"),
    ("session: Socket struct", "engine", r"ArcInner<ferrio::engine::socket::Socket>|new_cyclic_in<ferrio::engine::socket::Socket"),
    ("session: frame queue", "engine", r"FrameQueue|(channel|Chan)<ferrio_proto::engine::packet::Frame"),
    ("session: timer entry", "engine", r"ferrio::engine::timer"),
    ("socket: job queue", "socket.io", r"ferrio::socket::queue|(channel|Chan)<ferrio::socket::queue::Job"),
    ("socket: listeners", "socket.io", r"ferrio::socket::listeners|ArcInner<ferrio::socket::listeners|add_listener"),
    ("socket: SocketInner", "socket.io", r"ArcInner<ferrio::socket::SocketInner>"),
    ("socket: handshake maps (socket.handshake())", "socket.io", r"ferrio::conn::Conn::handshake|^handshake$|Client::handshake"),
    ("adapter: the socket's own room", "socket.io", r"ferrio_core::adapter"),
    ("connect timeouts queue", "socket.io", r"ConnectTimeouts"),
    ("client: Client, decoder, sockets", "socket.io", r"ferrio::client::|JsonParser as ferrio_proto::socket::Parser>::decoder"),
    ("namespace: sockets map, connect packet", "socket.io", r"ferrio::namespace::"),
    ("websocket codec and stream (tungstenite, split)", "websocket", r"tungstenite|ferrio::transport::websocket::(run|accept|CancelWatch)"),
    ("session: id, handler, sessions map", "engine", r"dashmap.*ferrio::engine::socket::Socket|ferrio::engine::Engine::dispatch"),
    ("tokio IO registration (ScheduledIo)", "tokio", r"tokio::runtime::io::"),
    ("session: handler state made at open (client)", "socket.io", r"Handler as ferrio::engine::EngineHandler>::on_open|ferrio::engine::OpenSession>::open"),
    ("hyper HTTP/1 connection (write buffer, dispatcher)", "hyper", r"^hyper::"),
    ("HTTP connection: other (allocated while a request ran)", "http1", r"serve_connection"),
]
RULES = [(o, l, re.compile(p)) for o, l, p in RULES]


def function(frame):
    m = re.match(r"0x[0-9A-Fa-f]+: (.*?) \((?:in )?[^()]*\)$", frame)
    return m.group(1) if m else frame


def main():
    path, n = sys.argv[1], int(sys.argv[2])
    show_unknown = "--unknown" in sys.argv
    show = sys.argv[sys.argv.index("--show") + 1] if "--show" in sys.argv else None
    shown = []
    d = json.load(open(path))
    ftbl = d["ftbl"]
    owners = {}
    unknown = []
    for pp in d["pps"]:
        if pp["eb"] == 0:
            continue
        frames = [function(ftbl[i]) for i in pp["fs"]]
        owner = next(
            ((o, layer) for o, layer, pat in RULES if any(pat.search(f) for f in frames)),
            None,
        )
        if owner is None:
            owner = ("other", "?")
            unknown.append((pp["eb"], frames))
        if show and show in owner[0]:
            shown.append((pp["eb"], frames))
        b, k = owners.get(owner, (0, 0))
        owners[owner] = (b + pp["eb"], k + pp["ebk"])
    total = sum(b for b, _ in owners.values())
    print(f"{'owner':58} {'layer':10} {'B/conn':>8} {'blocks':>7}")
    for (o, layer), (b, k) in sorted(owners.items(), key=lambda x: -x[1][0]):
        if b / n < 1:
            continue
        print(f"{o:58} {layer:10} {b / n:8.0f} {k / n:7.2f}")
    print(f"{'total (live at exit, including one-time server state)':69} {total / n:8.0f}")
    by_layer = {}
    for (o, layer), (b, _) in owners.items():
        by_layer[layer] = by_layer.get(layer, 0) + b
    print("by layer: " + ", ".join(f"{l} {b / n:.0f}" for l, b in sorted(by_layer.items(), key=lambda x: -x[1])))
    if show:
        unknown = shown
    if show_unknown or show:
        for b, frames in sorted(unknown, key=lambda x: -x[0])[:20]:
            print(f"\n{b / n:.0f} B/conn")
            for f in frames[:int(__import__("os").environ.get("DEPTH", "14"))]:
                print("    " + f[:160])


main()
