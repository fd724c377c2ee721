// Loads sidewatch's dashboard in Debian's Chromium (headless, fresh
// profile) through playwright-core, and prints one JSON object on stdout
// with what the page drew: every uPlot chart's series labels and data, the
// panels showing "no data", the RED and alerts tables, requests that left
// the endpoint's origin, dialogs and page errors. With --ack NAME it clicks
// the acknowledge button of alert NAME and waits until the page lists it
// as acknowledged. tests/it/dashboard.rs runs it and asserts on the JSON.
//
// node dashboard.mjs --url http://127.0.0.1:PORT/ --screenshot out.png [--ack NAME]

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

function option(name) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const url = option("--url");
const screenshot = option("--screenshot");
const ack = option("--ack");
const executablePath = process.env.SIDEWATCH_TEST_CHROMIUM || "/usr/bin/chromium";
if (!url || !screenshot) {
  console.error("usage: node dashboard.mjs --url URL --screenshot FILE [--ack ALERTNAME]");
  process.exit(2);
}

const profile = mkdtempSync(join(tmpdir(), "sidewatch-chromium-"));
const report = { outsideRequests: [], dialogs: [], pageErrors: [], failedRequests: [] };
let browser;
try {
  // launchPersistentContext takes the fresh --user-data-dir as its own.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
    viewport: { width: 1400, height: 900 },
    timeout: 60_000,
  });
  browser = context;
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(30_000);
  const origin = new URL(url).origin;
  page.on("request", (r) => { if (!r.url().startsWith(origin)) report.outsideRequests.push(r.url()); });
  page.on("requestfailed", (r) => report.failedRequests.push(r.url()));
  page.on("pageerror", (e) => report.pageErrors.push(String(e)));
  page.on("dialog", async (d) => { report.dialogs.push(d.message()); await d.dismiss(); });

  const start = new URL(url);
  start.searchParams.set("range", "900");
  start.searchParams.set("refresh", "0");
  await page.goto(start.toString());
  await page.waitForSelector('body[data-refreshes]');

  const read = () => page.evaluate(() => {
    const charts = {};
    for (const [id, u] of Object.entries(window.sidewatchDashboard.charts)) {
      charts[id] = { labels: u.series.slice(1).map((s) => s.label), data: u.data };
    }
    const rows = (selector) => [...document.querySelectorAll(selector + " tbody tr")]
      .map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent.trim()));
    return {
      charts,
      noData: [...document.querySelectorAll(".panel")]
        .filter((p) => p.querySelector(".nodata")).map((p) => p.id.replace(/^panel-/, "")),
      red: rows("#red-table"),
      alerts: rows("#alerts-table"),
      checks: rows("#checks-table"),
    };
  });
  Object.assign(report, await read());

  if (ack) {
    const row = page.locator("#alerts-table tbody tr", { hasText: ack }).first();
    await row.locator("button.ack").click();
    await page.locator("#alerts-table tbody tr", { hasText: ack })
      .locator(".acknowledged").first().waitFor();
    report.afterAck = (await read()).alerts;
  }
  // Back to the top, so the sticky header is drawn there in the full-page shot.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: screenshot, fullPage: true });
  report.screenshot = screenshot;
} catch (e) {
  report.error = String(e && e.stack ? e.stack : e);
} finally {
  if (browser) await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(report));
process.exit(report.error ? 1 : 0);
