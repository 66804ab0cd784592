// Echo benchmark with the official socket.io-client, for comparison with `ferrio bench echo`
// (checked by crates/ferrio-cli/tests/bench_agrees.rs).
//
// Usage: node bench/official-echo.mjs URL [CLIENTS=10] [SECONDS=3]
// Each client keeps one `echo` in flight (closed loop), like `ferrio bench echo` without --rate.
// Prints one JSON object: {"clients", "seconds", "acks", "acks_per_s", "latency_us": {p50, p90, p99, max}, "errors"}.
// socket.io-client is taken from interop/node_modules (`cd interop && npm ci`).
import { createRequire } from "node:module";

const require = createRequire(new URL("../interop/package.json", import.meta.url));
const { io } = require("socket.io-client");

const url = process.argv[2];
const clients = Number(process.argv[3] ?? 10);
const seconds = Number(process.argv[4] ?? 3);
if (!url) {
  console.error("usage: node bench/official-echo.mjs URL [CLIENTS] [SECONDS]");
  process.exit(2);
}

const now = () => Number(process.hrtime.bigint() / 1000n);
const latencies = [];
let errors = 0;
let measuring = false;

const sockets = await Promise.all(
  Array.from({ length: clients }, () =>
    new Promise((resolve, reject) => {
      const s = io(url, { transports: ["websocket"], reconnection: false, forceNew: true });
      s.once("connect", () => resolve(s));
      s.once("connect_error", reject);
    }),
  ),
);
for (const s of sockets) s.on("disconnect", () => { if (measuring) errors++; });

measuring = true;
const start = now();
const end = start + seconds * 1e6;
await Promise.all(
  sockets.map(async (s) => {
    while (now() < end) {
      const t = now();
      const back = await s.timeout(5000).emitWithAck("echo", t).catch(() => null);
      if (back === t) latencies.push(now() - t);
      else errors++;
    }
  }),
);
const elapsed = (now() - start) / 1e6;
measuring = false;
for (const s of sockets) s.close();

latencies.sort((a, b) => a - b);
const q = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : 0);
console.log(JSON.stringify({
  clients,
  seconds: elapsed,
  acks: latencies.length,
  acks_per_s: latencies.length / elapsed,
  latency_us: { p50: q(0.5), p90: q(0.9), p99: q(0.99), max: latencies.at(-1) ?? 0 },
  errors,
}));
process.exit(0);
