// The scenarios every mixed cluster passes, whatever carries it (the classic and the sharded Redis
// adapters): two ferrio nodes and one Node socket.io node, a client on each (cF1 and cN in room "r", cF2
// in none). `c` is filled in by the caller's `before` hook.

import { test } from "node:test";
import assert from "node:assert/strict";
import { STEP, arrives, next } from "./cluster.js";

/** Registers the shared tests inside the caller's `describe`; `c` holds node, cF1, cF2 and cN. */
export function mixedClusterTests(c) {
  test("a broadcast from the Node node reaches ferrio clients in the room (binary too)", async () => {
    const got = next(c.cF1, "hello");
    const other = arrives(c.cF2, "hello");
    const own = next(c.cN, "hello");
    c.node.io.to("r").emit("hello", "x", Buffer.from([1, 2, 3]));
    const [s, bin] = await got;
    assert.equal(s, "x");
    assert.deepEqual([...new Uint8Array(bin)], [1, 2, 3]);
    await own;
    assert.equal(await other, false, "cF2 is not in the room");
  });

  test("a broadcast from a ferrio node reaches Node clients in the room, and everyone without one", async () => {
    let f1count = 0;
    const count = () => f1count++;
    c.cF1.on("from-ferrio", count);
    const got = next(c.cN, "from-ferrio");
    const notInRoom = arrives(c.cF2, "from-ferrio");
    const f1got = next(c.cF1, "from-ferrio");
    await c.cF2.timeout(STEP).emitWithAck("broadcast", { room: "r", event: "from-ferrio", args: [{ a: 1 }] });
    assert.deepEqual(await got, [{ a: 1 }]);
    assert.deepEqual(await f1got, [{ a: 1 }]);
    assert.equal(await notInRoom, false);
    c.cF1.off("from-ferrio", count);
    assert.equal(f1count, 1, "cF1 got it once");
    const all = [next(c.cF1, "all"), next(c.cF2, "all"), next(c.cN, "all")];
    await c.cF1.timeout(STEP).emitWithAck("broadcast", { event: "all", args: [7] });
    for (const p of all) assert.deepEqual(await p, [7]);
  });

  test("the Node node reaches one ferrio socket by its id", async () => {
    const got = next(c.cF2, "direct");
    const other = arrives(c.cF1, "direct");
    c.node.io.to(c.cF2.id).emit("direct", 1);
    assert.deepEqual(await got, [1]);
    assert.equal(await other, false);
  });

  test("fetchSockets from either side sees every socket with its rooms and data", async () => {
    const want = [
      { id: c.cF1.id, node: "f1", inR: true },
      { id: c.cF2.id, node: "f2", inR: false },
      { id: c.cN.id, node: "node", inR: true },
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
    check(await c.cF1.timeout(STEP).emitWithAck("fetch"));
    check(await c.cN.timeout(STEP).emitWithAck("fetch"));
    const remote = await c.node.io.in("r").fetchSockets();
    assert.deepEqual(remote.map((s) => s.id).sort(), [c.cF1.id, c.cN.id].sort());
    const f = remote.find((s) => s.id === c.cF1.id);
    assert.equal(typeof f.handshake.address, "string");
    assert.ok(f.handshake.url.startsWith("/socket.io/"));
  });

  test("serverSideEmit with acks from both kinds of node", async () => {
    const fromFerrio = await c.cF2.timeout(STEP).emitWithAck("sse", { timeout: 3000 });
    assert.deepEqual(fromFerrio, { ok: true, responses: ["pong from f1", "pong from node"] });
    const fromNode = await c.node.io.serverSideEmitWithAck("ping", "node");
    assert.deepEqual(fromNode.sort(), ["pong from f1", "pong from f2"]);
    assert.equal(await c.node.io.of("/").adapter.serverCount(), 3);
  });

  test("a broadcast with acks from the Node node collects the acks of ferrio clients", async () => {
    const responses = await c.node.io.timeout(3000).emitWithAck("ask");
    assert.deepEqual(responses.sort(), ["cF1", "cF2", "cN"]);
  });

  test("socketsJoin from the Node node reaches a ferrio socket", async () => {
    await c.node.io.in(c.cF2.id).socketsJoin("joined");
    await new Promise((r) => setTimeout(r, 200));
    const rooms = await c.cF2.timeout(STEP).emitWithAck("rooms");
    assert.ok(rooms.includes("joined"), JSON.stringify(rooms));
  });
}
