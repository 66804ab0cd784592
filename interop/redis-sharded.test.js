// Sharded interop: two ferrio nodes (crates/ferrio-redis/examples/redis_node.rs --sharded, built with
// `cargo build -p ferrio-redis --examples`; $FERRIO_REDIS_NODE_BIN overrides the binary) and one Node
// socket.io node on createShardedAdapter share a private 3-node Redis Cluster (SSUBSCRIBE / SPUBLISH);
// official socket.io-client clients on each. Everything is killed in the `after` hook.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { STEP, arrives, client, next } from "./redis/cluster.js";
import {
  startFerrioSharded,
  startNodeShardedServer,
  startRedisCluster,
  waitShardSubscribers,
} from "./redis/sharded.js";

describe("ferrio + socket.io on one Redis Cluster (sharded adapter)", { timeout: 90_000 }, () => {
  let cluster, f1, f2, node, cF1, cF2, cN;

  before(async () => {
    cluster = await startRedisCluster();
    [f1, f2, node] = await Promise.all([
      startFerrioSharded(cluster.urls, "f1"),
      startFerrioSharded(cluster.urls, "f2"),
      startNodeShardedServer(cluster.urls, "node"),
    ]);
    await waitShardSubscribers(cluster.urls, "socket.io#/#", 3);
    [cF1, cF2, cN] = await Promise.all([
      client(f1.url, "cF1"),
      client(f2.url, "cF2"),
      client(node.url, "cN"),
    ]);
    await cF1.timeout(STEP).emitWithAck("join", "r");
    await cN.timeout(STEP).emitWithAck("join", "r");
    // `dynamic` (the default): both servers with a socket in r listen to socket.io#/#r#.
    await waitShardSubscribers(cluster.urls, "socket.io#/#r#", 2);
  });

  after(async () => {
    for (const c of [cF1, cF2, cN]) c?.close();
    f1?.stop();
    f2?.stop();
    await node?.stop();
    cluster?.stop();
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

  test("the Node node reaches one ferrio socket by its id", async () => {
    const got = next(cF2, "direct");
    const other = arrives(cF1, "direct");
    node.io.to(cF2.id).emit("direct", 1);
    assert.deepEqual(await got, [1]);
    assert.equal(await other, false);
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
    const closed = next(cF2, "disconnect");
    await node.io.in("joined").disconnectSockets();
    assert.equal((await closed)[0], "io server disconnect");
  });
});
