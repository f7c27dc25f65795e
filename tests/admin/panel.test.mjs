// Browser tests of the cache panel: Debian's chromium driven by playwright-core against a
// real origin (its own database and its own redis-server, so Redis can be stopped).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:net";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { readdirSync, readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const origin = path.join(root, "target/debug/origin");
const secret = "panel-secret-panel-secret-panel-secret-01";
const baseDb = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const shots = process.env.PANEL_SCREENSHOTS; // a folder: the screenshots of docs/ are made here

const freePort = () => new Promise((resolve) => {
  const s = createServer().listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
});

async function until(what, probe, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try { if (await probe()) return; } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`${what} not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let redis, server, browser, page, base, dbName, token;

before(async () => {
  dbName = `panel_${randomBytes(5).toString("hex")}`;
  execFileSync("psql", [baseDb, "-qc", `CREATE DATABASE ${dbName}`]);
  const redisPort = await freePort();
  redis = spawn("redis-server", ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    DATABASE_URL: baseDb.replace(/\/[^/]*$/, `/${dbName}`),
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    LISTEN_ADDR: `127.0.0.1:${port}`,
    JWT_SECRET: secret,
    CACHE_NAMESPACE: `p${randomBytes(4).toString("hex")}`,
    SEED_DEMO_CONTACTS: "3000",
    RUST_LOG: "warn",
  };
  token = execFileSync(origin, ["token", "--user", "operator", "--workspace", "*", "--admin"], { env }).toString().trim();
  server = spawn(origin, ["serve"], { env, stdio: "ignore" });
  await until("origin health", async () => (await fetch(`${base}/api/cache-settings/health`)).ok, 60000);
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("dialog", (d) => d.accept());
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
  redis?.kill("SIGKILL");
  await new Promise((r) => setTimeout(r, 300));
  try { execFileSync("psql", [baseDb, "-qc", `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`]); } catch { /* best effort */ }
});

const taken = new Set();
const shot = async (name) => {
  taken.add(`${name}.png`);
  if (shots) await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
};

test("an operator signs in with a token and sees every component healthy", async () => {
  await page.goto(`${base}/admin`);
  await shot("signin");
  await page.fill("#token", token);
  await page.fill("#workspace", "15213");
  await page.click("button[type=submit]");
  for (const c of ["origin", "redis", "database"]) {
    await page.waitForSelector(`[data-component=${c}][data-state=up]`);
  }
  // This origin has no EDGE_URL: the panel says what that means for the edge.
  assert.match(await page.textContent('[data-component="edge push"] small'), /EDGE_URL not set/);
  assert.equal(await page.isVisible("#operator"), true);
});

test("a changed TTL is persisted and shown again after a reload", async () => {
  await page.waitForFunction(() => document.querySelector("#t-contactsTTL").value !== "");
  await page.fill("#t-contactsTTL", "77");
  await page.click("#settings button[type=submit]");
  await page.waitForSelector("#settings-status.ok");
  await page.reload();
  await page.waitForFunction(() => document.querySelector("#t-contactsTTL").value === "77");
  const stored = await (await fetch(`${base}/api/cache-settings/workspace/15213/settings`, { headers: { Authorization: `Bearer ${token}` } })).json();
  assert.equal(stored.data.cacheConfig.contactsTTL, 77);
});

test("a TTL out of bounds is refused with a message and changes nothing", async () => {
  await page.fill("#t-searchTTL", "0");
  await page.click("#settings button[type=submit]");
  await page.waitForSelector("#settings-status.error");
  assert.match(await page.textContent("#settings-status"), /between 1 and 86400/);
  const stored = await (await fetch(`${base}/api/cache-settings/workspace/15213/settings`, { headers: { Authorization: `Bearer ${token}` } })).json();
  assert.equal(stored.data.cacheConfig.searchTTL, 120);
});

test("after an invalidation the next counts come from the database", async () => {
  await page.click("#counts-refresh");
  await page.click("#counts-refresh");
  await page.waitForFunction(() => /from memory/.test(document.querySelector("#action-status").textContent));
  await page.click("#invalidate");
  await page.waitForFunction(() => /Invalidated/.test(document.querySelector("#action-status").textContent));
  await page.waitForSelector("#counts-note:not([hidden])");
  await page.click("#counts-refresh");
  await page.waitForFunction(() => /from database/.test(document.querySelector("#action-status").textContent));
  assert.equal(await page.isVisible("#counts-note"), false);
});

test("the performance test shows one bar per layer with real timings", async () => {
  await page.click("#perf");
  await page.waitForSelector("#chart-perf rect.bar");
  const bars = await page.$$eval("#chart-perf rect.bar", (rects) => rects.length);
  assert.ok(bars >= 3, `${bars} bars`);
  // The live charts draw from deltas between refreshes: wait for a few before the screenshot.
  await page.waitForFunction(
    () => [...document.querySelectorAll("#chart-hits path")].some((p) => p.getAttribute("d").includes("L")),
    null,
    { timeout: 15000 },
  );
  await page.waitForSelector("#top tr");
  await page.click("[data-sort=hitRate]");
  assert.equal(await page.getAttribute("[data-sort=hitRate]", "aria-pressed"), "true");
  assert.equal(await page.textContent("#top tr td"), "15213");
  await shot("dashboard");
});

test("changes made elsewhere appear as they happen, and message history can be turned on", async () => {
  await page.waitForFunction(() => document.querySelector("#changes-state").textContent === "following");
  const headers = { Authorization: `Bearer ${token}`, "X-Workspace-ID": "15213", "Content-Type": "application/json" };
  const list = await (await fetch(`${base}/api/boards/1/contacts?per_page=1`, { headers })).json();
  const contact = list.data.contacts[0];
  const patched = await fetch(`${base}/api/workspaces/15213/contacts/${contact.id}`, {
    method: "PATCH", headers, body: JSON.stringify({ favorite: !contact.favorite }),
  });
  assert.equal(patched.status, 200);
  await page.waitForSelector(`#changes li[data-scope=board]`);
  assert.match(await page.textContent("#changes li[data-scope=board]"), new RegExp(`board ${contact.board_id}$`));

  await page.check("#f-messageHistory");
  await page.click("#settings button[type=submit]");
  await page.waitForSelector("#settings-status.ok");
  await page.waitForSelector("#changes li[data-scope=settings]");
  const stored = await (await fetch(`${base}/api/cache-settings/workspace/15213/settings`, { headers })).json();
  assert.equal(stored.data.features.messageHistory, true);
  const conversations = await (await fetch(`${base}/api/workspaces/15213/conversations?limit=1`, { headers })).json();
  const id = conversations.data.conversations[0].id;
  const read = async () => (await (await fetch(`${base}/api/conversations/${id}/messages?limit=5`, { headers })).json()).data;
  assert.equal((await read())._cache.status, "MISS");
  assert.equal((await read())._cache.status, "HIT");
  await page.waitForSelector("#changes li[data-scope=workspace]");
  await shot("changes");
});

test("the search box finds contacts and messages as the user types, with where each answer came from", async () => {
  await page.fill("#search-q", "gra");
  await page.fill("#search-q", "grace hop");
  await page.waitForFunction(() => /Grace Hopper/.test(document.querySelector("#search-contacts li")?.textContent ?? ""));
  assert.match(await page.textContent("#search-contacts-meta"), /found · (MISS|HIT|BYPASS) · \w+ · [\d.]+ ms/);
  await page.fill("#search-q", "invoice");
  await page.waitForSelector("#search-messages li mark");
  assert.equal((await page.textContent("#search-messages li mark")).toLowerCase(), "invoice");
  assert.match(await page.textContent("#search-messages-meta"), /found · (MISS|HIT|BYPASS) · \w+ · [\d.]+ ms/);
  // A message's text is shown as text: markup in it never becomes elements.
  const html = await page.innerHTML("#search-messages li");
  assert.doesNotMatch(html.replace(/<\/?mark>|<\/?small>/g, ""), /<[a-z]/i);
  await page.fill("#search-q", "grace");
  await page.waitForFunction(() => /Grace/.test(document.querySelector("#search-contacts li")?.textContent ?? ""));
  await shot("search");
});

test("health turns red when Redis is stopped", async () => {
  redis.kill("SIGKILL");
  await page.waitForSelector("[data-component=redis][data-state=down]", { timeout: 15000 });
  assert.match(await page.textContent("[data-component=redis] small"), /\S/);
  await page.setViewportSize({ width: 390, height: 844 });
  await shot("phone");
});

test("every screenshot the documents show is one this suite takes", () => {
  const documents = ["README.md", ...readdirSync(path.join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];
  const shown = documents.flatMap((f) => [...readFileSync(path.join(root, f), "utf8").matchAll(/([\w-]+\.png)\)/g)].map((m) => m[1]));
  assert.ok(shown.length >= 5, `${shown}`);
  for (const png of shown) assert.ok(taken.has(png), `${png} is shown but no test takes it`);
});
