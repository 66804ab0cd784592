// Redis Streams interop: one ferrio node (crates/ferrio-redis/examples/redis_node.rs --streams, built
// with `cargo build -p ferrio-redis --examples`; $FERRIO_REDIS_NODE_BIN overrides the binary) and one
// Node socket.io node on @socket.io/redis-streams-adapter share a private redis-server; both have
// connection state recovery on. Official socket.io-client clients on each. A session dropped on either
// node is restored on the other with the broadcasts it missed. Everything is stopped in `after`.

import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-streams-adapter";
import { createClient } from "redis";
import { io as connectClient } from "socket.io-client";
import { NODE_BIN, STEP, client, next, sleep, startRedis, within } from "./redis/cluster.js";

/** A ferrio node on the streams adapter; resolves once it printed its address. */
function startFerrioStreams(redisUrl, name) {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE_BIN, ["--port", "0", "--redis", redisUrl, "--name", name, "--streams"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${name} did not start`)), 20_000);
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`${name} exited with ${code}`)));
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1], name, stop: () => child.kill("SIGKILL") });
      }
    });
  });
}

/** A Node socket.io node on the official streams adapter, with recovery on and redis_node's events. */
async function startNodeStreams(redisUrl, name) {
  const redis = createClient({ url: redisUrl });
  redis.on("error", () => {});
  await redis.connect();
  const http = createServer();
  const io = new Server(http, { adapter: createAdapter(redis), connectionStateRecovery: {} });
  io.on("connection", (socket) => {
    socket.data = { node: name };
    socket.on("join", (room, cb) => {
      socket.join(room);
      cb(true);
    });
    socket.on("broadcast", ({ room, event, args }, cb) => {
      (room ? io.to(room) : io).emit(event, ...args);
      cb(true);
    });
    socket.on("recovered", (cb) => cb(socket.recovered));
  });
  await new Promise((r) => http.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${http.address().port}`,
    io,
    name,
    stop: async () => {
      io.close();
      await Promise.allSettled([redis.quit()]);
    },
  };
}

/** Collects the first argument of every `event` on `socket`. */
function collect(socket, event) {
  const got = [];
  socket.on(event, (n) => got.push(n));
  return got;
}

async function waitFor(what, cond) {
  const deadline = Date.now() + STEP;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(10);
  }
}

describe("ferrio + socket.io on one Redis stream (redis-streams-adapter)", { timeout: 90_000 }, () => {
  let redis, ferrio, node, cF, cN;
  const extra = [];

  before(async () => {
    redis = await startRedis();
    [ferrio, node] = await Promise.all([startFerrioStreams(redis.url, "ferrio"), startNodeStreams(redis.url, "node")]);
    [cF, cN] = await Promise.all([client(ferrio.url, "cF"), client(node.url, "cN")]);
    await cF.timeout(STEP).emitWithAck("join", "r");
    await cN.timeout(STEP).emitWithAck("join", "r");
  });

  after(async () => {
    for (const c of [cF, cN, ...extra]) c?.close();
    ferrio?.stop();
    await node?.stop();
    redis?.stop();
  });

  test("broadcasts cross in both directions, with an offset (binary too)", async () => {
    const got = next(cF, "hello");
    node.io.to("r").emit("hello", "x", Buffer.from([1, 2, 3]));
    const [s, bin, offset] = await got;
    assert.equal(s, "x");
    assert.deepEqual([...new Uint8Array(bin)], [1, 2, 3]);
    assert.match(offset, /^\d+-\d+$/, "the stream entry id rides as the last argument");
    const back = next(cN, "from-ferrio");
    await cF.timeout(STEP).emitWithAck("broadcast", { room: "r", event: "from-ferrio", args: [{ a: 1 }] });
    const [v, o] = await back;
    assert.deepEqual(v, { a: 1 });
    assert.match(o, /^\d+-\d+$/);
  });

  for (const [from, to] of [
    ["node", "ferrio"],
    ["ferrio", "node"],
  ]) {
    test(`a session dropped on ${from} recovers on ${to} with the missed broadcasts`, async () => {
      const servers = { node, ferrio };
      const a = connectClient(servers[from].url, { transports: ["websocket"], forceNew: true, reconnection: false });
      extra.push(a);
      await within(new Promise((r) => a.once("connect", r)), STEP, "connects");
      await a.timeout(STEP).emitWithAck("join", "moved");
      const first = next(a, "tick");
      await cN.timeout(STEP).emitWithAck("broadcast", { room: "moved", event: "tick", args: [0] });
      await first;
      const { id } = a;
      const pid = a._pid;
      const offset = a._lastOffset;
      assert.ok(pid, "the server gave a pid");
      assert.match(offset, /^\d+-\d+$/);

      // The transport closes (recoverable); the session is stored in Redis by the first node.
      const gone = new Promise((r) => a.once("disconnect", r));
      a.io.engine.close();
      await within(gone, STEP, "disconnect");
      await sleep(300);
      for (let n = 1; n <= 10; n++) {
        const via = n % 2 ? cF : cN;
        await via.timeout(STEP).emitWithAck("broadcast", { room: "moved", event: "tick", args: [n] });
      }

      // The same client state presented to the other node.
      const b = connectClient(servers[to].url, {
        transports: ["websocket"],
        forceNew: true,
        reconnection: false,
        autoConnect: false,
      });
      extra.push(b);
      b._pid = pid;
      b._lastOffset = offset;
      const got = collect(b, "tick");
      b.connect();
      await within(new Promise((r) => b.once("connect", r)), STEP, "reconnects");
      assert.equal(b.id, id, "same socket id");
      assert.equal(b.recovered, true);
      assert.equal(await b.timeout(STEP).emitWithAck("recovered"), true, "the server says so too");
      await waitFor("the missed broadcasts", () => got.length >= 10);
      await cF.timeout(STEP).emitWithAck("broadcast", { room: "moved", event: "tick", args: [11] });
      await waitFor("the live broadcast", () => got.length >= 11);
      await sleep(200);
      const sorted = [...got].sort((x, y) => x - y);
      assert.deepEqual(sorted, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], `once each: ${got}`);
      assert.equal(got[10], 11, `missed before live: ${got}`);
    });
  }

  test("an unknown pid is not recovered", async () => {
    const c = connectClient(ferrio.url, { transports: ["websocket"], forceNew: true, reconnection: false, autoConnect: false });
    extra.push(c);
    c._pid = "forged";
    c._lastOffset = "1-0";
    c.connect();
    await within(new Promise((r) => c.once("connect", r)), STEP, "connects");
    assert.equal(c.recovered, false);
  });
});
