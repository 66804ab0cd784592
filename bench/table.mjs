// Prints the side-by-side table of bench/run.sh from bench/results/SCENARIO-SERVER.json.
// Usage: node bench/table.mjs RESULTS_DIR SCENARIO...
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";

const [dir, ...scenarios] = process.argv.slice(2);
const servers = ["node", "socketioxide", "ferrio"];

const load = (scenario, server) => {
  const f = join(dir, `${scenario}-${server}.json`);
  if (!existsSync(f)) return null;
  try {
    return JSON.parse(readFileSync(f, "utf8").trim().split("\n").at(-1));
  } catch {
    return { failed: true };
  }
};

// The figures compared for one run. Fan-out and rooms: the last (highest) rate step.
function figures(r) {
  if (!r || r.failed) return null;
  const last = r.steps?.at(-1);
  const stepped = r.steps?.length > 1;
  const sv = r.server ?? {};
  return {
    conns: `${r.connections.up_at_end}/${r.connections.ok + r.connections.failed}`,
    cpuPerMsg: r.deliveries > 0 ? sv.cpu_us_per_message : null,
    sysPerMsg: r.deliveries > 0 ? sv.sys_us_per_message : null,
    rssPerConn: sv.rss_per_connection_bytes,
    rssMb: sv.rss_kb / 1024,
    delivPerS: stepped ? last.deliveries_per_s : r.deliveries_per_s,
    delivPerCpuS: sv.cpu_us > 0 && r.deliveries > 0 ? r.deliveries_per_s / (sv.cpu_us / 1e6 / r.seconds) : null,
    p99: stepped ? last.latency_us.p99 : r.latency_us.p99,
    lost: r.lost,
    errors: r.errors,
    gen: r.generator_cpu_percent,
  };
}

const num = (x, d = 0) => (x == null || Number.isNaN(x) ? "-" : x.toFixed(d));
const us = (x) => (x == null ? "-" : x >= 10000 ? `${(x / 1000).toFixed(0)}ms` : x >= 1000 ? `${(x / 1000).toFixed(1)}ms` : `${x}µs`);
const ratio = (a, b) => (a == null || b == null || !b ? "" : ` (${(a / b).toFixed(2)}x)`);

const head = ["scenario", "server", "up/conns", "CPU-µs/msg", "kernel", "RSS/conn", "RSS MB", "deliv/s", "deliv/CPU-s", "p99", "lost", "errors", "gen CPU%"];
const rows = [head];
for (const scenario of scenarios) {
  const node = figures(load(scenario, "node"));
  for (const server of servers) {
    const raw = load(scenario, server);
    if (!raw) continue;
    const f = figures(raw);
    if (!f) {
      rows.push([scenario, server, "FAILED", "", "", "", "", "", "", "", "", "", ""]);
      continue;
    }
    const n = node ?? {};
    rows.push([
      scenario,
      server,
      f.conns,
      num(f.cpuPerMsg, 1) + ratio(f.cpuPerMsg, n.cpuPerMsg),
      num(f.sysPerMsg, 1),
      (f.rssPerConn == null ? "-" : `${num(f.rssPerConn / 1024, 1)}K`) + (scenario === "idle" ? ratio(f.rssPerConn, n.rssPerConn) : ""),
      num(f.rssMb, 1),
      num(f.delivPerS) + ratio(f.delivPerS, n.delivPerS),
      num(f.delivPerCpuS) + ratio(f.delivPerCpuS, n.delivPerCpuS),
      us(f.p99) + ratio(f.p99, n.p99),
      num(f.lost),
      num(f.errors),
      num(f.gen),
    ]);
  }
}
const widths = head.map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
for (const [i, r] of rows.entries()) {
  console.log(r.map((c, j) => String(c).padEnd(widths[j])).join("  "));
  if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
}

// Stepped scenarios, step by step: CPU per delivery and how busy the server was. A server busy all the
// step long (near 100 %) is saturated: it delivered the step's load with all of one core, whatever
// that costs it per delivery, so only the steps below saturation compare servers' costs.
const stepRows = [["by step", "rate", ...servers.map((s) => `${s} CPU-µs/msg (busy)`)]];
for (const scenario of scenarios) {
  const runs = servers.map((s) => load(scenario, s));
  const steps = Math.max(0, ...runs.map((r) => (r && !r.failed && r.steps?.length > 1 ? r.steps.length : 0)));
  for (let i = 0; i < steps; i++) {
    const rate = runs.find((r) => r?.steps?.[i])?.steps[i].rate;
    stepRows.push([
      scenario,
      String(rate),
      ...runs.map((r) => {
        const st = r?.steps?.[i];
        if (!st || st.server_cpu_us == null || !st.deliveries_per_s) return "-";
        const delivered = st.deliveries_per_s * st.seconds;
        const busy = (100 * st.server_cpu_us) / 1e6 / st.seconds;
        return `${num(st.server_cpu_us / delivered, 2)} (${num(busy)}%)`;
      }),
    ]);
  }
}
if (stepRows.length > 1) {
  console.log("");
  const w = stepRows[0].map((_, i) => Math.max(...stepRows.map((r) => String(r[i]).length)));
  for (const [i, r] of stepRows.entries()) {
    console.log(r.map((c, j) => String(c).padEnd(w[j])).join("  "));
    if (i === 0) console.log(w.map((x) => "-".repeat(x)).join("  "));
  }
}
console.log(`
Ratios in parentheses are to Node. CPU-µs/msg: server utime+stime over the measurement per delivered
message (echo and polling: per ack); kernel: its system-time part (syscalls and the loopback TCP work
they do), which no user-space change removes. RSS/conn: (VmRSS at the end - VmRSS before connecting) / connections.
deliv/s and p99: the highest rate step for fanout and rooms. deliv/CPU-s: deliveries per second of server
CPU (what one core would sustain). gen CPU%: the generator's own load (near 100: it is the bottleneck).
By step: a server near 100 % busy is saturated and delivers the step's load at whatever cost per
delivery that leaves (it lets frames gather and writes them together), so two saturated servers read
the same there; the steps below saturation compare their costs.`);
