// Drives the swarmshare web view in headless Chromium (for tests/suite/web.rs).
//
// usage: node swarm_view.mjs URL PEERS OUT_DIR [TIMEOUT_SECS]
//
// Opens URL, saves OUT_DIR/swarm-mid.png while some peer is part-way (0-100%),
// waits until the page shows PEERS peers other than the node serving it, every one at
// 100%, with no page reload, and saves OUT_DIR/swarm-complete.png. Prints one JSON line
// with what it saw; exits 0 on success, 1 otherwise.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [url, peersArg, outDir, timeoutArg] = process.argv.slice(2);
const peers = Number(peersArg);
const timeoutMs = Number(timeoutArg || 60) * 1000;
if (!url || !peers || !outDir) {
  console.error("usage: node swarm_view.mjs URL PEERS OUT_DIR [TIMEOUT_SECS]");
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const seen = { url, loads: 0, mid: null, rows: [], ok: false };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  page.on("load", () => { seen.loads += 1; });
  await page.goto(url);
  const deadline = Date.now() + timeoutMs;
  let lastMid = 0;
  while (Date.now() < deadline) {
    seen.rows = await page.$$eval("#nodes tr", (trs) =>
      trs.map((tr) => ({ id: tr.dataset.id, state: tr.dataset.state, pct: Number(tr.dataset.pct),
                         self: tr.classList.contains("self") })));
    const others = seen.rows.filter((r) => !r.self);
    // Mid-transfer: refreshed at most every second while some peer is part-way, so the
    // last one shows measured rates.
    if (others.some((r) => r.pct > 0 && r.pct < 100) && Date.now() - lastMid >= 1000) {
      seen.mid = join(outDir, "swarm-mid.png");
      await page.screenshot({ path: seen.mid, fullPage: true });
      lastMid = Date.now();
    }
    if (others.length >= peers && others.every((r) => r.pct === 100)) {
      seen.ok = true;
      break;
    }
    await page.waitForTimeout(100);
  }
  seen.complete = join(outDir, "swarm-complete.png");
  await page.screenshot({ path: seen.complete, fullPage: true });
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
process.exit(seen.ok && seen.loads === 1 ? 0 : 1);
