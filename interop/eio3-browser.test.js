// The socket.io-client 2.x browser bundle (from the pinned npm package `socket.io-client-v2`, its dist/) in
// headless Chromium against ferrio's socket_interop server with `--allow-eio3`: JSONP polling
// (`forceJSONP`, script tags and form posts in an iframe) and XHR polling with binary payloads.
//
// The page is served by a small HTTP server of this test on another port, so every request to ferrio is
// cross-origin, as JSONP was made for. Skipped with a reason when Chromium is absent.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { launchChromium, skipReason } from "./lib/browser.js";
import { startServer } from "./lib/socketio.js";

const require = createRequire(import.meta.url);
const BUNDLE = path.join(path.dirname(require.resolve("socket.io-client-v2/package.json")), "dist/socket.io.js");
const skip = skipReason();

const PAGE = `<!doctype html><meta charset="utf-8"><script src="/socket.io.js"></script><body></body>`;

let ferrio;
let pages;
let pagesUrl;
let browser;

before(async () => {
  if (skip) return;
  // Default heartbeats: a JSONP write waits for an iframe to load, far slower than the 300 ms test default.
  ferrio = await startServer(["--allow-eio3", "--ping-interval", "25000", "--ping-timeout", "20000"]);
  const bundle = readFileSync(BUNDLE);
  pages = createServer((req, res) => {
    if (req.url === "/socket.io.js") {
      res.writeHead(200, { "content-type": "application/javascript" }).end(bundle);
    } else {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(PAGE);
    }
  });
  await new Promise((res) => pages.listen(0, "127.0.0.1", res));
  // "localhost" for the page and 127.0.0.1 for ferrio: different origins.
  pagesUrl = `http://localhost:${pages.address().port}/`;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await new Promise((res) => (pages ? pages.close(res) : res()));
  await ferrio?.stop();
});

/**
 * Runs a scenario in a fresh page: connects with `opts`, then echoes text that JSONP must escape and
 * bytes, receives the server's blobs, and reports what came back.
 */
async function scenario(opts) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const requests = [];
    page.on("request", (r) => {
      if (r.url().startsWith(ferrio.url)) requests.push({ method: r.method(), url: r.url() });
    });
    await page.goto(pagesUrl);
    const result = await page.evaluate(
      async ({ url, opts }) => {
        const hex = (b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");
        const s = io(url, { forceNew: true, reconnection: false, withCredentials: false, ...opts });
        const ack = (ev, ...args) =>
          new Promise((res, rej) => {
            const timer = setTimeout(() => rej(new Error(`no ack for ${ev}`)), 5000);
            s.emit(ev, ...args, (...answer) => {
              clearTimeout(timer);
              res(answer);
            });
          });
        await new Promise((res, rej) => {
          s.on("connect", res);
          s.on("connect_error", (e) => rej(new Error(`connect_error ${e}`)));
          setTimeout(() => rej(new Error("no connect")), 5000);
        });
        const tricky = 'quote " backslash \\ newline \n escaped \\n crlf \r\n ls \u2028 ps \u2029 </script> é 😀';
        const [echoed] = await ack("echo", tricky);
        const bytes = new Uint8Array([0, 1, 2, 10, 13, 92, 254, 255]);
        const [blob, text] = await ack("echo", bytes.buffer, "after");
        const [who] = await ack("whoami");
        const [hs] = await ack("handshake");
        const [mine, obj] = await new Promise((res) => {
          s.once("binary", (...a) => res(a));
          s.emit("binary-please");
        });
        s.close();
        return {
          echoedOk: echoed === tricky,
          echoed,
          blob: hex(blob),
          text,
          who,
          query: hs.query,
          mine: hex(mine),
          single: hex(obj.single),
          transportName: s.io.engine.transport.name,
        };
      },
      { url: ferrio.url, opts },
    );
    return { result, requests };
  } finally {
    await context.close();
  }
}

test("JSONP polling (forceJSONP) with the 2.x browser bundle", { skip, timeout: 30_000 }, async () => {
  const { result, requests } = await scenario({ transports: ["polling"], forceJSONP: true });
  assert.ok(result.echoedOk, `echoed text differs: ${JSON.stringify(result.echoed)}`);
  assert.equal(result.blob, "0001020a0d5cfeff");
  assert.equal(result.text, "after");
  assert.equal(result.who.transport, "polling");
  assert.equal(result.query.EIO, "3");
  assert.equal(result.query.j, "0");
  assert.equal(result.query.b64, "1");
  assert.equal(result.mine, "2a2a2a");
  assert.equal(result.single, "000102ff");
  // Script GETs and form POSTs, every one carrying the callback index.
  assert.ok(requests.some((r) => r.method === "POST"), "no JSONP form post seen");
  assert.ok(requests.every((r) => new URL(r.url).searchParams.get("j") === "0"), JSON.stringify(requests));
});

test("XHR polling with binary payloads with the 2.x browser bundle", { skip, timeout: 30_000 }, async () => {
  const { result, requests } = await scenario({ transports: ["polling"] });
  assert.ok(result.echoedOk, `echoed text differs: ${JSON.stringify(result.echoed)}`);
  assert.equal(result.blob, "0001020a0d5cfeff");
  assert.equal(result.query.b64, undefined, "a browser with XHR2 takes binary payloads");
  assert.equal(result.query.j, undefined);
  assert.equal(result.mine, "2a2a2a");
  assert.equal(result.single, "000102ff");
  assert.ok(requests.some((r) => r.method === "POST"));
});

test("upgrade to websocket with the 2.x browser bundle", { skip, timeout: 30_000 }, async () => {
  const { result } = await scenario({});
  assert.ok(result.echoedOk);
  assert.equal(result.blob, "0001020a0d5cfeff");
  assert.equal(result.single, "000102ff");
});
