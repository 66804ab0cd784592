// The HTML report of bench/run.sh: one section per scenario with the servers side by side, a chart of
// the throughput per rate step and one of the latency distribution per step. Self-contained (inline SVG
// and CSS, nothing fetched), so it opens from disk anywhere.
//
//   node bench/report.mjs RESULTS_DIR SCENARIO... > report.html
//
// Reads RESULTS_DIR/SCENARIO-SERVER.json (the last line: `ferrio bench --json`), as bench/table.mjs does.
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

export const SERVERS = ["node", "socketioxide", "ferrio"];
const COLORS = { node: "#3c873a", socketioxide: "#d9822b", ferrio: "#2f6fd6" };

/** The parsed run of `server` on `scenario`, `{ failed: true }` when it failed, null when absent. */
export function load(dir, scenario, server) {
  const f = join(dir, `${scenario}-${server}.json`);
  if (!existsSync(f)) return null;
  try {
    const r = JSON.parse(readFileSync(f, "utf8").trim().split("\n").at(-1));
    return r.failed ? { failed: true } : r;
  } catch {
    return { failed: true };
  }
}

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const fmt = (x) => (x >= 1e6 ? `${(x / 1e6).toFixed(1)}M` : x >= 1e4 ? `${(x / 1e3).toFixed(0)}k` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : `${Math.round(x)}`);
const fmtUs = (x) => (x >= 1e6 ? `${(x / 1e6).toFixed(1)}s` : x >= 1e3 ? `${(x / 1e3).toFixed(x >= 1e4 ? 0 : 1)}ms` : `${x}µs`);

/** The steps of a run; a run without rate steps is one step. */
function steps(r) {
  return r.steps?.length ? r.steps : [{ rate: null, deliveries_per_s: r.deliveries_per_s, latency_us: r.latency_us }];
}

/** `[quantile, µs]` points of a latency summary (older results: from p50/p90/p99/max). */
function quantiles(l) {
  if (!l || !l.count) return [];
  if (Array.isArray(l.quantiles)) return l.quantiles;
  return [[0.5, l.p50], [0.9, l.p90], [0.99, l.p99], [1, l.max]];
}

const W = 460;
const H = 260;
const M = { l: 56, r: 14, t: 26, b: 42 };

function frame(title, body, xLabel, yLabel, attrs) {
  return `<svg class="chart" ${attrs} width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img">
<title>${esc(title)}</title>
<text x="${W / 2}" y="16" class="title">${esc(title)}</text>
<line x1="${M.l}" y1="${H - M.b}" x2="${W - M.r}" y2="${H - M.b}" class="axis"/>
<line x1="${M.l}" y1="${M.t}" x2="${M.l}" y2="${H - M.b}" class="axis"/>
<text x="${(M.l + W - M.r) / 2}" y="${H - 6}" class="label">${esc(xLabel)}</text>
<text x="12" y="${(M.t + H - M.b) / 2}" class="label" transform="rotate(-90 12 ${(M.t + H - M.b) / 2})">${esc(yLabel)}</text>
${body}
</svg>`;
}

/** Grouped bars: deliveries/s per step, one bar per server. */
function throughputChart(scenario, runs) {
  const n = Math.max(...runs.map(([, r]) => steps(r).length));
  const max = Math.max(1, ...runs.flatMap(([, r]) => steps(r).map((s) => s.deliveries_per_s ?? 0)));
  const plotW = W - M.l - M.r;
  const plotH = H - M.t - M.b;
  const group = plotW / n;
  const bar = (group * 0.8) / runs.length;
  let body = "";
  for (let t = 0; t <= 4; t++) {
    const v = (max * t) / 4;
    const y = H - M.b - (plotH * t) / 4;
    body += `<line x1="${M.l}" x2="${W - M.r}" y1="${y}" y2="${y}" class="grid"/><text x="${M.l - 4}" y="${y + 4}" class="tick" text-anchor="end">${fmt(v)}</text>`;
  }
  for (let i = 0; i < n; i++) {
    const rate = runs.map(([, r]) => steps(r)[i]?.rate).find((x) => x != null);
    body += `<text x="${M.l + group * (i + 0.5)}" y="${H - M.b + 14}" class="tick">${rate == null ? "run" : `rate ${fmt(rate)}`}</text>`;
  }
  runs.forEach(([server, r], j) => {
    steps(r).forEach((s, i) => {
      const v = s.deliveries_per_s ?? 0;
      const h = Math.max(1, (plotH * v) / max);
      const x = M.l + group * i + group * 0.1 + bar * j;
      body += `<rect class="bar" data-server="${server}" data-step="${i}" x="${x.toFixed(1)}" y="${(H - M.b - h).toFixed(1)}" width="${bar.toFixed(1)}" height="${h.toFixed(1)}" fill="${COLORS[server]}"><title>${server}: ${fmt(v)} deliveries/s</title></rect>`;
    });
  });
  return frame(`${scenario}: throughput per rate step`, body, "rate step", "deliveries/s", `data-scenario="${scenario}" data-kind="throughput"`);
}

// Quantiles on a "nines" axis: 0 → 0, 0.9 → 1, 0.99 → 2, …, the maximum at the right end.
const NINES = 5;
const nines = (q) => Math.min(NINES, q >= 1 ? NINES : -Math.log10(1 - q));

/** Latency against quantile for one step, one curve per server (log scale). */
function latencyChart(scenario, runs, i) {
  const all = runs.flatMap(([, r]) => quantiles(steps(r)[i]?.latency_us).map(([, v]) => Math.max(1, v)));
  const lo = Math.log10(Math.min(...all));
  const hi = Math.max(lo + 1, Math.log10(Math.max(...all)));
  const plotW = W - M.l - M.r;
  const plotH = H - M.t - M.b;
  const X = (q) => M.l + (plotW * nines(q)) / NINES;
  const Y = (v) => H - M.b - (plotH * (Math.log10(Math.max(1, v)) - lo)) / (hi - lo);
  let body = "";
  for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) {
    const y = Y(10 ** e);
    body += `<line x1="${M.l}" x2="${W - M.r}" y1="${y}" y2="${y}" class="grid"/><text x="${M.l - 4}" y="${y + 4}" class="tick" text-anchor="end">${fmtUs(10 ** e)}</text>`;
  }
  ["p0", "p90", "p99", "p99.9", "p99.99", "max"].forEach((label, k) => {
    body += `<text x="${M.l + (plotW * k) / NINES}" y="${H - M.b + 14}" class="tick">${label}</text>`;
  });
  let rate = null;
  for (const [server, r] of runs) {
    const s = steps(r)[i];
    if (!s) continue;
    rate ??= s.rate;
    const pts = quantiles(s.latency_us);
    if (!pts.length) continue;
    const d = pts.map(([q, v], k) => `${k ? "L" : "M"}${X(q).toFixed(1)},${Y(v).toFixed(1)}`).join(" ");
    body += `<path class="curve" data-server="${server}" d="${d}" stroke="${COLORS[server]}"/>`;
    for (const [q, v] of pts) {
      body += `<circle class="point" data-server="${server}" cx="${X(q).toFixed(1)}" cy="${Y(v).toFixed(1)}" r="2.5" fill="${COLORS[server]}"><title>${server} p${+(q * 100).toFixed(2)}: ${fmtUs(v)}</title></circle>`;
    }
  }
  const step = rate == null ? "" : ` at rate ${fmt(rate)}`;
  return frame(`${scenario}: latency distribution${step}`, body, "quantile", "latency", `data-scenario="${scenario}" data-kind="latency" data-step="${i}"`);
}

function legend(runs) {
  return `<p class="legend">${runs.map(([s]) => `<span><i style="background:${COLORS[s]}"></i>${esc(s)}</span>`).join("")}</p>`;
}

/** The report of `scenarios` from the results in `dir`, as one HTML document. */
export function buildReport(dir, scenarios, { title = "ferrio benchmark", generated = new Date() } = {}) {
  let sections = "";
  for (const scenario of scenarios) {
    const runs = SERVERS.map((s) => [s, load(dir, scenario, s)]).filter(([, r]) => r);
    const ok = runs.filter(([, r]) => !r.failed);
    const failed = runs.filter(([, r]) => r.failed).map(([s]) => s);
    sections += `<section data-scenario="${esc(scenario)}"><h2>${esc(scenario)}</h2>`;
    if (failed.length) sections += `<p class="failed">failed: ${failed.map(esc).join(", ")}</p>`;
    if (ok.length) {
      const first = ok[0][1];
      sections += `<p class="meta">${esc(first.clients)} clients, ${esc(first.transport)}, ${(first.seconds ?? 0).toFixed(1)} s measured</p>`;
      sections += legend(ok);
      sections += `<div class="charts">${throughputChart(scenario, ok)}`;
      const n = Math.max(...ok.map(([, r]) => steps(r).length));
      for (let i = 0; i < n; i++) sections += latencyChart(scenario, ok, i);
      sections += "</div>";
    }
    sections += "</section>";
  }
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:20px}h2{font-size:17px;margin:28px 0 4px}
.charts{display:flex;flex-wrap:wrap;gap:12px}
.chart{border:1px solid #ddd;background:#fff}
.title{font-size:13px;font-weight:600;text-anchor:middle}
.label{font-size:11px;text-anchor:middle;fill:#555}
.tick{font-size:10px;text-anchor:middle;fill:#555}
.axis{stroke:#333}.grid{stroke:#eee}
.curve{fill:none;stroke-width:2}
.legend span{margin-right:14px}.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
.meta{color:#555;margin:0}.failed{color:#b00}
</style></head><body>
<h1>${esc(title)}</h1>
<p class="meta">Generated ${esc(generated.toISOString())}. Throughput: deliveries per second in each rate step. Latency: the
distribution of each step, per quantile (log scale).</p>
${sections}
</body></html>
`;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const [dir, ...scenarios] = process.argv.slice(2);
  if (!dir || !scenarios.length) {
    console.error("usage: node bench/report.mjs RESULTS_DIR SCENARIO...");
    process.exit(2);
  }
  process.stdout.write(buildReport(dir, scenarios));
}
