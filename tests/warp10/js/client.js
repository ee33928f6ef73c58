// Drives the node with SenX's official Node.js library, one call per run:
//   node client.js '{"endpoint": "...", "write": "...", "read": "..."}' STEP
// and prints the library's answer as JSON, for tests/warp10/test_clients.py to check
// against the node's own fetch.
const { Warp10 } = require("@senx/warp10");

const cfg = JSON.parse(process.argv[2]);
const step = process.argv[3];
const w10 = new Warp10({ endpoint: cfg.endpoint, silent: true });
const T = (ms) => new Date(ms).toISOString();

const steps = {
  update: () => w10.update(cfg.write, [
    { timestamp: 1000, className: "js.temp", labels: { room: "a b" }, value: 21.5 },
    { timestamp: 2000, className: "js.temp", labels: { room: "a b" }, value: 22.5 },
    { timestamp: 1000, className: "js.name", labels: {}, value: "hello world é" },
    "3000// js.flag{} T",
    { timestamp: 1500, lat: 48.5, lng: -4.25, elev: 10, className: "js.pos", labels: {},
      value: 0.00001 },
    { timestamp: 1600, className: "js.pos", labels: {}, value: 1e21 },
  ]),
  meta: () => w10.meta(cfg.write, [
    { className: "js.temp", labels: { room: "a b" }, attributes: { unit: "C" } },
  ]),
  // ISO 8601 start and stop, the library's default format ('formatted', from json)
  "fetch-formatted": () => w10.fetch(cfg.read, "~js.*", {}, T(0), T(5)),
  "fetch-json": () => w10.fetch(cfg.read, "js.temp", { room: "a b" }, T(0), T(5), "json"),
  "fetch-text": () => w10.fetch(cfg.read, "~js.*", {}, T(0), T(5), "text"),
  "fetch-fulltext": () => w10.fetch(cfg.read, "~js.*", {}, T(0), T(5), "fulltext"),
  // now (ISO) and a numeric timespan
  "fetch-timespan": () => w10.fetch(cfg.read, "~js.*", {}, T(1), 1000),
  "delete-range": () => w10.delete(cfg.write, "js.temp", { room: "a b" }, T(0), T(1)),
  "delete-all": () => w10.delete(cfg.write, "js.flag", {}, "", "", true),
};

steps[step]().then(
  (out) => { process.stdout.write(JSON.stringify(out)); },
  (err) => { process.stderr.write(String(err && err.stack || err)); process.exit(1); },
);
