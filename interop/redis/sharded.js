// Helpers of interop/redis-sharded.test.js: a private 3-node Redis Cluster, ferrio nodes on the sharded
// adapter (the redis_node example with --sharded) and an in-process Node socket.io node on
// createShardedAdapter (redis@4 createCluster clients).

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Server } from "socket.io";
import { createShardedAdapter } from "@socket.io/redis-adapter";
import { createClient, createCluster } from "redis";
import { NODE_BIN, sleep } from "./cluster.js";

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

async function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/** A free port whose cluster bus port (+10000) is free too. */
async function freeClusterPort(taken) {
  for (;;) {
    const p = await freePort();
    if (p === 6379 || p > 55_000 || taken.includes(p)) continue;
    if (await portFree(p + 10_000)) return p;
  }
}

async function waitPort(port) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not start`);
    await sleep(20);
  }
}

/**
 * Three `redis-server --cluster-enabled yes` on free ports in a temporary directory, joined with
 * `redis-cli --cluster create`; `stop()` kills them and removes the directory.
 */
export async function startRedisCluster() {
  const cli = spawnSync("redis-cli", ["--version"]);
  if (cli.error || cli.status !== 0) throw new Error("redis-cli is not installed: cannot create a Redis Cluster");
  const dir = mkdtempSync(path.join(os.tmpdir(), "ferrio-sharded-"));
  const ports = [];
  const children = [];
  const stop = () => {
    for (const c of children) c.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < 3; i++) {
      const port = await freeClusterPort(ports);
      ports.push(port);
      children.push(
        spawn(
          "redis-server",
          [
            "--cluster-enabled", "yes",
            "--port", String(port),
            "--cluster-config-file", `nodes-${port}.conf`,
            "--save", "",
            "--appendonly", "no",
            "--bind", "127.0.0.1",
          ],
          { cwd: dir, stdio: "ignore" },
        ),
      );
    }
    await Promise.all(ports.map(waitPort));
    const created = spawnSync(
      "redis-cli",
      ["--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`), "--cluster-replicas", "0", "--cluster-yes"],
      { encoding: "utf8" },
    );
    if (created.status !== 0) throw new Error(`redis-cli --cluster create: ${created.stdout}${created.stderr}`);
    const deadline = Date.now() + 20_000;
    for (const p of ports) {
      for (;;) {
        const info = spawnSync("redis-cli", ["-p", String(p), "cluster", "info"], { encoding: "utf8" });
        if ((info.stdout ?? "").includes("cluster_state:ok")) break;
        if (Date.now() > deadline) throw new Error(`cluster not ok on ${p}`);
        await sleep(50);
      }
    }
  } catch (e) {
    stop();
    throw e;
  }
  return { ports, urls: ports.map((p) => `redis://127.0.0.1:${p}`), stop };
}

/** A ferrio node process on the sharded adapter; resolves once it printed its address. */
export function startFerrioSharded(urls, name) {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE_BIN, ["--port", "0", "--redis", urls.join(","), "--name", name, "--sharded"], {
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

/** A Node socket.io node on createShardedAdapter, with the same events as redis_node. */
export async function startNodeShardedServer(urls, name, opts = {}) {
  const pub = createCluster({ rootNodes: urls.map((url) => ({ url })) });
  const sub = pub.duplicate();
  pub.on("error", () => {});
  sub.on("error", () => {});
  await Promise.all([pub.connect(), sub.connect()]);
  const http = createServer();
  const io = new Server(http, { adapter: createShardedAdapter(pub, sub, opts) });
  io.on("ping", (from, cb) => cb(`pong from ${name}`));
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
    socket.on("fetch", async (cb) => {
      const sockets = await io.fetchSockets();
      cb(
        sockets
          .map((s) => ({ id: s.id, rooms: [...s.rooms].sort(), data: s.data }))
          .sort((a, b) => (a.id < b.id ? -1 : 1)),
      );
    });
  });
  await new Promise((r) => http.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${http.address().port}`,
    io,
    name,
    stop: async () => {
      io.close();
      await Promise.allSettled([pub.quit(), sub.quit()]);
    },
  };
}

/** Subscribers of a sharded channel, summed over the cluster's nodes. */
export async function shardNumSub(urls, channel) {
  let total = 0;
  for (const url of urls) {
    const c = createClient({ url });
    c.on("error", () => {});
    await c.connect();
    try {
      const res = await c.sendCommand(["PUBSUB", "SHARDNUMSUB", channel]);
      total += Number(res[1]);
    } finally {
      await c.quit();
    }
  }
  return total;
}

/** Waits until `channel` has `n` subscribers (`socket.io#/#` counts the servers). */
export async function waitShardSubscribers(urls, channel, n) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const k = await shardNumSub(urls, channel);
    if (k >= n) return;
    if (Date.now() > deadline) throw new Error(`only ${k} subscribers on ${channel}`);
    await sleep(50);
  }
}
