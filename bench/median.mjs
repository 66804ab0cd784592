// Picks, among the rounds of one scenario against one server (bench/run.sh with ROUNDS > 1), the round
// whose figure is the median, and prints it as the JSON the table reads; one line to stderr shows every
// round's figure, so that the spread the host adds stays in view.
// The figure: RSS per connection for idle, the server's CPU per delivered message otherwise.
// Usage: node bench/median.mjs SCENARIO SERVER ROUND_JSON... > SCENARIO-SERVER.json
import { readFileSync } from "node:fs";

const [scenario, server, ...files] = process.argv.slice(2);
const figure = (r) =>
  scenario === "idle" ? r.server?.rss_per_connection_bytes : r.server?.cpu_us_per_message;

const rounds = [];
for (const f of files) {
  let r;
  try {
    r = JSON.parse(readFileSync(f, "utf8").trim().split("\n").at(-1));
  } catch {
    continue;
  }
  // A failed round (or one that delivered nothing) has no figure and is not a candidate.
  if (!r.failed && Number.isFinite(figure(r))) rounds.push(r);
}
if (rounds.length === 0) {
  console.log(JSON.stringify({ scenario, failed: true }));
  console.error(`${scenario} ${server}: no round succeeded`);
  process.exit(0);
}
const values = rounds.map(figure);
const sorted = [...rounds].sort((a, b) => figure(a) - figure(b));
// With an even count, the lower middle: a real round, not an average of two.
const median = sorted[Math.floor((sorted.length - 1) / 2)];
median.rounds = values;
console.log(JSON.stringify(median));
const fmt = (v) => (scenario === "idle" ? `${(v / 1024).toFixed(1)}K` : v.toFixed(2));
console.error(
  `${scenario.padEnd(8)} ${server.padEnd(13)} rounds ${values.map(fmt).join(" ")}  median ${fmt(figure(median))}` +
    (files.length > rounds.length ? `  (${files.length - rounds.length} failed)` : ""),
);
