// What the browser tests share: Debian's Chromium headless through playwright-core (skipped with a
// reason when it is absent), `ferrio serve` started on a free port, and the admin UI's login form.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const interop = path.resolve(here, "..");

export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const FERRIO_BIN = process.env.FERRIO_BIN ?? path.join(interop, "..", "target/debug/ferrio");
/** The official browser bundle, served by `ferrio serve --client-dist`. */
export const CLIENT_DIST = path.join(interop, "node_modules/socket.io-client/dist");
/** The built admin web app of @socket.io/admin-ui. */
export const ADMIN_UI_DIST = path.join(interop, "node_modules/@socket.io/admin-ui/ui/dist");

/** Why a browser test cannot run here (Chromium or one of `files` missing), or false. */
export function skipReason(files = []) {
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (scripts/test.sh installs Debian's package)`;
  const missing = files.find((f) => !existsSync(f));
  return missing ? `no ${missing} (npm ci in interop/, cargo build)` : false;
}

export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
      "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
}

/** Starts `ferrio serve --port 0 <args>` with the official bundle; resolves to `{ p, url }` once it listens. */
export function startServe(args = []) {
  return new Promise((resolve, reject) => {
    const all = ["serve", "--port", "0", "--client-dist", CLIENT_DIST, "--log", "warn", ...args];
    const p = spawn(FERRIO_BIN, all, { stdio: ["ignore", "pipe", "inherit"] });
    const timer = setTimeout(() => reject(new Error("ferrio serve did not start")), 20000);
    p.stdout.setEncoding("utf8");
    p.stdout.on("data", (chunk) => {
      const m = chunk.match(/listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ p, url: m[1] });
      }
    });
    p.on("exit", (code) => reject(new Error(`ferrio serve exited with ${code}`)));
  });
}

/**
 * Opens the admin UI served at `url`/admin/ in a new page of `context` and logs in as admin:s3cret;
 * resolves to the page once the app holds a session.
 */
export async function adminLogin(context, url) {
  // The app's fonts and icons come from CDNs: refused at once rather than left to time out offline.
  await context.route((u) => !u.href.startsWith(url), (route) => route.abort());
  const page = await context.newPage();
  await page.goto(`${url}/admin/`, { waitUntil: "domcontentloaded" });
  // The login dialog: server URL, user name, password.
  const form = page.locator("form");
  await form.locator("input[type=text]").nth(0).fill(url);
  await form.locator("input[type=text]").nth(1).fill("admin");
  await form.locator("input[type=password]").fill("s3cret");
  await form.locator("button[type=submit]").click();
  await page.waitForFunction(() => localStorage.getItem("session_id"), null, { timeout: 15000 });
  return page;
}
