// Cluster interop: two ferrio nodes (crates/ferrio-redis/examples/redis_node.rs, built with
// `cargo build -p ferrio-redis --examples`; $FERRIO_REDIS_NODE_BIN overrides the binary) and one Node
// socket.io node on @socket.io/redis-adapter share a private redis-server; official socket.io-client
// clients on each. Everything is killed in the `after` hook.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Emitter } from "@socket.io/redis-emitter";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import pathMod from "node:path";

const EMIT_BIN =
  process.env.FERRIO_REDIS_EMIT_BIN ??
  pathMod.join(pathMod.dirname(fileURLToPath(import.meta.url)), "..", "target", "debug", "examples", "redis_emit");

/** Runs the Rust emitter example once against the test's Redis. */
function runEmitter(redisUrl, args) {
  return new Promise((resolve, reject) => {
    execFile(EMIT_BIN, ["--redis", redisUrl, ...args], { timeout: 10000 }, (err, _out, stderr) =>
      err ? reject(new Error(`redis_emit failed: ${err.message} ${stderr}`)) : resolve(),
    );
  });
}
import { createClient } from "redis";
import {
  STEP,
  arrives,
  client,
  next,
  startFerrio,
  startNodeServer,
  startRedis,
  waitServers,
} from "./redis/cluster.js";

describe("ferrio + socket.io on one Redis", { timeout: 60_000 }, () => {
  let redis, f1, f2, node, cF1, cF2, cN, emitterClient;

  before(async () => {
    redis = await startRedis();
    [f1, f2, node] = await Promise.all([
      startFerrio(redis.url, "f1"),
      startFerrio(redis.url, "f2"),
      startNodeServer(redis.url, "node"),
    ]);
    await waitServers(redis.url, 3);
    [cF1, cF2, cN] = await Promise.all([
      client(f1.url, "cF1"),
      client(f2.url, "cF2"),
      client(node.url, "cN"),
    ]);
    await cF1.timeout(STEP).emitWithAck("join", "r");
    await cN.timeout(STEP).emitWithAck("join", "r");
  });

  after(async () => {
    for (const c of [cF1, cF2, cN]) c?.close();
    await emitterClient?.quit().catch(() => {});
    f1?.stop();
    f2?.stop();
    await node?.stop();
    redis?.stop();
  });

  test("a broadcast from the Node node reaches ferrio clients in the room (binary too)", async () => {
    const got = next(cF1, "hello");
    const other = arrives(cF2, "hello");
    const own = next(cN, "hello");
    node.io.to("r").emit("hello", "x", Buffer.from([1, 2, 3]));
    const [s, bin] = await got;
    assert.equal(s, "x");
    assert.deepEqual([...new Uint8Array(bin)], [1, 2, 3]);
    await own;
    assert.equal(await other, false, "cF2 is not in the room");
  });

  test("a broadcast from a ferrio node reaches Node clients in the room, and everyone without one", async () => {
    let f1count = 0;
    const count = () => f1count++;
    cF1.on("from-ferrio", count);
    const got = next(cN, "from-ferrio");
    const notInRoom = arrives(cF2, "from-ferrio");
    // cF2 (not in r) asks its node (f2) to emit to r: cF1 (f1) and cN (node) get it.
    const f1got = next(cF1, "from-ferrio");
    await cF2.timeout(STEP).emitWithAck("broadcast", { room: "r", event: "from-ferrio", args: [{ a: 1 }] });
    assert.deepEqual(await got, [{ a: 1 }]);
    assert.deepEqual(await f1got, [{ a: 1 }]);
    assert.equal(await notInRoom, false);
    cF1.off("from-ferrio", count);
    assert.equal(f1count, 1, "cF1 got it once");
    const all = [next(cF1, "all"), next(cF2, "all"), next(cN, "all")];
    await cF1.timeout(STEP).emitWithAck("broadcast", { event: "all", args: [7] });
    for (const p of all) assert.deepEqual(await p, [7]);
  });

  test("fetchSockets from either side sees every socket with its rooms and data", async () => {
    const want = [
      { id: cF1.id, node: "f1", inR: true },
      { id: cF2.id, node: "f2", inR: false },
      { id: cN.id, node: "node", inR: true },
    ].sort((a, b) => (a.id < b.id ? -1 : 1));
    const check = (list) => {
      assert.equal(list.length, 3, JSON.stringify(list));
      list.forEach((s, i) => {
        assert.equal(s.id, want[i].id);
        assert.deepEqual(s.data, { node: want[i].node });
        assert.equal(s.rooms.includes("r"), want[i].inR);
        assert.ok(s.rooms.includes(s.id));
      });
    };
    check(await cF1.timeout(STEP).emitWithAck("fetch"));
    check(await cN.timeout(STEP).emitWithAck("fetch"));
    const remote = await node.io.in("r").fetchSockets();
    assert.deepEqual(remote.map((s) => s.id).sort(), [cF1.id, cN.id].sort());
    const f = remote.find((s) => s.id === cF1.id);
    assert.equal(typeof f.handshake.address, "string");
    assert.ok(f.handshake.url.startsWith("/socket.io/"));
  });

  test("serverSideEmit with acks from both kinds of node", async () => {
    const fromFerrio = await cF2.timeout(STEP).emitWithAck("sse", { timeout: 3000 });
    assert.deepEqual(fromFerrio, { ok: true, responses: ["pong from f1", "pong from node"] });
    const fromNode = await node.io.serverSideEmitWithAck("ping", "node");
    assert.deepEqual(fromNode.sort(), ["pong from f1", "pong from f2"]);
    assert.equal(await node.io.of("/").adapter.serverCount(), 3);
  });

  test("a broadcast with acks from the Node node collects the acks of ferrio clients", async () => {
    const responses = await node.io.timeout(3000).emitWithAck("ask");
    assert.deepEqual(responses.sort(), ["cF1", "cF2", "cN"]);
  });

  test("socketsJoin and disconnectSockets from the Node node reach ferrio sockets", async () => {
    await node.io.in(cF2.id).socketsJoin("joined");
    await new Promise((r) => setTimeout(r, 200));
    const rooms = await cF2.timeout(STEP).emitWithAck("rooms");
    assert.ok(rooms.includes("joined"), JSON.stringify(rooms));
    const all = (await node.io.of("/").adapter.allRooms());
    assert.ok(all.has("joined") && all.has("r"));
  });

  test("@socket.io/redis-emitter reaches clients of both kinds of node", async () => {
    emitterClient = createClient({ url: redis.url });
    emitterClient.on("error", () => {});
    await emitterClient.connect();
    const emitter = new Emitter(emitterClient);
    const all = [next(cF1, "em"), next(cF2, "em"), next(cN, "em")];
    emitter.emit("em", 1, "two", Buffer.from([9]));
    for (const p of all) {
      const [a, b, c] = await p;
      assert.equal(a, 1);
      assert.equal(b, "two");
      assert.deepEqual([...new Uint8Array(c)], [9]);
    }
    const inRoom = [next(cF1, "em-r"), next(cN, "em-r")];
    const out = arrives(cF2, "em-r");
    emitter.to("r").emit("em-r");
    await Promise.all(inRoom);
    assert.equal(await out, false);
  });

  test("ferrio's Rust emitter reaches clients of both kinds of node", async () => {
    const all = [next(cF1, "rust-em"), next(cF2, "rust-em"), next(cN, "rust-em")];
    await runEmitter(redis.url, ["--event", "rust-em", "--args", '[1,"two",{"three":3}]']);
    for (const p of all) {
      const [a, b, c] = await p;
      assert.equal(a, 1);
      assert.equal(b, "two");
      assert.deepEqual(c, { three: 3 });
    }
    const inRoom = [next(cF1, "rust-em-r"), next(cN, "rust-em-r")];
    const out = arrives(cF2, "rust-em-r");
    await runEmitter(redis.url, ["--event", "rust-em-r", "--room", "r"]);
    await Promise.all(inRoom);
    assert.equal(await out, false);
  });
});
