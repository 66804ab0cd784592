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
import { mixedClusterTests } from "./redis/mixed.js";
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
  let redis, f1, f2, emitterClient;
  const c = {};

  before(async () => {
    redis = await startRedis();
    [f1, f2, c.node] = await Promise.all([
      startFerrio(redis.url, "f1"),
      startFerrio(redis.url, "f2"),
      startNodeServer(redis.url, "node"),
    ]);
    await waitServers(redis.url, 3);
    [c.cF1, c.cF2, c.cN] = await Promise.all([
      client(f1.url, "cF1"),
      client(f2.url, "cF2"),
      client(c.node.url, "cN"),
    ]);
    await c.cF1.timeout(STEP).emitWithAck("join", "r");
    await c.cN.timeout(STEP).emitWithAck("join", "r");
  });

  after(async () => {
    for (const s of [c.cF1, c.cF2, c.cN]) s?.close();
    await emitterClient?.quit().catch(() => {});
    f1?.stop();
    f2?.stop();
    await c.node?.stop();
    redis?.stop();
  });

  mixedClusterTests(c);

  test("allRooms from the Node node lists the rooms of ferrio sockets", async () => {
    const all = await c.node.io.of("/").adapter.allRooms();
    assert.ok(all.has("joined") && all.has("r"));
  });

  test("@socket.io/redis-emitter reaches clients of both kinds of node", async () => {
    emitterClient = createClient({ url: redis.url });
    emitterClient.on("error", () => {});
    await emitterClient.connect();
    const emitter = new Emitter(emitterClient);
    const all = [next(c.cF1, "em"), next(c.cF2, "em"), next(c.cN, "em")];
    emitter.emit("em", 1, "two", Buffer.from([9]));
    for (const p of all) {
      const [a, b, c] = await p;
      assert.equal(a, 1);
      assert.equal(b, "two");
      assert.deepEqual([...new Uint8Array(c)], [9]);
    }
    const inRoom = [next(c.cF1, "em-r"), next(c.cN, "em-r")];
    const out = arrives(c.cF2, "em-r");
    emitter.to("r").emit("em-r");
    await Promise.all(inRoom);
    assert.equal(await out, false);
  });

  test("ferrio's Rust emitter reaches clients of both kinds of node", async () => {
    const all = [next(c.cF1, "rust-em"), next(c.cF2, "rust-em"), next(c.cN, "rust-em")];
    await runEmitter(redis.url, ["--event", "rust-em", "--args", '[1,"two",{"three":3}]']);
    for (const p of all) {
      const [a, b, c] = await p;
      assert.equal(a, 1);
      assert.equal(b, "two");
      assert.deepEqual(c, { three: 3 });
    }
    const inRoom = [next(c.cF1, "rust-em-r"), next(c.cN, "rust-em-r")];
    const out = arrives(c.cF2, "rust-em-r");
    await runEmitter(redis.url, ["--event", "rust-em-r", "--room", "r"]);
    await Promise.all(inRoom);
    assert.equal(await out, false);
  });
});
