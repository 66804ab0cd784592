// Interop test: permessage-deflate between the official `socket.io-client` (its Node websocket transport
// is the `ws` package, which offers permessage-deflate with a 1024-byte threshold by default) and
// ferrio's Socket.IO server (crates/ferrio/examples/socket_interop.rs, with and without
// `--per-message-deflate`).
//
// A counting TCP proxy sits between the two, so that the bytes a 10 KB JSON message takes on the wire
// can be compared with and without the extension.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { io } from "socket.io-client";
import { STEP_TIMEOUT, TEST_TIMEOUT, connect, startServer, within } from "./lib/socketio.js";

/** A TCP proxy to `target` (a URL) that counts the bytes of each direction. */
async function countingProxy(target) {
  const { hostname, port } = new URL(target);
  const counts = { up: 0, down: 0 };
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    sockets.add(client).add(upstream);
    client.on("data", (d) => {
      counts.up += d.length;
      upstream.write(d);
    });
    upstream.on("data", (d) => {
      counts.down += d.length;
      client.write(d);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  });
  await new Promise((res) => server.listen(0, "127.0.0.1", res));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    counts,
    snapshot: () => ({ ...counts }),
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((res) => server.close(res));
    },
  };
}

/** A JSON value of about 10 KB, as an application would send. */
function json10k() {
  const items = [];
  for (let i = 0; i < 240; i++) items.push({ id: i, name: `user ${i}`, online: i % 3 === 0 });
  const value = { items };
  const size = JSON.stringify(value).length;
  assert.ok(size > 9_000 && size < 12_000, `${size}`);
  return value;
}

/** Waits until the proxy's counters stop moving (the frames of one exchange are all through). */
async function settled(proxy) {
  let last = -1;
  while (last !== proxy.counts.up + proxy.counts.down) {
    last = proxy.counts.up + proxy.counts.down;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Connects over websocket only through a counting proxy, echoes the 10 KB value (client → server →
 * ack back), and returns the negotiated extensions and the bytes of the exchange in each direction.
 */
async function exchange(server) {
  const proxy = await countingProxy(server.url);
  const socket = io(proxy.url, { transports: ["websocket"], forceNew: true, reconnection: false });
  try {
    await connect(socket);
    const ws = socket.io.engine.transport.ws;
    const value = json10k();
    const echo = async () => {
      await settled(proxy);
      const before = proxy.snapshot();
      const back = await within(socket.timeout(STEP_TIMEOUT).emitWithAck("echo", value), STEP_TIMEOUT, "the echo");
      assert.deepEqual(back, value, "the 10 KB message came back intact");
      await settled(proxy);
      return { up: proxy.counts.up - before.up, down: proxy.counts.down - before.down };
    };
    // The first echo starts from empty compression contexts; the second repeats it, which context
    // takeover turns into back-references.
    const first = await echo();
    const again = await echo();
    return { extensions: ws.extensions, first, again };
  } finally {
    socket.close();
    await proxy.close();
  }
}

describe("permessage-deflate with socket.io-client", { timeout: 60_000 }, () => {
  let plain;
  let deflate;
  before(async () => {
    [plain, deflate] = await Promise.all([startServer(), startServer(["--per-message-deflate"])]);
  });
  after(async () => {
    await Promise.all([plain?.stop(), deflate?.stop()]);
  });

  test("negotiated, round trip both ways, fewer bytes on the wire", { timeout: TEST_TIMEOUT }, async () => {
    const off = await exchange(plain);
    const on = await exchange(deflate);
    assert.equal(off.extensions, "", "no extension unless the server enables it");
    assert.match(on.extensions, /^permessage-deflate/);
    const size = JSON.stringify(json10k()).length;
    // Without deflate each direction carries the whole message; with it, a fraction.
    for (const k of ["up", "down"]) {
      assert.ok(off.first[k] > size && off.again[k] > size, JSON.stringify(off));
      assert.ok(on.first[k] < off.first[k] / 3, `${k}: ${on.first[k]} vs ${off.first[k]} bytes`);
      assert.ok(on.again[k] <= on.first[k], `${k}: repeated ${on.again[k]} vs first ${on.first[k]}`);
    }
    console.log(
      `10 KB JSON echo (${size} bytes of JSON), bytes client→server / server→client: ` +
        `without deflate ${off.first.up} / ${off.first.down}; ` +
        `with deflate, first message ${on.first.up} / ${on.first.down}, ` +
        `same message again ${on.again.up} / ${on.again.down}`,
    );
  });

  test("small messages and binary attachments still arrive", { timeout: TEST_TIMEOUT }, async () => {
    const socket = io(deflate.url, { transports: ["websocket"], forceNew: true, reconnection: false });
    try {
      await connect(socket);
      const small = await within(socket.timeout(STEP_TIMEOUT).emitWithAck("echo", "hi"), STEP_TIMEOUT, "echo");
      assert.equal(small, "hi");
      const blob = Buffer.alloc(5000, 7);
      const b = await within(socket.timeout(STEP_TIMEOUT).emitWithAck("echo", blob), STEP_TIMEOUT, "echo");
      assert.ok(Buffer.from(b).equals(blob));
    } finally {
      socket.close();
    }
  });
});
