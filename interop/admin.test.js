// The official Socket.IO admin UI (@socket.io/admin-ui, its built web app) in headless Chromium against
// `ferrio serve --admin`: it logs in, lists a connected test client with its room, and its disconnect
// action disconnects the client.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { chromium } from "playwright-core";
import { io as connect } from "socket.io-client";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const BIN = process.env.FERRIO_BIN ?? path.join(root, "target/debug/ferrio");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const DIST = path.join(here, "node_modules/@socket.io/admin-ui/ui/dist");
const skip = !existsSync(CHROMIUM)
  ? `no Chromium at ${CHROMIUM} (scripts/test.sh installs Debian's package)`
  : !existsSync(DIST)
    ? `no ${DIST} (npm ci in interop/)`
    : false;

let server;
let url;
let browser;

function startServer() {
  return new Promise((resolve, reject) => {
    const client = path.join(here, "node_modules/socket.io-client/dist");
    const args = ["serve", "--port", "0", "--client-dist", client, "--admin", "admin:s3cret",
      "--admin-ui-dist", DIST, "--log", "warn"];
    const p = spawn(BIN, args, { stdio: ["ignore", "pipe", "inherit"] });
    const timer = setTimeout(() => reject(new Error("ferrio serve did not start")), 20000);
    p.stdout.setEncoding("utf8");
    p.stdout.on("data", (chunk) => {
      const m = chunk.match(/listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ p, url: m[1] });
      }
    });
    p.on("exit", (code) => reject(new Error(`ferrio serve exited with ${code}`)));
  });
}

before(async () => {
  if (skip) return;
  ({ p: server, url } = await startServer());
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
      "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  server?.kill("SIGKILL");
});

test("the official admin UI logs in, finds a client and its room, and disconnects it", { skip, timeout: 60000 },
  async () => {
    const client = connect(url, { transports: ["websocket"], reconnection: false, forceNew: true });
    const connected = new Promise((resolve, reject) => {
      client.once("connect", resolve);
      client.once("connect_error", reject);
    });
    const context = await browser.newContext();
    try {
      await connected;
      assert.equal(await client.emitWithAck("join", "room-admin-test"), true);
      const disconnected = new Promise((resolve) => client.once("disconnect", resolve));

      // The app's fonts and icons come from CDNs: refused at once rather than left to time out offline.
      await context.route((u) => !u.href.startsWith(url), (route) => route.abort());
      const page = await context.newPage();
      await page.goto(`${url}/admin/`, { waitUntil: "domcontentloaded" });
      // The login dialog: server URL, user name, password.
      const form = page.locator("form");
      await form.locator("input[type=text]").nth(0).fill(url);
      await form.locator("input[type=text]").nth(1).fill("admin");
      await form.locator("input[type=password]").fill("s3cret");
      await form.locator("button[type=submit]").click();
      await page.waitForFunction(() => localStorage.getItem("session_id"), null, { timeout: 15000 });

      // The sockets of "/": the test client is there.
      await page.evaluate(() => { location.hash = "#/sockets/"; });
      await page.waitForFunction((id) => document.body.innerText.includes(id), client.id, { timeout: 15000 });

      // Its details: its room, and the disconnect action.
      await page.evaluate((id) => { location.hash = `#/n/${encodeURIComponent("/")}/sockets/${id}`; }, client.id);
      await page.waitForFunction(() => document.body.innerText.includes("room-admin-test"), null,
        { timeout: 15000 });
      await page.locator("button:has(.mdi-logout)").last().click();
      const reason = await Promise.race([
        disconnected,
        new Promise((_, reject) => setTimeout(() => reject(new Error("not disconnected")), 15000)),
      ]);
      assert.equal(reason, "io server disconnect");
    } finally {
      client.close();
      await context.close();
    }
  });
