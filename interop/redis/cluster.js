// Helpers of interop/redis*.test.js: a private redis-server, ferrio nodes (the redis_node example) and
// an in-process Node socket.io node on @socket.io/redis-adapter.

import { spawn } from "node:child_process";
import { createServer } from "node:http";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";
import { io as connectClient } from "socket.io-client";

const here = path.dirname(fileURLToPath(import.meta.url));
export const NODE_BIN =
  process.env.FERRIO_REDIS_NODE_BIN ??
  path.join(here, "..", "..", "target", "debug", "examples", "redis_node");

export const STEP = 5000;

export function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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

/** A redis-server on a free port (never 6379); `stop()` kills it. */
export async function startRedis() {
  let port;
  do port = await freePort();
  while (port === 6379);
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
    { stdio: "ignore" },
  );
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) throw new Error("redis-server did not start");
    await sleep(20);
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop: () => {
      child.kill("SIGKILL");
    },
  };
}

/** A ferrio node process; resolves once it printed its address. */
export function startFerrio(redisUrl, name) {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE_BIN, ["--port", "0", "--redis", redisUrl, "--name", name], {
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

/** A Node socket.io node on the official Redis adapter, with the same events as redis_node. */
export async function startNodeServer(redisUrl, name) {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  pub.on("error", () => {});
  sub.on("error", () => {});
  await Promise.all([pub.connect(), sub.connect()]);
  const http = createServer();
  const io = new Server(http, { adapter: createAdapter(pub, sub) });
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
  const url = `http://127.0.0.1:${http.address().port}`;
  return {
    url,
    io,
    name,
    stop: async () => {
      io.close();
      await Promise.allSettled([pub.quit(), sub.quit()]);
    },
  };
}

/** A websocket client; answers `ask` acks with its name. */
export async function client(url, name) {
  const socket = connectClient(url, { transports: ["websocket"], forceNew: true, reconnection: false });
  socket.on("ask", (cb) => cb(name));
  await within(new Promise((r) => socket.once("connect", r)), STEP, `${name} connects`);
  return socket;
}

/** The next `event` on `socket` (its arguments). */
export function next(socket, event, ms = STEP) {
  return within(new Promise((r) => socket.once(event, (...args) => r(args))), ms, `event ${event}`);
}

/** Resolves to true if `event` arrives within `ms`, false otherwise. */
export function arrives(socket, event, ms = 400) {
  return new Promise((resolve) => {
    const h = () => {
      clearTimeout(t);
      resolve(true);
    };
    const t = setTimeout(() => {
      socket.off(event, h);
      resolve(false);
    }, ms);
    socket.once(event, h);
  });
}

/** Waits until `PUBSUB NUMSUB socket.io-request#/#` reaches `n`. */
export async function waitServers(redisUrl, n) {
  const c = createClient({ url: redisUrl });
  c.on("error", () => {});
  await c.connect();
  try {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const res = await c.sendCommand(["PUBSUB", "NUMSUB", "socket.io-request#/#"]);
      if (Number(res[1]) >= n) return;
      if (Date.now() > deadline) throw new Error(`only ${res[1]} servers`);
      await sleep(50);
    }
  } finally {
    await c.quit();
  }
}
