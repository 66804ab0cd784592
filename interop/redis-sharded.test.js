// Sharded interop: two ferrio nodes (crates/ferrio-redis/examples/redis_node.rs --sharded, built with
// `cargo build -p ferrio-redis --examples`; $FERRIO_REDIS_NODE_BIN overrides the binary) and one Node
// socket.io node on createShardedAdapter share a private 3-node Redis Cluster (SSUBSCRIBE / SPUBLISH);
// official socket.io-client clients on each. Everything is killed in the `after` hook.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { STEP, client, next } from "./redis/cluster.js";
import { mixedClusterTests } from "./redis/mixed.js";
import {
  startFerrioSharded,
  startNodeShardedServer,
  startRedisCluster,
  waitShardSubscribers,
} from "./redis/sharded.js";

describe("ferrio + socket.io on one Redis Cluster (sharded adapter)", { timeout: 90_000 }, () => {
  let cluster, f1, f2;
  const c = {};

  before(async () => {
    cluster = await startRedisCluster();
    [f1, f2, c.node] = await Promise.all([
      startFerrioSharded(cluster.urls, "f1"),
      startFerrioSharded(cluster.urls, "f2"),
      startNodeShardedServer(cluster.urls, "node"),
    ]);
    await waitShardSubscribers(cluster.urls, "socket.io#/#", 3);
    [c.cF1, c.cF2, c.cN] = await Promise.all([
      client(f1.url, "cF1"),
      client(f2.url, "cF2"),
      client(c.node.url, "cN"),
    ]);
    await c.cF1.timeout(STEP).emitWithAck("join", "r");
    await c.cN.timeout(STEP).emitWithAck("join", "r");
    // `dynamic` (the default): both servers with a socket in r listen to socket.io#/#r#.
    await waitShardSubscribers(cluster.urls, "socket.io#/#r#", 2);
  });

  after(async () => {
    for (const s of [c.cF1, c.cF2, c.cN]) s?.close();
    f1?.stop();
    f2?.stop();
    await c.node?.stop();
    cluster?.stop();
  });

  mixedClusterTests(c);

  test("disconnectSockets from the Node node reaches a ferrio socket", async () => {
    const closed = next(c.cF2, "disconnect");
    await c.node.io.in("joined").disconnectSockets();
    assert.equal((await closed)[0], "io server disconnect");
  });
});
