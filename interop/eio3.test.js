// Interop tests: ferrio's Socket.IO server with `allow_eio3` (crates/ferrio/examples/socket_interop.rs
// --allow-eio3) against the official socket.io-client 2.x from npm (Engine.IO v3, Socket.IO protocol v4),
// pinned as the alias `socket.io-client-v2`, beside socket.io-client 4.8 on the same server.
//
// Every scenario runs over polling only, WebSocket only, and the default (polling, then the upgrade).
// The server binary is $FERRIO_SOCKET_INTEROP_BIN or ../target/debug/examples/socket_interop (build it
// with `cargo build -p ferrio --examples`). Each transport setting gets its own server process, killed in
// an `after` hook; every wait is bounded and every client is closed after its test.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { io as io4 } from "socket.io-client";
import {
  STEP_TIMEOUT,
  TEST_TIMEOUT,
  TRANSPORTS,
  connect,
  eventually,
  next,
  normalize,
  startServer,
  unique,
  within,
} from "./lib/socketio.js";

const require = createRequire(import.meta.url);
const io2 = require("socket.io-client-v2");

/** The version the alias resolves to: the tests are about 2.x, so make sure it is one. */
const V2_VERSION = require("socket.io-client-v2/package.json").version;

/** Resolves once a 2.x socket is connected; rejects with its `error` (a namespace refusal). */
function connected2(socket, ms = STEP_TIMEOUT) {
  return within(
    new Promise((res, rej) => {
      if (socket.connected) return res(socket);
      socket.once("connect", () => res(socket));
      socket.once("error", rej);
      socket.once("connect_error", rej);
    }),
    ms,
    `2.x connection to ${socket.nsp}`,
  );
}

/** What the server acks to `event` (2.x has no emitWithAck). */
function ack2(socket, event, ...args) {
  return within(
    new Promise((res) => socket.emit(event, ...args, (...answer) => res(answer))),
    STEP_TIMEOUT,
    `the ack of "${event}"`,
  );
}

/** Waits until a 2.x socket's connection runs on `name` (after an upgrade). */
function onTransport(socket, name) {
  return eventually(
    () => (socket.io.engine?.transport?.name === name ? true : undefined),
    STEP_TIMEOUT,
    `transport ${name}`,
  );
}

const BYTES = Buffer.from([0, 1, 2, 254, 255]);

for (const [mode, transport] of Object.entries(TRANSPORTS)) {
  describe(`socket.io-client ${V2_VERSION} over ${mode}`, { timeout: 60_000 }, () => {
    let server;
    let sockets = [];
    const t = (name, fn) => test(name, { timeout: TEST_TIMEOUT }, fn);

    before(async () => {
      assert.match(V2_VERSION, /^2\./);
      // A 2 s ping timeout, not the example's 200 ms: these tests check what is delivered, and a stall of
      // this process while the other test files run beside it must not cost a v2 client its session.
      server = await startServer(["--allow-eio3", "--ping-timeout", "2000"]);
    });
    after(async () => {
      await server?.stop();
    });
    afterEach(() => {
      for (const s of sockets) s.close();
      sockets = [];
    });

    /** A 2.x socket on its own connection. */
    const v2 = (nsp = "/", extra = {}) => {
      const s = io2(server.url + nsp, { forceNew: true, reconnection: false, ...transport, ...extra });
      sockets.push(s);
      return s;
    };
    /** A 4.8 socket on its own connection. */
    const v4 = (nsp = "/") => {
      const s = io4(server.url + nsp, { forceNew: true, reconnection: false, ...transport });
      sockets.push(s);
      return s;
    };

    t("joins / implicitly, with the id derived from the Engine.IO id", async () => {
      const s = await connected2(v2());
      assert.equal(s.id, s.io.engine.id);
      if (mode === "upgrade") await onTransport(s, "websocket");
      const [who] = await ack2(s, "whoami");
      assert.equal(who.id, s.id);
      assert.equal(who.connId, s.io.engine.id);
      assert.equal(who.nsp, "/");
      assert.equal(who.transport, mode === "polling" ? "polling" : "websocket");
    });

    t("events and acks, text and binary, both ways", async () => {
      const s = await connected2(v2());
      const answer = await ack2(s, "echo", "text", 42, { nested: [BYTES, null] }, BYTES);
      assert.deepEqual(normalize(answer), normalize(["text", 42, { nested: [BYTES, null] }, BYTES]));
      const back = next(s, "echo-back");
      s.emit("emit-back", { a: 1 }, BYTES);
      assert.deepEqual(normalize(await back), normalize([{ a: 1 }, BYTES]));
      // The server's own blobs: as an event and as an ack.
      const event = next(s, "binary");
      const acked = await ack2(s, "binary-please");
      const all = Buffer.from([...Array(256).keys()]);
      const obj = { single: Buffer.from([0, 1, 2, 255]), list: [all, { deep: Buffer.alloc(0) }, "text"], n: 1.5 };
      const fortyTwo = Buffer.from([42, 42, 42]);
      assert.deepEqual(normalize(await event), normalize([fortyTwo, obj]));
      assert.deepEqual(normalize(acked), normalize([obj, fortyTwo]));
    });

    t("rooms and broadcasts are shared with 4.8 clients, each in its own protocol", async () => {
      const room = unique("room");
      const [a, b, c] = await Promise.all([connected2(v2()), connect(v4()), connected2(v2())]);
      for (const s of [a, c]) assert.deepEqual(await ack2(s, "join", room), [true]);
      assert.equal(await b.timeout(STEP_TIMEOUT).emitWithAck("join", room), true);

      // From a 2.x client to the room: the other 2.x client and the 4.8 client get it.
      const atB = next(b, "hi");
      const atC = next(c, "hi");
      assert.deepEqual(await ack2(a, "to-room", { rooms: [room], event: "hi", args: ["from v2", BYTES] }), [true]);
      assert.deepEqual(normalize(await atB), normalize(["from v2", BYTES]));
      assert.deepEqual(normalize(await atC), normalize(["from v2", BYTES]));

      // From the 4.8 client: both 2.x clients get it.
      const atA = next(a, "hey");
      const atC2 = next(c, "hey");
      const sent = await b.timeout(STEP_TIMEOUT).emitWithAck("to-room", { rooms: [room], event: "hey", args: [{ n: 1 }] });
      assert.equal(sent, true);
      assert.deepEqual(await atA, [{ n: 1 }]);
      assert.deepEqual(await atC2, [{ n: 1 }]);

      // The server sees both generations in the room.
      const [fetched] = await ack2(a, "fetch", { room });
      assert.deepEqual(fetched.map((s) => s.id).sort(), [a.id, b.id, c.id].sort());
    });

    t("namespaces: joined over the same connection, with the query as auth", async () => {
      const main = await connected2(v2());
      const custom = main.io.socket("/custom");
      await connected2(custom);
      assert.equal(custom.id, `/custom#${main.io.engine.id}`);
      const [who] = await ack2(custom, "whoami");
      assert.equal(who.nsp, "/custom");
      assert.equal(who.connId, main.io.engine.id);

      const priv = main.io.socket("/private", { query: { token: "secret" } });
      await connected2(priv);
      const [hs] = await ack2(priv, "handshake");
      assert.deepEqual(hs.auth, { token: "secret" });

      const dyn = main.io.socket("/dyn-7");
      const hello = next(dyn, "hello");
      await connected2(dyn);
      assert.deepEqual(await hello, ["/dyn-7"]);
    });

    t("namespace errors: a middleware refusal and an unknown namespace", async () => {
      // The refusal carries the middleware's data, as socket.io 4 sends it to 2.x clients.
      const refusedErr = await within(
        new Promise((res) => v2("/private", { query: { token: "wrong" } }).once("error", res)),
        STEP_TIMEOUT,
        "the refusal of /private",
      );
      assert.deepEqual(refusedErr, { code: 42 });
      const unknown = await within(
        new Promise((res) => v2("/does-not-exist").once("error", res)),
        STEP_TIMEOUT,
        "the refusal of an unknown namespace",
      );
      assert.deepEqual(unknown, { message: "Invalid namespace" });
    });

    t("server-side disconnect and a client's own disconnect", async () => {
      const s = await connected2(v2());
      const reason = next(s, "disconnect");
      s.emit("disconnect-me");
      assert.deepEqual(await reason, ["io server disconnect"]);

      const observer = await connected2(v2());
      const gone = await connected2(v2());
      const id = gone.id;
      gone.close();
      const why = await eventually(async () => (await ack2(observer, "last-disconnect-reason", { id }))[0]);
      assert.equal(why, "client namespace disconnect");
    });
  });
}

test("EIO=3 is refused when allow_eio3 is off", { timeout: TEST_TIMEOUT }, async () => {
  const server = await startServer();
  try {
    const res = await fetch(`${server.url}/socket.io/?EIO=3&transport=polling`);
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), { code: 5, message: "Unsupported protocol version" });
    const s = io2(server.url, { forceNew: true, reconnection: false, transports: ["polling"] });
    try {
      await within(new Promise((res) => s.once("connect_error", res)), STEP_TIMEOUT, "connect_error");
    } finally {
      s.close();
    }
  } finally {
    await server.stop();
  }
});
