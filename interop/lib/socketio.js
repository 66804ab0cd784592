// Helpers of the Socket.IO interop tests (socket*.test.js): the example server process, bounded waits,
// clients that are always cleaned up, and byte-exact comparison of values carrying binary.

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { io, Manager } from "socket.io-client";

const HERE = dirname(fileURLToPath(import.meta.url));
export const BIN =
  process.env.FERRIO_SOCKET_INTEROP_BIN ?? resolve(HERE, "../../target/debug/examples/socket_interop");

export const STEP_TIMEOUT = 3_000; // any single wait for the server
export const TEST_TIMEOUT = 10_000; // any test

/** The three transport settings every scenario runs with. */
export const TRANSPORTS = {
  polling: { transports: ["polling"] },
  websocket: { transports: ["websocket"] },
  upgrade: {}, // the default: polling first, then the upgrade to WebSocket
};

// ---------------------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------------------

const children = new Set();
// Last resort if the runner exits without running the `after` hooks.
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/**
 * Spawns the example server and resolves once it printed its listening line.
 * Returns { url, stop(), stderr() }; `stop` kills it (always call it, in an `after` hook).
 */
export async function startServer(args = []) {
  const child = spawn(BIN, ["--port", "0", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const exited = new Promise((res) => child.once("exit", (code, signal) => res({ code, signal })));
  exited.then(() => children.delete(child));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
  };
  try {
    const url = await new Promise((res, rej) => {
      const timer = setTimeout(
        () => rej(new Error(`server did not print its listening line within ${STEP_TIMEOUT} ms`)),
        STEP_TIMEOUT,
      );
      child.once("error", (e) => {
        clearTimeout(timer);
        rej(new Error(`cannot spawn ${BIN}: ${e.message} (build it with cargo build -p ferrio --examples)`));
      });
      exited.then(({ code, signal }) => {
        clearTimeout(timer);
        rej(new Error(`server exited early (code ${code}, signal ${signal}): ${stderr}`));
      });
      const lines = createInterface({ input: child.stdout });
      let first = true;
      lines.on("line", (line) => {
        if (!first) {
          process.stderr.write(`[socket_interop stdout] ${line}\n`);
          return;
        }
        first = false;
        clearTimeout(timer);
        const m = /^listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(line);
        if (m) res(m[1]);
        else rej(new Error(`unexpected first line on stdout: ${JSON.stringify(line)}`));
      });
    });
    return { url, stop, stderr: () => stderr };
  } catch (e) {
    await stop();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------
// Bounded waits
// ---------------------------------------------------------------------------------------------------

/** Rejects after `ms` with a message naming what was awaited. */
export function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The arguments of the next `event` on `emitter`, within `ms`. */
export function next(emitter, event, ms = STEP_TIMEOUT) {
  let listener;
  return within(
    new Promise((res) => {
      listener = (...args) => res(args);
      emitter.once(event, listener);
    }),
    ms,
    `event "${event}"`,
  ).finally(() => emitter.off(event, listener));
}

/** Polls `fn` (async) until it returns something other than undefined/null, within `ms`. */
export async function eventually(fn, ms = STEP_TIMEOUT, what = "a condition") {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

// ---------------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------------

/**
 * Creates clients for one test and tears them all down in `close()`.
 * `transport` is one of the TRANSPORTS settings.
 */
export class Clients {
  constructor(url, transport) {
    this.url = url;
    this.transport = transport;
    this.sockets = new Set();
    this.managers = new Set();
  }

  options(extra = {}) {
    return { reconnection: false, timeout: STEP_TIMEOUT, ...this.transport, ...extra };
  }

  track(socket) {
    this.sockets.add(socket);
    this.managers.add(socket.io);
    return socket;
  }

  /** A socket on its own connection (not connected yet). */
  socket(nsp = "/", extra = {}) {
    return this.track(io(this.url + nsp, this.options({ forceNew: true, ...extra })));
  }

  /** A Manager: several namespaces on one Engine.IO connection. */
  manager(extra = {}) {
    const m = new Manager(this.url, this.options(extra));
    this.managers.add(m);
    return m;
  }

  /** `manager.socket(nsp)`, tracked. */
  on(manager, nsp = "/", opts = {}) {
    return this.track(manager.socket(nsp, opts));
  }

  /** Like `socket()`, resolved once connected (rejects on connect_error). */
  async connected(nsp = "/", extra = {}) {
    return connect(this.socket(nsp, extra));
  }

  close() {
    for (const s of this.sockets) {
      s.offAny();
      s.disconnect();
    }
    for (const m of this.managers) {
      m.engine?.close();
    }
  }
}

/** Resolves with the socket once connected; rejects with the connect_error. */
export function connect(socket, ms = STEP_TIMEOUT) {
  return within(
    new Promise((res, rej) => {
      if (socket.connected) return res(socket);
      const onConnect = () => {
        socket.off("connect_error", onError);
        res(socket);
      };
      const onError = (err) => {
        socket.off("connect", onConnect);
        rej(err);
      };
      socket.once("connect", onConnect);
      socket.once("connect_error", onError);
      if (!socket.active) socket.connect();
    }),
    ms,
    `connection to ${socket.nsp}`,
  );
}

/** The `connect_error` of a socket expected to be refused. */
export function refused(socket, ms = STEP_TIMEOUT) {
  return within(
    new Promise((res, rej) => {
      socket.once("connect", () => rej(new Error(`${socket.nsp}: connected, expected a refusal`)));
      socket.once("connect_error", res);
      if (!socket.active) socket.connect();
    }),
    ms,
    `connect_error on ${socket.nsp}`,
  );
}

/**
 * Records every event a socket receives (onAny) so that a test can check what arrived before a
 * "fence" event: packets of one connection arrive in order, so once the fence is in, every event
 * emitted before it is too, and the absence of an event is proven without waiting.
 */
export function recorder(socket) {
  const events = [];
  socket.onAny((event, ...args) => events.push([event, args]));
  return {
    events,
    /** The events received before the first `fence` event, waiting for that fence. */
    async until(fence, ms = STEP_TIMEOUT) {
      await eventually(() => (events.some(([e]) => e === fence) ? true : undefined), ms, `"${fence}"`);
      return events.slice(0, events.findIndex(([e]) => e === fence));
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Binary
// ---------------------------------------------------------------------------------------------------

function isBinary(v) {
  return v instanceof ArrayBuffer || ArrayBuffer.isView(v);
}

/** The bytes of a Buffer, TypedArray, DataView or ArrayBuffer. */
export function bytesOf(v) {
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  throw new Error(`not binary: ${typeof v} ${JSON.stringify(v)?.slice(0, 60)}`);
}

/**
 * A plain-JSON image of a value in which every binary blob becomes {$bytes: "hex"}, so that
 * deepStrictEqual compares the blobs byte for byte whatever their JS type (Buffer, ArrayBuffer, ...).
 */
export function normalize(v) {
  if (isBinary(v)) return { $bytes: Buffer.from(bytesOf(v)).toString("hex") };
  if (Array.isArray(v)) return v.map(normalize);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]));
  }
  return v;
}

/** Counts the binary blobs of a value. */
export function countBinary(v) {
  if (isBinary(v)) return 1;
  if (Array.isArray(v)) return v.reduce((n, x) => n + countBinary(x), 0);
  if (v !== null && typeof v === "object") return Object.values(v).reduce((n, x) => n + countBinary(x), 0);
  return 0;
}

/** A unique name (rooms) so that tests sharing a server never see each other. */
let counter = 0;
export function unique(prefix) {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}
