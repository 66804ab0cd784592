// The official Socket.IO admin UI (its built web app, in headless Chromium) logged in to a ferrio node of
// a cluster of ferrio (`ferrio serve --adapter redis://… --admin`) and Node socket.io 4.8 instrumented
// with the official @socket.io/admin-ui, on one private Redis (@socket.io/redis-adapter): it lists the
// clients of both nodes with their rooms, shows an event received on each node, gets the traffic its
// dashboard charts, and its disconnect
// action, sent to ferrio, disconnects the client of the Node node.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { instrument } from "@socket.io/admin-ui";
import { createClient } from "redis";
import { io as connect } from "socket.io-client";
import { startRedis, waitServers, within } from "./redis/cluster.js";
import { ADMIN_UI_DIST, FERRIO_BIN, adminLogin, launchChromium, skipReason, startServe } from "./lib/browser.js";

const skip = skipReason([ADMIN_UI_DIST, FERRIO_BIN]);

let redis;
let ferrio;
let ferrioUrl;
let node;
let browser;

function startFerrio(redisUrl) {
  return startServe(["--admin", "admin:s3cret", "--admin-ui-dist", ADMIN_UI_DIST, "--adapter", redisUrl]);
}

/** A Node socket.io node on the Redis adapter, instrumented by the official package (no login: the
 * app logs in to ferrio, and sees this node through Redis). */
async function startNode(redisUrl) {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  pub.on("error", () => {});
  sub.on("error", () => {});
  await Promise.all([pub.connect(), sub.connect()]);
  const http = createServer();
  const io = new Server(http, { adapter: createAdapter(pub, sub) });
  instrument(io, { auth: false, mode: "development", serverId: "node-1" });
  io.on("connection", (socket) => {
    socket.on("join", (room, cb) => {
      socket.join(room);
      cb(true);
    });
  });
  await new Promise((r) => http.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${http.address().port}`,
    stop: async () => {
      io.close();
      await Promise.allSettled([pub.quit(), sub.quit()]);
    },
  };
}

before(async () => {
  if (skip) return;
  redis = await startRedis();
  [{ p: ferrio, url: ferrioUrl }, node] = await Promise.all([startFerrio(redis.url), startNode(redis.url)]);
  // Both nodes' "/" and "/admin" namespaces are listening on Redis.
  await waitServers(redis.url, 2);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  ferrio?.kill("SIGKILL");
  await node?.stop();
  redis?.stop();
});

function client(url) {
  const socket = connect(url, { transports: ["websocket"], reconnection: false, forceNew: true });
  return within(new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", reject);
  }), 10000, `a client of ${url}`);
}

/** Waits for `s` on the page; on a timeout, prints what the page shows. */
const text = (page, s) =>
  page.waitForFunction((t) => document.body.innerText.includes(t), s, { timeout: 15000 }).catch(async (e) => {
    console.log(`the page, without ${s}:`, await page.evaluate(() => document.body.innerText));
    throw e;
  });

test("the admin UI on a ferrio node sees and acts on the sockets of a ferrio + Node cluster", { skip, timeout: 90000 },
  async () => {
    const [cF, cN] = await Promise.all([client(ferrioUrl), client(node.url)]);
    const context = await browser.newContext();
    let late;
    try {
      assert.equal(await cF.timeout(5000).emitWithAck("join", "room-on-ferrio"), true);
      assert.equal(await cN.timeout(5000).emitWithAck("join", "room-on-node"), true);
      const disconnected = new Promise((resolve) => cN.once("disconnect", resolve));

      const page = await adminLogin(context, ferrioUrl);
      // A connection counted while the app listens. Each server_stats carries the counts since the
      // previous one (as the official package sends them), so the sessions opened before the app
      // joined, its own included when a stats tick falls between its handshake and its login, went to
      // no one.
      late = await client(ferrioUrl);

      // The dashboard's charts are fed: ferrio's server_stats carry the Engine.IO traffic per second.
      await page.waitForFunction(() => {
        const events = document.querySelector("#app")?.__vue__?.$store?.state?.main?.aggregatedEvents ?? [];
        const types = new Set(events.filter((e) => e.count > 0).map((e) => e.type));
        return ["rawConnection", "packetsIn", "bytesIn", "packetsOut", "bytesOut"].every((t) => types.has(t));
      }, null, { timeout: 15000 });

      // The sockets of "/" on both nodes.
      await page.evaluate(() => { location.hash = "#/sockets/"; });
      await text(page, cF.id);
      await text(page, cN.id);

      // Events received on each node, once the app is listening (development mode).
      await page.evaluate(() => { location.hash = "#/events/"; });
      cF.emit("hello-ferrio", 1);
      cN.emit("hello-node", 2);
      await text(page, "hello-ferrio");
      await text(page, "hello-node");

      // Each socket with its room, then the disconnect action on the Node node's client.
      await page.evaluate((id) => { location.hash = `#/n/${encodeURIComponent("/")}/sockets/${id}`; }, cF.id);
      await text(page, "room-on-ferrio");
      // Through the list: the app keeps the details page of the first socket for a second one.
      await page.evaluate(() => { location.hash = "#/sockets/"; });
      await text(page, cN.id);
      await page.evaluate((id) => { location.hash = `#/n/${encodeURIComponent("/")}/sockets/${id}`; }, cN.id);
      await text(page, "room-on-node");
      await page.locator("button:has(.mdi-logout)").last().click();
      const reason = await within(disconnected, 15000, "the Node node's client is disconnected");
      assert.equal(reason, "io server disconnect");
      assert.ok(cF.connected, "the other client stays");
    } finally {
      cF.close();
      cN.close();
      late?.close();
      await context.close();
    }
  });
