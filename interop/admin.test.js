// The official Socket.IO admin UI (@socket.io/admin-ui, its built web app) in headless Chromium against
// `ferrio serve --admin`: it logs in, lists a connected test client with its room, and its disconnect
// action disconnects the client.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io as connect } from "socket.io-client";
import { ADMIN_UI_DIST, adminLogin, launchChromium, skipReason, startServe } from "./lib/browser.js";

const skip = skipReason([ADMIN_UI_DIST]);

let server;
let url;
let browser;

before(async () => {
  if (skip) return;
  ({ p: server, url } = await startServe(["--admin", "admin:s3cret", "--admin-ui-dist", ADMIN_UI_DIST]));
  browser = await launchChromium();
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

      const page = await adminLogin(context, url);

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
