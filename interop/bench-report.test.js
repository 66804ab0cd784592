// bench/report.mjs in headless Chromium: the report built from real bench results (fixtures/bench,
// see its README) shows, per scenario, a throughput chart with a bar per rate step and server, and a
// latency chart per step with one curve per server; every chart is drawn (non-empty boxes), nothing is
// fetched, and a screenshot of the page is not blank.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath, pathToFileURL } from "node:url";
import path from "node:path";
import { launchChromium, skipReason } from "./lib/browser.js";
import { buildReport, load } from "../bench/report.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const FIXTURE = path.join(here, "fixtures/bench");
const skip = skipReason();
const SCENARIOS = ["echo", "fanout"];
const SERVERS = ["node", "ferrio"];

let browser;
let dir;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "ferrio-report-"));
  if (skip) return;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  rmSync(dir, { recursive: true, force: true });
});

test("the fixture holds two rate steps per run, with latency quantiles", () => {
  for (const scenario of SCENARIOS) {
    for (const server of SERVERS) {
      const r = load(FIXTURE, scenario, server);
      assert.ok(r && !r.failed, `${scenario}-${server}`);
      assert.equal(r.steps.length, 2);
      for (const s of r.steps) assert.ok(s.latency_us.quantiles.length >= 4 && s.deliveries_per_s > 0);
    }
  }
});

test("the report opens in Chromium and draws every chart", { skip, timeout: 60000 }, async () => {
  const file = path.join(dir, "report.html");
  writeFileSync(file, buildReport(FIXTURE, SCENARIOS));
  const context = await browser.newContext({ viewport: { width: 1500, height: 900 } });
  try {
    const fetched = [];
    await context.route((u) => u.protocol !== "file:", (route) => {
      fetched.push(route.request().url());
      return route.abort();
    });
    const page = await context.newPage();
    await page.goto(pathToFileURL(file).href, { waitUntil: "load" });

    const drawn = await page.evaluate(() => {
      const box = (e) => {
        const b = e.getBoundingClientRect();
        return b.width > 0 && b.height > 0;
      };
      const out = {};
      for (const section of document.querySelectorAll("section[data-scenario]")) {
        const s = section.dataset.scenario;
        const charts = [...section.querySelectorAll("svg.chart")];
        out[s] = {
          charts: charts.map((c) => ({ kind: c.dataset.kind, step: c.dataset.step, drawn: box(c) })),
          bars: {},
          curves: {},
          points: {},
        };
        for (const bar of section.querySelectorAll("rect.bar")) {
          const k = bar.dataset.server;
          if (box(bar)) out[s].bars[k] = (out[s].bars[k] ?? 0) + 1;
        }
        for (const c of section.querySelectorAll("path.curve")) {
          const k = c.dataset.server;
          const segments = (c.getAttribute("d").match(/[ML]/g) ?? []).length;
          if (box(c) && c.getTotalLength() > 0) out[s].curves[k] = [...(out[s].curves[k] ?? []), segments];
        }
        for (const p of section.querySelectorAll("circle.point")) {
          const k = p.dataset.server;
          if (box(p)) out[s].points[k] = (out[s].points[k] ?? 0) + 1;
        }
      }
      return out;
    });
    assert.deepEqual(Object.keys(drawn).sort(), [...SCENARIOS].sort());
    for (const scenario of SCENARIOS) {
      const d = drawn[scenario];
      assert.deepEqual(
        d.charts.map((c) => `${c.kind}${c.step ?? ""}:${c.drawn}`),
        ["throughput:true", "latency0:true", "latency1:true"],
        scenario,
      );
      for (const server of SERVERS) {
        const run = load(FIXTURE, scenario, server);
        const nq = run.steps.map((s) => s.latency_us.quantiles.length);
        assert.equal(d.bars[server], run.steps.length, `${scenario} ${server}: a bar per step`);
        assert.deepEqual(d.curves[server], nq, `${scenario} ${server}: a curve per step, a vertex per quantile`);
        assert.equal(d.points[server], nq[0] + nq[1], `${scenario} ${server}: the quantile points`);
      }
      assert.equal(d.bars.socketioxide, undefined, "no socketioxide run in the fixture");
    }
    // The bars are to scale: in fan-out the higher rate step delivers more.
    const heights = await page.$$eval('section[data-scenario="fanout"] rect.bar[data-server="ferrio"]',
      (bars) => bars.map((b) => b.getBoundingClientRect().height));
    assert.ok(heights[1] > heights[0], `${heights}`);

    // A screenshot, not blank: many pixels that are not the white background, in several colours.
    const png = await page.screenshot({ fullPage: true });
    assert.ok(png.length > 10000, `${png.length} bytes`);
    const ink = await page.evaluate(async (b64) => {
      const img = new Image();
      img.src = `data:image/png;base64,${b64}`;
      await img.decode();
      const canvas = document.createElement("canvas");
      canvas.width = img.width;
      canvas.height = img.height;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(img, 0, 0);
      const px = ctx.getImageData(0, 0, img.width, img.height).data;
      let dark = 0;
      const colors = new Set();
      for (let i = 0; i < px.length; i += 4) {
        if (px[i] < 240 || px[i + 1] < 240 || px[i + 2] < 240) dark++;
        colors.add((px[i] >> 4) * 256 + (px[i + 1] >> 4) * 16 + (px[i + 2] >> 4));
      }
      return { dark, total: px.length / 4, colors: colors.size };
    }, png.toString("base64"));
    assert.ok(ink.dark > ink.total * 0.01, `ink: ${JSON.stringify(ink)}`);
    assert.ok(ink.colors >= 5, `colours: ${JSON.stringify(ink)}`);
    assert.deepEqual(fetched, [], "the report fetches nothing");
  } finally {
    await context.close();
  }
});
