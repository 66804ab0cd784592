// The official Node socket.io-client in the client side-by-side (bench/client.sh): the same closed loop
// as bench-client (CLIENTS sockets over websocket, one `echo` with ack in flight each, 1 s warm-up, then
// SECONDS measured), then IDLE sockets held for the memory an idle client costs.
// Usage: node bench/client/node.mjs URL CLIENTS SECONDS IDLE  (socket.io-client from interop/node_modules)
import { createRequire } from "node:module";

const require = createRequire(new URL("../../interop/package.json", import.meta.url));
const { io } = require("socket.io-client");

const [url, clientsArg, secondsArg, idleArg] = process.argv.slice(2);
const clients = Number(clientsArg ?? 50);
const seconds = Number(secondsArg ?? 10);
const idle = Number(idleArg ?? 0);
const now = () => Number(process.hrtime.bigint() / 1000n);
const open = () =>
  new Promise((resolve, reject) => {
    const s = io(url, { transports: ["websocket"], reconnection: false, forceNew: true });
    s.once("connect", () => resolve(s));
    s.once("connect_error", reject);
  });

const latencies = [];
let errors = 0;
let measuring = false;
let stop = false;
const sockets = await Promise.all(Array.from({ length: clients }, open));
const loops = sockets.map(async (s) => {
  while (!stop) {
    const t = now();
    const back = await s.timeout(5000).emitWithAck("echo", t).catch(() => null);
    if (back !== t) errors++;
    else if (measuring) latencies.push(now() - t);
  }
});
await new Promise((r) => setTimeout(r, 1000));
const cpu0 = process.cpuUsage();
const t0 = now();
measuring = true;
await new Promise((r) => setTimeout(r, seconds * 1000));
measuring = false;
const secs = (now() - t0) / 1e6;
const cpu = process.cpuUsage(cpu0);
stop = true;
await Promise.all(loops);

globalThis.gc?.();
const rss0 = process.memoryUsage().rss;
const held = [];
for (let i = 0; i < idle; i++) held.push(await open());
await new Promise((r) => setTimeout(r, 2000));
globalThis.gc?.();
const rss1 = process.memoryUsage().rss;
for (const s of [...sockets, ...held]) s.close();

latencies.sort((a, b) => a - b);
const q = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : 0);
console.log(JSON.stringify({
  lib: "socket.io-client",
  clients,
  seconds: secs,
  acks: latencies.length,
  acks_per_s: latencies.length / secs,
  cpu_us_per_ack: latencies.length ? (cpu.user + cpu.system) / latencies.length : null,
  latency_us: { p50: q(0.5), p99: q(0.99), max: latencies.at(-1) ?? 0 },
  errors,
  idle_clients: idle,
  rss_per_idle_client_bytes: idle ? (rss1 - rss0) / idle : null,
}));
process.exit(0);
