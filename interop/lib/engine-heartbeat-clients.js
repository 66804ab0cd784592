// Runs one engine.io-client per transport mode against URL for SECONDS seconds, counting pings, then
// prints one JSON line with what each client saw. engine.test.js runs it in its own process so that
// the tight heartbeat (100 ms ping timeout) does not depend on how busy the test runner's event loop is.
//
// usage: node lib/engine-heartbeat-clients.js URL SECONDS

import { Socket } from "engine.io-client";

const [url, seconds] = process.argv.slice(2);
const MODES = {
  polling: { transports: ["polling"] },
  websocket: { transports: ["websocket"] },
  upgrade: {},
};

function summarize(d) {
  if (d === undefined) return undefined;
  return {
    message: d?.message,
    description: typeof d?.description === "object" ? d.description?.message ?? String(d.description) : d?.description,
    status: d?.context?.status,
  };
}

async function run(mode) {
  const socket = new Socket(url, { path: "/engine.io/", ...MODES[mode] });
  const seen = { mode, pings: 0, opens: 0, closes: [], upgrades: [], messages: [] };
  socket.on("open", () => seen.opens++);
  socket.on("ping", () => seen.pings++);
  socket.on("upgrade", (t) => seen.upgrades.push(t.name));
  socket.on("message", (m) => seen.messages.push(typeof m === "string" ? m : `<binary ${m.byteLength}>`));
  seen.echoed = false;
  const closes = [];
  seen.closes = closes;
  socket.on("close", (reason, d) => closes.push({ reason, atPing: seen.pings, ...summarize(d) }));
  await new Promise((res) => setTimeout(res, Number(seconds) * 1000));
  seen.readyState = socket.readyState;
  seen.closes = [...seen.closes]; // the closes during the run; the final close() below is not one
  seen.transport = socket.transport?.name;
  if (socket.readyState === "open") {
    // Still usable after all those heartbeats?
    socket.send("still here");
    await new Promise((res) => {
      const t = setTimeout(res, 2000);
      socket.on("message", (m) => {
        if (m === "still here") {
          seen.echoed = true;
          clearTimeout(t);
          res();
        }
      });
    });
  }
  socket.close();
  return seen;
}

const results = await Promise.all(Object.keys(MODES).map(run));
process.stdout.write(JSON.stringify(results) + "\n");
process.exit(0);
