// Interop tests of connection state recovery: ferrio's server with recovery on
// (crates/ferrio/examples/recovery_interop.rs) against the official `socket.io-client`.
//
// The server binary is taken from $FERRIO_RECOVERY_INTEROP_BIN, or
// ../target/debug/examples/recovery_interop relative to this directory (build it with
// `cargo build -p ferrio --examples` from the repo root).
//
// The client's transport is cut in the middle of a burst of room broadcasts (by the client: an engine
// close, a TCP reset; or by the server: it shuts the session's TCP connections down), more broadcasts
// are sent while it is away, and it must come back with the same id, rooms and data, then get every
// broadcast exactly once and in order, the missed ones before the live ones. Each scenario runs over polling,
// WebSocket and polling upgraded to WebSocket; sessions that must not come back (voluntary
// disconnect, forged pid, expired, offset fallen off the log) get a new socket.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

// The shared helpers spawn the binary named by this variable: point it at the recovery server (each
// test file runs in a process of its own).
const HERE = dirname(fileURLToPath(import.meta.url));
process.env.FERRIO_SOCKET_INTEROP_BIN =
  process.env.FERRIO_RECOVERY_INTEROP_BIN ?? resolve(HERE, "../target/debug/examples/recovery_interop");
const { Clients, STEP_TIMEOUT, TEST_TIMEOUT, TRANSPORTS, connect, eventually, next, startServer } =
  await import("./lib/socketio.js");

// Long enough for the server to notice a vanished polling client (300 ms + 200 ms heartbeats) and keep
// its session before the client is back, short enough for the tests.
const RECONNECTION_DELAY = 1_000;

const range = (from, to) => Array.from({ length: to - from }, (_, i) => from + i);

/** Options of a client that reconnects on its own after exactly RECONNECTION_DELAY. */
const reconnecting = (extra = {}) => ({
  reconnection: true,
  reconnectionDelay: RECONNECTION_DELAY,
  reconnectionDelayMax: RECONNECTION_DELAY,
  randomizationFactor: 0,
  ...extra,
});

/** A socket in room `r` that records the numbers of every `n` event (the offset rides behind). */
async function recording(c, mode, extra = {}) {
  const socket = c.socket("/", reconnecting(extra));
  const got = [];
  socket.on("n", (n, offset) => {
    assert.equal(typeof offset, "string", "a broadcast carries its offset");
    got.push(n);
  });
  await connect(socket);
  if (mode === "upgrade") {
    await eventually(
      () => (socket.io.engine.transport.name === "websocket" ? true : undefined),
      STEP_TIMEOUT,
      "the upgrade",
    );
  }
  return { socket, got };
}

/** Resolves once `got` holds `n` numbers. */
const received = (got, n, what) =>
  eventually(() => (got.length >= n ? true : undefined), STEP_TIMEOUT * 2, what);

/**
 * Cuts the client's transport once it has received `at` numbers; resolves on its `disconnect`.
 *
 * The cut waits for the end of the payload being read: socket.io-client keeps the events that follow
 * a cut in the same polling payload in its receive buffer, emits them after the reconnection, and
 * yet sends the offset of the last event it emitted before the cut, so they would arrive twice (once
 * from the buffer, once replayed).
 */
function cutAt(socket, got, at, cut) {
  const gone = next(socket, "disconnect", STEP_TIMEOUT * 2);
  socket.on("n", () => {
    if (got.length === at) setTimeout(() => cut(socket), 0);
  });
  return gone;
}

/** The disconnect reasons that keep a session for recovery. */
const RECOVERABLE = ["transport close", "transport error", "ping timeout"];

/** A clean close of the Engine.IO connection by the client ("transport close" on the server). */
const closeEngine = (socket) => socket.io.engine.close();
/** The TCP connection under the websocket dies without a close frame (a network failure). */
const resetTcp = (socket) => socket.io.engine.transport.ws._socket.destroy();

for (const [mode, transport] of Object.entries(TRANSPORTS)) {
  describe(`recovery with socket.io-client over ${mode}`, { timeout: 90_000 }, () => {
    let server;
    let clients;
    const t = (name, fn) => test(name, { timeout: TEST_TIMEOUT * 2 }, fn);

    before(async () => {
      server = await startServer();
    });
    after(async () => {
      await server?.stop();
    });
    afterEach(() => {
      clients?.close();
      clients = undefined;
    });
    const fresh = () => {
      clients = new Clients(server.url, transport);
      return clients;
    };

    // How the transport is cut while the first burst is under way: `start(socket, got, id)` returns
    // the extra fields of that burst, a promise of the client's `disconnect` (its reason), and the
    // reasons the client may give when it did not cut itself.
    const clientCut = (cut) => (socket, got) => ({ spec: {}, gone: cutAt(socket, got, 100, cut) });
    const cuts = [["the client closes its connection", clientCut(closeEngine)]];
    if (mode !== "polling") cuts.push(["the TCP connection is reset", clientCut(resetTcp)]);
    // The server shuts down every TCP connection of the session, without a close packet or frame.
    const serverCut = (socket, got, id) => ({
      spec: { cut: id, cutAfter: 100 },
      gone: next(socket, "disconnect", STEP_TIMEOUT * 2),
      // (Or its heartbeat, should the cut leave a poll of it hanging.)
      reasons: RECOVERABLE,
    });
    cuts.push(["the server drops the transport", serverCut]);

    for (const [how, start] of cuts) {
      t(`${how} mid-burst: same id, rooms and data, every broadcast once and in order`, async () => {
        const c = fresh();
        const { socket, got } = await recording(c, mode);
        const id = socket.id;
        assert.equal(socket.recovered, false);
        assert.equal(await socket.emitWithAck("set-data", { name: "ann" }), true);
        const observer = await connect(c.socket("/", { auth: { observer: true } }));

        // 1000 broadcasts to `r`; the transport is cut after the 100th arrived (client side) or went
        // out (server side).
        const { spec, gone, reasons } = start(socket, got, id);
        assert.equal(await observer.emitWithAck("burst", { room: "r", from: 0, count: 1000, ...spec }), true);
        const [clientReason] = await gone;
        if (reasons) assert.ok(reasons.includes(clientReason), `the client saw ${clientReason}`);
        // 1000 more while the client is away (it comes back after RECONNECTION_DELAY).
        assert.equal(await observer.emitWithAck("burst", { room: "r", from: 1000, count: 1000 }), true);
        assert.equal(socket.connected, false, "the broadcasts were sent during the gap");

        await next(socket, "connect", RECONNECTION_DELAY + STEP_TIMEOUT);
        assert.equal(socket.recovered, true);
        assert.equal(socket.id, id);
        const me = await socket.emitWithAck("whoami");
        assert.deepEqual(me, { id, recovered: true, rooms: [id, "r"].sort(), data: { name: "ann" } });
        const serverReason = await observer.emitWithAck("last-disconnect", id);
        assert.ok(RECOVERABLE.includes(serverReason), `the server saw ${serverReason}`);

        // Live traffic after the replay.
        assert.equal(await observer.emitWithAck("burst", { room: "r", from: 2000, count: 10 }), true);
        await received(got, 2010, "every broadcast");
        await new Promise((r) => setTimeout(r, 100));
        assert.deepEqual(got, range(0, 2010));
      });
    }

    t("a voluntary disconnect and a forged pid get a new socket", async () => {
      const c = fresh();
      const { socket, got } = await recording(c, mode);
      const observer = await connect(c.socket("/", { auth: { observer: true } }));
      assert.equal(await observer.emitWithAck("burst", { room: "r", from: 0, count: 1 }), true);
      await received(got, 1, "a first broadcast, for an offset");

      // The client leaves, then connects again: same pid and offset sent, no session kept.
      const id = socket.id;
      socket.disconnect();
      socket.connect();
      await next(socket, "connect");
      assert.equal(socket.recovered, false);
      assert.notEqual(socket.id, id);

      // A made-up pid.
      await observer.emitWithAck("burst", { room: "r", from: 1, count: 1 });
      await received(got, 2, "a broadcast to the new socket");
      const id2 = socket.id;
      socket._pid = "forged-pid-000000000";
      const gone = next(socket, "disconnect");
      closeEngine(socket);
      await gone;
      await next(socket, "connect", RECONNECTION_DELAY + STEP_TIMEOUT);
      assert.equal(socket.recovered, false);
      assert.notEqual(socket.id, id2);
    });
  });
}

describe("recovery limits (websocket)", { timeout: 60_000 }, () => {
  const transport = TRANSPORTS.websocket;
  const cases = [
    ["an expired session", ["--max-disconnection-duration", "300"], 10],
    ["an offset that fell off the log", ["--max-stored-packets", "50"], 100],
  ];
  for (const [what, args, gap] of cases) {
    test(`${what} gets a new socket and no replay`, { timeout: TEST_TIMEOUT * 2 }, async () => {
      const server = await startServer(args);
      const c = new Clients(server.url, transport);
      try {
        const { socket, got } = await recording(c, "websocket");
        const observer = await connect(c.socket("/", { auth: { observer: true } }));
        await observer.emitWithAck("burst", { room: "r", from: 0, count: 1 });
        await received(got, 1, "a first broadcast, for an offset");
        const id = socket.id;
        const gone = next(socket, "disconnect");
        closeEngine(socket);
        await gone;
        await observer.emitWithAck("burst", { room: "r", from: 1, count: gap });
        await next(socket, "connect", RECONNECTION_DELAY + STEP_TIMEOUT);
        assert.equal(socket.recovered, false);
        assert.notEqual(socket.id, id);
        await new Promise((r) => setTimeout(r, 200));
        assert.deepEqual(got, [0], "nothing replayed to a new socket");
      } finally {
        c.close();
        await server.stop();
      }
    });
  }
});
