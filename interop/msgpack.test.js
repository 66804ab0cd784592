// Interop tests of the msgpack parser: ferrio's Socket.IO server (crates/ferrio/examples/socket_interop.rs,
// `--parser msgpack`) against the official `socket.io-client` with `socket.io-msgpack-parser`; then
// `ferrio serve --parser msgpack` and its demo page (the bundle's `socket.io.msgpack.min.js`) in headless
// Chromium.
//
// Build the servers first: `cargo build -p ferrio --examples -p ferrio-cli` from the repo root (or set
// $FERRIO_SOCKET_INTEROP_BIN and $FERRIO_BIN). Every scenario runs over polling only, WebSocket only and
// the default (polling, then the upgrade); each transport setting gets its own server process, killed in
// an `after` hook whatever happened.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import * as parser from "socket.io-msgpack-parser";
import {
  Clients,
  STEP_TIMEOUT,
  TEST_TIMEOUT,
  TRANSPORTS,
  next,
  normalize,
  refused,
  startServer,
  unique,
  within,
} from "./lib/socketio.js";

/** Collects the Engine.IO message packets a client receives, to check how they travel. */
function wire(socket) {
  const messages = [];
  const hook = () => socket.io.engine.on("packet", (p) => p.type === "message" && messages.push(p.data));
  if (socket.io.engine) hook();
  else socket.io.once("open", hook);
  return messages;
}

function ack(socket, event, ...args) {
  return within(
    new Promise((res) => socket.emit(event, ...args, (...a) => res(a))),
    STEP_TIMEOUT,
    `the ack of ${event}`,
  );
}

for (const [mode, transport] of Object.entries(TRANSPORTS)) {
  describe(`socket.io-client with socket.io-msgpack-parser over ${mode}`, { timeout: 60_000 }, () => {
    let server;
    let clients;
    const t = (name, fn) => test(name, { timeout: TEST_TIMEOUT }, fn);

    before(async () => {
      server = await startServer(["--parser", "msgpack"]);
    });
    after(async () => {
      await server?.stop();
    });
    afterEach(() => {
      clients?.close();
      clients = undefined;
    });
    const fresh = () => {
      clients = new Clients(server.url, { ...transport, parser });
      return clients;
    };

    t("every packet is one binary message; events and acks", async () => {
      const c = fresh();
      const s = c.socket("/");
      const messages = wire(s);
      await within(new Promise((res) => s.once("connect", res)), STEP_TIMEOUT, "connect");
      const [who] = await ack(s, "whoami");
      assert.equal(who.nsp, "/");
      assert.equal(who.id, s.id);
      const sent = [1, "two", { three: [3.5, null, true] }, -70000, 2 ** 40];
      assert.deepEqual(await ack(s, "echo", ...sent), sent);
      assert.ok(messages.length >= 3, `${messages.length} messages`);
      for (const m of messages) {
        assert.ok(typeof m !== "string", `a text message: ${m}`);
      }
    });

    t("binary both ways, in place", async () => {
      const c = fresh();
      const s = await c.connected();
      const data = [Buffer.from([1, 2, 3]), { nested: [Buffer.alloc(0), new Uint8Array([9, 8])] }, "x"];
      assert.deepEqual(normalize(await ack(s, "echo", ...data)), normalize(data));

      const obj = {
        single: Buffer.from([0, 1, 2, 255]),
        list: [Buffer.from(Array.from({ length: 256 }, (_, i) => i)), { deep: Buffer.alloc(0) }, "text"],
        n: 1.5,
      };
      const blob = Buffer.from([42, 42, 42]);
      const ev = next(s, "binary");
      const acked = await ack(s, "binary-please");
      assert.deepEqual(normalize(acked), normalize([obj, blob]));
      assert.deepEqual(normalize(await ev), normalize([blob, obj]));
    });

    t("the server's emit_with_ack, answered by the client", async () => {
      const c = fresh();
      const s = await c.connected();
      s.on("ask", (data, cb) => cb({ echoed: data, extra: Buffer.from([7, 7]) }));
      const result = next(s, "ask-result");
      s.emit("server-ack", { timeout: 2000, args: [Buffer.from([1, 2, 3])] });
      const [r] = await result;
      assert.equal(r.ok, true);
      assert.deepEqual(
        normalize(r.args),
        normalize([{ echoed: Buffer.from([1, 2, 3]), extra: Buffer.from([7, 7]) }]),
      );
    });

    t("namespaces on one connection, rooms", async () => {
      const c = fresh();
      const m = c.manager();
      const a = c.on(m, "/");
      const b = c.on(m, "/custom");
      await Promise.all([
        within(new Promise((res) => a.once("connect", res)), STEP_TIMEOUT, "/"),
        within(new Promise((res) => b.once("connect", res)), STEP_TIMEOUT, "/custom"),
      ]);
      const [whoA] = await ack(a, "whoami");
      const [whoB] = await ack(b, "whoami");
      assert.equal(whoA.nsp, "/");
      assert.equal(whoB.nsp, "/custom");
      assert.equal(whoA.connId, whoB.connId);

      const other = await c.connected("/custom");
      const room = unique("r");
      assert.deepEqual(await ack(b, "join", room), [true]);
      const got = next(b, "news");
      await ack(other, "to-room", { rooms: [room], event: "news", args: [Buffer.from([5]), "n"] });
      assert.deepEqual(normalize(await got), normalize([Buffer.from([5]), "n"]));
    });

    t("CONNECT_ERROR of a middleware and of an unknown namespace", async () => {
      const c = fresh();
      const err = await refused(c.socket("/private"));
      assert.equal(err.message, "not authorized");
      assert.deepEqual(err.data, { code: 42 });
      const ok = await c.connected("/private", { auth: { token: "secret" } });
      assert.equal((await ack(ok, "whoami"))[0].nsp, "/private");
      const invalid = await refused(c.socket("/nowhere"));
      assert.equal(invalid.message, "Invalid namespace");
    });

    t("send and the message event", async () => {
      const c = fresh();
      const s = await c.connected();
      const got = next(s, "message");
      s.send(1, Buffer.from([2]));
      assert.deepEqual(normalize(await got), normalize([[1, Buffer.from([2])]]));
    });
  });
}

// ---------------------------------------------------------------------------------------------------
// The demo page of `ferrio serve --parser msgpack` in Chromium
// ---------------------------------------------------------------------------------------------------

const here = path.dirname(fileURLToPath(import.meta.url));
const FERRIO = process.env.FERRIO_BIN ?? path.resolve(here, "../target/debug/ferrio");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const noChromium = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (scripts/test.sh installs Debian's package)`;

describe("the demo page of ferrio serve --parser msgpack", { skip: noChromium, timeout: 60_000 }, () => {
  let serve;
  let url;
  let browser;

  before(async () => {
    const dist = path.join(here, "node_modules/socket.io-client/dist");
    serve = spawn(FERRIO, ["serve", "--port", "0", "--parser", "msgpack", "--client-dist", dist, "--log", "warn"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    url = await within(
      new Promise((res, rej) => {
        serve.stdout.setEncoding("utf8");
        serve.stdout.on("data", (chunk) => {
          const m = chunk.match(/listening on (http:\/\/\S+)/);
          if (m) res(m[1]);
        });
        serve.once("exit", (code) => rej(new Error(`ferrio serve exited with ${code}`)));
      }),
      10_000,
      "ferrio serve",
    );
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
        "--no-first-run", "--disable-component-update", "--disable-sync"],
    });
  });

  after(async () => {
    await browser?.close();
    serve?.kill("SIGKILL");
  });

  for (const transport of ["polling", "websocket"]) {
    test(`two tabs chat over ${transport}, in msgpack`, { timeout: 30_000 }, async () => {
      const context = await browser.newContext();
      try {
        const frames = { text: 0, binary: 0 };
        const open = async () => {
          const page = await context.newPage();
          page.on("websocket", (ws) =>
            ws.on("framereceived", ({ payload }) => {
              // Engine.IO's own packets (ping) stay text; every Socket.IO packet is binary.
              if (typeof payload === "string") frames.text += payload.startsWith("4") ? 1 : 0;
              else frames.binary += 1;
            }),
          );
          await page.goto(`${url}/?transport=${transport}`);
          await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("connected"), null, {
            timeout: 10_000,
          });
          return page;
        };
        const [a, b] = [await open(), await open()];
        assert.equal(
          await a.evaluate(() => document.querySelector("script[src]").getAttribute("src")),
          "/socket.io/socket.io.msgpack.min.js",
        );
        const room = `room-msgpack-${transport}`;
        for (const page of [a, b]) {
          await page.fill("input[name=room]", room);
          await page.click("#room-form button");
          await page.waitForFunction((r) => document.getElementById("log").textContent.includes("joined " + r), room, {
            timeout: 5_000,
          });
        }
        await a.fill("input[name=text]", `hello in msgpack over ${transport}`);
        await a.click("#chat-form button");
        await b.waitForFunction(
          (t) => document.getElementById("log").textContent.includes(t),
          `hello in msgpack over ${transport}`,
          { timeout: 5_000 },
        );
        if (transport === "websocket") {
          assert.ok(frames.binary > 0, "binary Socket.IO packets");
          assert.equal(frames.text, 0, "no text Socket.IO packet");
        }
      } finally {
        await context.close();
      }
    });
  }
});
