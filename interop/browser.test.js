// The demo page of `ferrio serve` in headless Chromium (Debian's package): two tabs chat through a room,
// over polling only and over websocket only, with the official browser bundle served by `serve_client`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launchChromium, skipReason, startServe } from "./lib/browser.js";

const skip = skipReason();

let server;
let url;
let browser;

before(async () => {
  if (skip) return;
  ({ p: server, url } = await startServe());
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  server?.kill("SIGKILL");
});

async function openTab(context, transport) {
  const page = await context.newPage();
  await page.goto(`${url}/?transport=${transport}`);
  await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("connected"), null, {
    timeout: 10000,
  });
  return page;
}

async function join(page, room) {
  await page.fill("input[name=room]", room);
  await page.click("#room-form button");
  await page.waitForFunction((r) => document.getElementById("log").textContent.includes("joined " + r), room, {
    timeout: 5000,
  });
}

for (const transport of ["polling", "websocket"]) {
  test(`two tabs chat over ${transport}`, { skip, timeout: 30000 }, async () => {
    const context = await browser.newContext();
    try {
      const a = await openTab(context, transport);
      const b = await openTab(context, transport);
      for (const page of [a, b]) {
        assert.equal(await page.textContent("#transport"), transport);
      }
      await join(a, "room-" + transport);
      await join(b, "room-" + transport);
      await a.fill("input[name=text]", `hello from a over ${transport}`);
      await a.click("#chat-form button");
      await b.waitForFunction(
        (t) => document.getElementById("log").textContent.includes(t),
        `hello from a over ${transport}`,
        { timeout: 5000 },
      );
      await b.fill("input[name=text]", "and back from b");
      await b.click("#chat-form button");
      await a.waitForFunction(() => document.getElementById("log").textContent.includes("and back from b"), null, {
        timeout: 5000,
      });
      // The sender sees its own message too.
      assert.match(await a.textContent("#log"), new RegExp(`hello from a over ${transport}`));
    } finally {
      await context.close();
    }
  });
}

test("the bundle is served with ETag and 304", { skip, timeout: 10000 }, async () => {
  const first = await fetch(`${url}/socket.io/socket.io.min.js`);
  assert.equal(first.status, 200);
  const etag = first.headers.get("etag");
  assert.ok(etag);
  const second = await fetch(`${url}/socket.io/socket.io.min.js`, { headers: { "if-none-match": etag } });
  assert.equal(second.status, 304);
});
