// Where the worker's CPU goes on a request, as workerd's V8 profiler sees it: samples the
// isolate through `wrangler dev --inspector-port` while this script sends `count` requests
// one at a time, then prints one JSON line of microseconds per request by step.
// Usage: node --experimental-websocket profile.mjs <inspector-port> <url> <token> <workspace> <count>
const [port, url, token, workspace, count] = process.argv.slice(2);
setTimeout(() => {
  console.error("profile.mjs: no answer within 2 minutes");
  process.exit(1);
}, 120_000).unref();

const socket = new WebSocket(`ws://127.0.0.1:${port}/ws`, {
  headers: { origin: "http://127.0.0.1" },
});
let next = 0;
const pending = new Map();
socket.onmessage = (message) => {
  const reply = JSON.parse(message.data);
  const waiting = pending.get(reply.id);
  // wrangler's proxy echoes each command before its answer; only `stop` answers with data.
  if (waiting && (reply.result || reply.error || waiting.method !== "Profiler.stop")) {
    pending.delete(reply.id);
    waiting.resolve(reply.result);
  }
};
const send = (method, params = {}) =>
  new Promise((resolve) => {
    next += 1;
    pending.set(next, { method, resolve });
    socket.send(JSON.stringify({ id: next, method, params }));
  });
await new Promise((resolve, reject) => {
  socket.onopen = resolve;
  socket.onerror = reject;
});

const headers = { authorization: `Bearer ${token}`, "x-workspace-id": workspace };
const get = async () => {
  const answer = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
  await answer.text();
  return answer.headers.get("x-cache-status");
};
for (let i = 0; i < 50; i++) await get();
await send("Profiler.enable");
await send("Profiler.setSamplingInterval", { interval: 100 });
// One profile of a few hundred requests: with thousands, workerd's inspector stopped
// answering (and the isolate with it) in a full run.
const statuses = {};
await send("Profiler.start");
for (let i = 0; i < Number(count); i++) {
  const status = await get();
  statuses[status] = (statuses[status] ?? 0) + 1;
}
const { profile } = await send("Profiler.stop");

// A wasm function's step, from its Rust path; JavaScript and workerd's own by origin.
const steps = [
  ["token check", /jsonwebtoken|hmac|sha2|::token::|access::/],
  ["JSON", /serde_json|serde::/],
  ["KV and object calls", /worker::kv|KvStore|generations|durable/i],
  ["response", /response|Headers|reply::|cached_body/i],
  ["allocation", /dlmalloc|alloc::/],
  ["async runtime (wasm-bindgen futures)", /js_sys::futures|wasm_bindgen::/],
];
const stepOf = ({ functionName: name, url: source }) => {
  if (name === "(idle)") return null;
  if (name === "(program)") return "workerd (outside JavaScript)";
  if (name === "(garbage collector)") return "garbage collection";
  if (name.startsWith("js-to-wasm") || name.startsWith("wasm-to-js")) return "JS-wasm crossings";
  if (source.includes("wasm")) {
    const found = steps.find(([, pattern]) => pattern.test(name));
    return found ? found[0] : "other worker code";
  }
  return source ? "JavaScript glue (bindings, shim)" : "runtime built-ins";
};
const [micros, byFunction] = [{}, {}];
const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
profile.samples.forEach((id, i) => {
  const frame = nodes.get(id).callFrame;
  const step = stepOf(frame);
  if (!step) return;
  const us = profile.timeDeltas[i] ?? 0;
  micros[step] = (micros[step] ?? 0) + us;
  const where = frame.url ? ` ${frame.url.split("/").pop()}:${frame.lineNumber + 1}` : "";
  const name = `${frame.functionName || "(anonymous)"}${where} [${step}]`;
  byFunction[name] = (byFunction[name] ?? 0) + us;
});
const heaviest = (table, top) =>
  Object.entries(table)
    .sort(([, a], [, b]) => b - a)
    .slice(0, top)
    .map(([name, us]) => [name.replace(/::h[0-9a-f]{16}/g, ""), Math.round(us / Number(count))]);
const byStep = Object.fromEntries(heaviest(micros));
const busy = Object.values(byStep).reduce((a, b) => a + b, 0);
console.log(
  JSON.stringify({
    requests: Number(count),
    statuses,
    cpuMicrosPerRequest: busy,
    byStep,
    heaviestFunctions: heaviest(byFunction, 12),
  }),
);
// The inspector's proxy does not answer a close: the socket would hold the process open.
process.exit(0);
