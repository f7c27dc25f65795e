// The cache panel: a page over the origin's public API (../shared/API.md), no framework.
const $ = (id) => document.getElementById(id);
const REFRESH_MS = 2000;
const HISTORY = 90; // points kept for the charts: three minutes at one every two seconds
const LAYERS = [["memory", "var(--mem)", "#3358d4"], ["redis_cache", "var(--redis)", "#d9480f"], ["database", "var(--db)", "#7048e8"]];
const session = { token: "", ws: "", edge: "", claims: null, history: [], timer: null, events: null, lastEventId: null };
const CHANGES_SHOWN = 20;

function showError(err) {
  const box = $("alert");
  box.textContent = err instanceof Error ? err.message : String(err);
  box.hidden = false;
}
function clearError() { $("alert").hidden = true; }

function decodeClaims(token) {
  const part = token.split(".")[1];
  if (!part) throw new Error("That is not a JWT: it should have three parts separated by dots.");
  const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
  return JSON.parse(json);
}

/** Calls the origin; throws an Error whose message is the API's own words. */
async function api(path, { method = "GET", body, auth = true } = {}) {
  const headers = { "X-Workspace-ID": session.ws };
  if (auth) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new Error(`The origin cannot be reached (${e.message}).`);
  }
  let json;
  try { json = await res.json(); } catch { throw new Error(`The origin answered ${res.status} without JSON.`); }
  if (!json.success) throw new Error(`${json.error?.message ?? "Request failed"} (${json.error?.code ?? res.status})`);
  return json.data;
}

function el(tag, attrs = {}, text) {
  const node = document.createElementNS(tag === "svg" || attrs.svg ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml", tag);
  for (const [k, v] of Object.entries(attrs)) if (k !== "svg") node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
const svgEl = (tag, attrs, text) => el(tag, { ...attrs, svg: true }, text);

// ---- sign in -------------------------------------------------------------------------
function signIn(token, ws, edge) {
  const claims = decodeClaims(token.trim());
  if (!claims.workspaces?.includes(ws) && !(claims.role === "admin" && claims.workspaces?.includes("*"))) {
    throw new Error(`This token does not grant workspace ${ws}.`);
  }
  Object.assign(session, { token: token.trim(), ws, edge: edge.trim(), claims, history: [] });
  sessionStorage.setItem("edgecache-panel", JSON.stringify({ token: session.token, ws, edge: session.edge }));
  $("signin-view").hidden = true;
  $("dashboard").hidden = false;
  $("session").hidden = false;
  $("ws-switch").value = ws;
  $("operator").hidden = !(claims.role === "admin" && claims.workspaces?.includes("*"));
  clearError();
  loadSettings().catch(showError);
  refresh();
  clearInterval(session.timer);
  session.timer = setInterval(refresh, REFRESH_MS);
  session.lastEventId = null;
  $("changes").replaceChildren();
  watchChanges();
}

function signOut() {
  sessionStorage.removeItem("edgecache-panel");
  session.events?.close();
  clearInterval(session.timer);
  location.reload();
}

// ---- live changes (API.md "Live changes") ---------------------------------------------
/**
 * Follows the workspace's changes instead of polling for them: each is listed, settings
 * are reloaded when they change and counts shown are marked once they moved. An
 * EventSource cannot send the token, so each connection opens with a fresh single-use
 * ticket, and a reconnection names the last change seen so none is missed.
 */
async function watchChanges() {
  session.events?.close();
  const ws = session.ws;
  let ticket;
  try {
    ({ ticket } = await api(`/api/workspaces/${encodeURIComponent(ws)}/events/ticket`, { method: "POST" }));
  } catch (e) {
    $("changes-state").textContent = `not followed: ${e.message}`;
    return;
  }
  if (ws !== session.ws) return;
  const query = new URLSearchParams({ ticket });
  if (session.lastEventId) query.set("last_event_id", session.lastEventId);
  const source = new EventSource(`/api/workspaces/${encodeURIComponent(ws)}/events?${query}`);
  session.events = source;
  source.onopen = () => { $("changes-state").textContent = "following"; };
  source.addEventListener("change", (e) => {
    if (e.lastEventId) session.lastEventId = e.lastEventId;
    showChange(JSON.parse(e.data));
  });
  source.onerror = () => {
    source.close();
    if (session.events !== source) return;
    $("changes-state").textContent = "reconnecting…";
    setTimeout(() => { if (session.events === source) watchChanges(); }, REFRESH_MS);
  };
}

function showChange(change) {
  const what = change.id == null ? change.scope : `${change.scope} ${change.id}`;
  const item = el("li", { "data-scope": change.scope }, `${new Date(change.at).toLocaleTimeString()} ${what}`);
  const list = $("changes");
  list.prepend(item);
  while (list.children.length > CHANGES_SHOWN) list.lastElementChild.remove();
  if (change.scope === "settings" || change.scope === "workspace") loadSettings().catch(showError);
  if ((change.scope === "counts" || change.scope === "workspace") && $("counts").children.length) $("counts-note").hidden = false;
}

// ---- health and live statistics ------------------------------------------------------
function badge(name, state, detail) {
  const li = el("li", { "data-component": name, "data-state": state });
  li.append(el("span", { class: "dot", "aria-hidden": "true" }), el("strong", {}, name), el("small", {}, detail));
  return li;
}

/** The edge's health badge and, when it answers, its own metrics (per worker isolate). */
async function edgeHealth() {
  if (!session.edge) return [badge("edge", "unknown", "no edge URL given at sign-in"), null];
  const edge = session.edge.replace(/\/$/, "");
  try {
    const [h, m] = await Promise.all([fetch(`${edge}/health`).then((r) => r.json()), fetch(`${edge}/metrics`).then((r) => r.json())]);
    const state = h.kv_available ? "up" : "down";
    return [badge("edge", state, `${h.status}, ${h.edge_location}, KV ${h.kv_available ? "available" : "unavailable"}`), m.metrics];
  } catch (e) {
    return [badge("edge", "down", `unreachable: ${e.message}`), null];
  }
}

/** This origin's outbox to the edge (EDGE_URL): changes waiting and the last one's lag. */
function pushBadge(push) {
  if (!push) return badge("edge push", "unknown", "EDGE_URL not set: the edge keeps to its TTLs");
  const lag = push.lastLagMs == null ? "no change sent yet" : `last change reached the edge ${push.lastLagMs} ms after it was made`;
  const state = push.edgeReachable ? "up" : "down";
  return badge("edge push", state, `${push.outboxDepth} waiting; ${push.edgeReachable ? lag : "the edge refuses or cannot be reached, retrying"}`);
}

async function refresh() {
  try {
    const [health, status, [edge, edgeMetrics]] = await Promise.all([
      api("/api/cache-settings/health"),
      api("/api/cache-settings/status"),
      edgeHealth(),
    ]);
    const c = health.components;
    const describe = (x) => (x.up ? `up, ${x.latencyMs ?? "?"} ms` : x.reason ?? "down");
    $("health").replaceChildren(
      badge("origin", health.healthy ? "up" : "down", health.healthy ? `healthy, up ${health.uptimeSecs} s` : "degraded: a dependency is down"),
      c.redis.configured
        ? badge("redis", c.redis.up ? "up" : "down", describe(c.redis))
        : badge("redis", "unknown", "not configured: L1 only (set REDIS_URL for L2)"),
      badge("database", c.database.up ? "up" : "down", `${c.database.store}: ${describe(c.database)}`),
      edge,
      pushBadge(status.edgePush),
    );
    record(status, edgeMetrics);
    clearError();
  } catch (e) {
    showError(e);
  }
}

function record(status, edgeMetrics) {
  const s = status.cacheStats;
  session.history.push({ t: Date.now(), memory: s.memoryHits, redis: s.redisHits, misses: s.misses });
  if (session.history.length > HISTORY) session.history.shift();
  const h = session.history;
  const points = h.slice(1).map((p, i) => {
    const q = h[i];
    const dt = (p.t - q.t) / 1000;
    const mem = p.memory - q.memory, red = p.redis - q.redis, db = p.misses - q.misses;
    const total = mem + red + db;
    const pct = (x) => (total ? (100 * x) / total : 0);
    return { memory: pct(mem), redis_cache: pct(red), database: pct(db), rate: total / dt };
  });
  const last = points.at(-1) ?? { rate: 0 };
  const kpi = (label, value) => { const d = el("div", { class: "kpi" }); d.append(el("b", {}, value), el("span", {}, label)); return d; };
  $("kpis").replaceChildren(
    kpi("hit rate (all time)", s.hitRate),
    kpi("memory hits", s.memoryHits), kpi("Redis hits", s.redisHits), kpi("misses", s.misses),
    kpi("stale served", s.staleServed), kpi("requests / s", last.rate.toFixed(1)),
    ...(edgeMetrics ? [
      kpi("edge hit rate", `${(100 * edgeMetrics.cache.hit_rate).toFixed(2)}%`),
      kpi("edge KV hits", edgeMetrics.cache.kv_hits),
      kpi("edge p99, ms", edgeMetrics.performance.p99_response_time_ms),
    ] : []),
  );
  $("live-stamp").textContent = `updated ${new Date().toLocaleTimeString()}`;
  lineChart($("chart-hits"), points, LAYERS.map(([k, , color]) => [k, color]), 100);
  lineChart($("chart-rate"), points, [["rate", "#1a7f4b"]]);
  latencyChart($("chart-latency"), status.latencyMs);
  $("legend-hits").replaceChildren(...LAYERS.map(([k, , color]) => { const s = el("span", {}, k); s.prepend(el("i", { style: `background:${color}` })); return s; }));
  if (!$("operator").hidden) operatorTable(status.topWorkspaces ?? []);
}

function lineChart(svg, points, series, fixedMax) {
  const W = 400, H = 160, L = 34, B = 18;
  const max = fixedMax ?? Math.max(1, ...points.flatMap((p) => series.map(([k]) => p[k])));
  const x = (i) => L + (i * (W - L - 6)) / Math.max(1, HISTORY - 2);
  const y = (v) => H - B - (v / max) * (H - B - 8);
  const nodes = [svgEl("line", { x1: L, y1: H - B, x2: W, y2: H - B, stroke: "#ccc" })];
  for (const frac of [0, 0.5, 1]) nodes.push(svgEl("text", { x: 2, y: y(max * frac) + 3 }, (max * frac).toFixed(max < 10 ? 1 : 0)));
  for (const [key, color] of series) {
    const d = points.map((p, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(p[key]).toFixed(1)}`).join("");
    if (d) nodes.push(svgEl("path", { d, fill: "none", stroke: color, "stroke-width": 2 }));
  }
  svg.replaceChildren(...nodes);
}

function latencyChart(svg, latency) {
  const rows = LAYERS.map(([k, , color]) => [k, color, latency?.[k] ?? { p50: 0, p95: 0, p99: 0 }]);
  const max = Math.max(0.001, ...rows.map(([, , l]) => l.p99));
  const nodes = [];
  rows.forEach(([name, color, l], r) => {
    const y0 = 10 + r * 50;
    nodes.push(svgEl("text", { x: 2, y: y0 + 10 }, `${name} (${l.samples ?? 0})`));
    [["p50", 1], ["p95", 0.7], ["p99", 0.45]].forEach(([p, opacity], j) => {
      const w = (l[p] / max) * 200;
      nodes.push(svgEl("rect", { x: 100, y: y0 + j * 13, width: Math.max(1, w), height: 11, fill: color, opacity }));
      nodes.push(svgEl("text", { x: 104 + w, y: y0 + j * 13 + 9 }, `${p} ${l[p].toFixed(3)}`));
    });
  });
  svg.replaceChildren(...nodes);
}

let sortBy = "reads";
function operatorTable(rows) {
  session.lastTop = rows;
  const sorted = [...rows].sort((a, b) => b[sortBy] - a[sortBy]);
  $("top").replaceChildren(...sorted.map((r) => {
    const tr = el("tr");
    for (const v of [r.workspaceId, r.reads, r.hits, r.misses, `${r.hitRate.toFixed(1)} %`]) tr.append(el("td", {}, String(v)));
    return tr;
  }));
}

// ---- settings ------------------------------------------------------------------------
const FEATURES = ["contactCounts", "contactLists", "search", "messageHistory"];
const TTLS = ["contactCountsTTL", "contactsTTL", "searchTTL", "messageHistoryTTL"];
let bounds = { minTTL: 1, maxTTL: 86400 };

function fillSettings(s) {
  $("cacheEnabled").checked = s.cacheEnabled;
  for (const f of FEATURES) $(`f-${f}`).checked = s.features[f];
  for (const t of TTLS) {
    const input = $(`t-${t}`);
    input.value = s.cacheConfig[t];
    input.min = bounds.minTTL;
    input.max = bounds.maxTTL;
  }
  $("ttl-bounds").textContent = `(${bounds.minTTL} to ${bounds.maxTTL})`;
}

async function loadSettings() {
  const s = await api(`/api/cache-settings/workspace/${encodeURIComponent(session.ws)}/settings`);
  if (s.bounds) bounds = s.bounds;
  fillSettings(s);
}

async function saveSettings(event) {
  event.preventDefault();
  const status = $("settings-status");
  const cacheConfig = {};
  for (const t of TTLS) {
    const v = Number($(`t-${t}`).value);
    if (!Number.isInteger(v) || v < bounds.minTTL || v > bounds.maxTTL) {
      status.className = "error";
      status.textContent = `${t} must be a whole number between ${bounds.minTTL} and ${bounds.maxTTL} seconds.`;
      return;
    }
    cacheConfig[t] = v;
  }
  const body = { cacheEnabled: $("cacheEnabled").checked, features: Object.fromEntries(FEATURES.map((f) => [f, $(`f-${f}`).checked])), cacheConfig };
  try {
    await api(`/api/cache-settings/workspace/${encodeURIComponent(session.ws)}/settings`, { method: "POST", body });
    await loadSettings();
    status.className = "ok";
    status.textContent = "Saved.";
  } catch (e) {
    status.className = "error";
    status.textContent = e.message;
  }
}

// ---- actions -------------------------------------------------------------------------
async function busy(button, message, work) {
  const status = $("action-status");
  button.disabled = true;
  status.className = "";
  status.textContent = message;
  try {
    status.textContent = await work();
  } catch (e) {
    status.className = "error";
    status.textContent = e.message;
  } finally {
    button.disabled = false;
  }
}

async function readCounts() {
  const c = await api(`/api/cache-settings/workspace/${encodeURIComponent(session.ws)}/counts`);
  const shown = ["total", "open", "closed", "unassigned", "assignedToMe", "highPriority", "needsResponse", "archived"];
  $("counts").replaceChildren(...shown.map((k) => { const d = el("div"); d.append(el("dt", {}, k), el("dd", {}, String(c[k]))); return d; }));
  $("counts-note").hidden = true;
  return `Counts from ${c._source} (${c._cache.status}) in ${c._responseTimeMs} ms.`;
}

function perfChart(p) {
  const svg = $("chart-perf");
  const bars = [["database", p.standard], ["Redis cold", p.redisCold], ["Redis warm", p.redisWarm], ["memory", p.memory]].filter(([, v]) => typeof v?.timeMs === "number");
  const max = Math.max(...bars.map(([, v]) => v.timeMs));
  const nodes = [];
  bars.forEach(([name, v], i) => {
    const y = 10 + i * 40, w = Math.max(1, (v.timeMs / max) * 250);
    nodes.push(svgEl("text", { x: 2, y: y + 16 }, name));
    nodes.push(svgEl("rect", { class: "bar", x: 90, y, width: w, height: 24, fill: ["#7048e8", "#f08c00", "#d9480f", "#3358d4"][i] }));
    nodes.push(svgEl("text", { x: 95 + w, y: y + 16 }, `${v.timeMs} ms`));
  });
  svg.replaceChildren(...nodes);
  svg.removeAttribute("hidden");
}

function wireActions() {
  $("invalidate").addEventListener("click", (e) => {
    if (!confirm(`Invalidate every cached entry of workspace ${session.ws}?`)) return;
    busy(e.currentTarget, "Invalidating…", async () => {
      const r = await api("/api/cache-settings/invalidate", { method: "POST", body: { workspaceId: session.ws } });
      return `Invalidated (${r.patterns.join(", ")}); generation ${r.generation}, ${r.instancesNotified} instance(s) told.`;
    });
  });
  $("warm").addEventListener("click", (e) => busy(e.currentTarget, "Warming… reading counts and page 1 of every board", async () => {
    const r = await api("/api/cache-settings/warm-cache", { method: "POST", body: { workspaceId: session.ws } });
    return `Warmed ${r.entriesWarmed} entries (${r.entriesFilledFromDatabase} from the database) for boards ${r.boards.join(", ")} in ${r.warmupTimeMs} ms.`;
  }));
  $("perf").addEventListener("click", (e) => busy(e.currentTarget, "Measuring…", async () => {
    const r = await api("/api/cache-settings/test-performance", { method: "POST", body: { workspaceId: session.ws } });
    perfChart(r.performance);
    return `Database ${r.performance.standard.timeMs} ms; hit rate ${r.cacheStats.hitRate}.`;
  }));
  $("counts-refresh").addEventListener("click", (e) => busy(e.currentTarget, "Reading counts…", readCounts));
}

// ---- search ----------------------------------------------------------------------------
let searchSeq = 0;
let searchTimer = null;

/** Where an answer came from and how long it took, from its `_cache` block. */
const cacheNote = (c) => `${c.status} · ${c.source} · ${c.response_time_ms} ms`;

/** The server's snippet (escaped text and <mark>) as nodes: only the marks become elements. */
function snippetNodes(html) {
  const tpl = document.createElement("template");
  tpl.innerHTML = html;
  return [...tpl.content.childNodes].map((n) => (n.nodeName === "MARK" ? el("mark", {}, n.textContent) : document.createTextNode(n.textContent)));
}

async function search() {
  const q = $("search-q").value.trim();
  const seq = ++searchSeq;
  if (!q) {
    for (const id of ["search-contacts", "search-messages"]) $(id).replaceChildren();
    for (const id of ["search-contacts-meta", "search-messages-meta"]) $(id).textContent = "";
    return;
  }
  const board = encodeURIComponent($("search-board").value || "1");
  const ws = encodeURIComponent(session.ws);
  const show = (list, meta, work) => work.then((r) => {
    if (seq !== searchSeq) return;
    $(list).replaceChildren(...r.items);
    $(meta).textContent = r.note;
  }, (e) => {
    if (seq !== searchSeq) return;
    $(list).replaceChildren();
    $(meta).textContent = e.message;
  });
  await Promise.all([
    show("search-contacts", "search-contacts-meta", api(`/api/boards/${board}/contacts?search=${encodeURIComponent(q)}&sort_by=relevance&per_page=8`).then((d) => ({
      note: `${d.pagination.total_exact ? d.pagination.total : `${d.pagination.total}+`} found · ${cacheNote(d._cache)}`,
      items: d.contacts.map((c) => { const li = el("li", {}, c.name); li.append(" ", el("small", {}, [c.email, c.company, c.phone].filter(Boolean).join(" · "))); return li; }),
    }))),
    show("search-messages", "search-messages-meta", api(`/api/workspaces/${ws}/messages/search?q=${encodeURIComponent(q)}&limit=8`).then((d) => ({
      note: `${d.hits.length}${d.pagination.has_more ? "+" : ""} found · ${cacheNote(d._cache)}`,
      items: d.hits.map((h) => { const li = el("li"); li.append(...snippetNodes(h.snippet), " ", el("small", {}, `${h.contact.name}, conversation ${h.conversation_id}`)); return li; }),
    }))),
  ]);
}

function wireSearch() {
  const later = () => { clearTimeout(searchTimer); searchTimer = setTimeout(search, 150); };
  $("search-q").addEventListener("input", later);
  $("search-board").addEventListener("change", later);
}

// ---- start ---------------------------------------------------------------------------
$("signin").addEventListener("submit", (e) => {
  e.preventDefault();
  try { signIn($("token").value, $("workspace").value.trim(), $("edge-url").value); } catch (err) { showError(err); }
});
$("sign-out").addEventListener("click", signOut);
$("ws-switch").addEventListener("change", (e) => {
  try { signIn(session.token, e.target.value.trim(), session.edge); } catch (err) { showError(err); }
});
$("settings").addEventListener("submit", saveSettings);
for (const button of document.querySelectorAll("[data-sort]")) {
  button.addEventListener("click", () => {
    sortBy = button.dataset.sort;
    for (const b of document.querySelectorAll("[data-sort]")) b.setAttribute("aria-pressed", String(b === button));
    operatorTable(session.lastTop ?? []);
  });
}
wireActions();
wireSearch();
const saved = sessionStorage.getItem("edgecache-panel");
if (saved) {
  try { const s = JSON.parse(saved); signIn(s.token, s.ws, s.edge ?? ""); } catch (err) { showError(err); }
}
