// The live dashboard: one EventSource on /dashboard/feed, one sample a
// second, each series kept for the last 90 seconds and drawn as an SVG
// sparkline. Plain JS, no library. Errors land in #js-errors and in
// body[data-errors] (the browser test reads both).
"use strict";

(function () {
  const KEEP = 90;
  const errors = [];
  const $ = (id) => document.getElementById(id);

  function reportError(message) {
    errors.push(String(message));
    const box = $("js-errors");
    box.textContent = errors.join("\n");
    box.hidden = false;
    document.body.dataset.errors = String(errors.length);
  }
  window.addEventListener("error", (e) => reportError(e.message || "script error"));
  window.addEventListener("unhandledrejection", (e) =>
    reportError("unhandled rejection: " + ((e.reason && e.reason.message) || e.reason)));
  const consoleError = console.error.bind(console);
  console.error = (...args) => { reportError(args.join(" ")); consoleError(...args); };
  window.aeturnisDashboard = { errors };

  const series = new Map();
  function push(name, value) {
    if (!series.has(name)) series.set(name, []);
    const points = series.get(name);
    points.push(typeof value === "number" && isFinite(value) ? value : null);
    if (points.length > KEEP) points.shift();
    return points;
  }

  const SVG = "http://www.w3.org/2000/svg";
  function spark(svg, points) {
    if (!svg) return;
    const values = points.filter((v) => v !== null);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    if (values.length < 2) return;
    const max = Math.max(...values), min = Math.min(0, ...values);
    const span = max - min || 1;
    // the history stretches over the whole width until it is KEEP long
    const step = 120 / Math.max(points.length - 1, 1);
    const coords = [];
    points.forEach((v, i) => {
      if (v === null) return;
      const x = i * step;
      const y = 31 - ((v - min) / span) * 29;
      coords.push(x.toFixed(2) + "," + y.toFixed(2));
    });
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", coords.join(" "));
    const first = coords[0].split(",")[0], last = coords[coords.length - 1].split(",")[0];
    const area = document.createElementNS(SVG, "path");
    area.setAttribute("d", "M" + first + ",32 L" + coords.join(" L") + " L" + last + ",32 Z");
    svg.appendChild(area);
    svg.appendChild(line);
  }

  const integer = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
  const decimal = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });
  const fmtInt = (v) => (v === null || v === undefined ? "–" : integer.format(v));
  const fmtMs = (v) => (v === null || v === undefined ? "–" : (v < 10 ? v.toFixed(2) : decimal.format(v)) + " ms");
  const fmtPct = (v) => (v === null || v === undefined ? "–" : decimal.format(v * 100) + " %");
  function fmtBytes(v) {
    if (v === null || v === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return decimal.format(v) + " " + units[i];
  }
  function text(id, value) { const el = $(id); if (el) el.textContent = value; }

  let previous = null;
  function rate(now, before, seconds) {
    return before === undefined || seconds <= 0 ? null : Math.max(0, now - before) / seconds;
  }

  function limiterRow(name) {
    let row = document.querySelector('tr[data-preset="' + name + '"]');
    if (row) return row;
    row = document.createElement("tr");
    row.dataset.preset = name;
    for (const cls of ["name", "checks", "allowed", "violations", "checks-rate", "violations-rate"]) {
      const td = document.createElement("td");
      td.className = cls;
      if (cls.endsWith("-rate")) {
        const svg = document.createElementNS(SVG, "svg");
        svg.setAttribute("class", cls === "violations-rate" ? "spark bad" : "spark");
        svg.setAttribute("viewBox", "0 0 120 32");
        svg.setAttribute("preserveAspectRatio", "none");
        td.appendChild(svg);
      }
      row.appendChild(td);
    }
    row.querySelector(".name").textContent = name;
    $("limiters").appendChild(row);
    return row;
  }

  function render(s) {
    const dt = previous ? (s.at_ms - previous.at_ms) / 1000 : 0;
    // Redis
    text("redis-latency", fmtMs(s.redis.latency_ms));
    text("redis-memory", fmtBytes(s.redis.used_memory));
    spark($("spark-latency"), push("latency", s.redis.latency_ms));
    spark($("spark-memory"), push("memory", s.redis.used_memory));
    // cache
    text("cache-hit-rate", fmtPct(s.cache.hit_rate));
    text("cache-hits", fmtInt(s.cache.hits));
    text("cache-hits-label", s.cache.hits === 1 ? "hit" : "hits");
    text("cache-misses", fmtInt(s.cache.misses));
    text("cache-misses-label", s.cache.misses === 1 ? "miss" : "misses");
    text("cache-stale", fmtInt(s.cache.stale || 0));
    const ops = previous ? rate(s.cache.ops, previous.cache.ops, dt) : null;
    text("cache-ops", ops === null ? "–" : decimal.format(ops));
    spark($("spark-ops"), push("ops", ops));
    let windowRate = null;
    if (previous) {
      const served = (s.cache.hits + (s.cache.stale || 0)) - (previous.cache.hits + (previous.cache.stale || 0));
      const reads = served + s.cache.misses - previous.cache.misses;
      const hits = served;
      windowRate = reads > 0 ? hits / reads : null;
    }
    spark($("spark-hit-rate"), push("hit-rate", windowRate === null ? s.cache.hit_rate : windowRate));
    // sessions
    text("sessions-active", s.sessions ? fmtInt(s.sessions.active) : "–");
    text("sessions-users", s.sessions ? fmtInt(s.sessions.unique_users) : "–");
    spark($("spark-sessions"), push("sessions", s.sessions ? s.sessions.active : null));
    // locks
    text("locks-acquired", fmtInt(s.locks.acquisitions));
    text("locks-waits", fmtInt(s.locks.waits));
    text("locks-failed", fmtInt(s.locks.failures));
    text("locks-hand-offs", fmtInt(s.locks.hand_offs));
    const acquiredRate = previous ? rate(s.locks.acquisitions, previous.locks.acquisitions, dt) : null;
    spark($("spark-locks"), push("locks", acquiredRate));
    // limiters
    for (const l of s.limiters) {
      const row = limiterRow(l.preset);
      const before = previous && previous.limiters.find((p) => p.preset === l.preset);
      row.querySelector(".checks").textContent = fmtInt(l.checks);
      row.querySelector(".allowed").textContent = fmtInt(l.allowed);
      const violations = row.querySelector(".violations");
      violations.textContent = fmtInt(l.violations);
      const vRate = before ? rate(l.violations, before.violations, dt) : null;
      violations.classList.toggle("hot", vRate !== null && vRate > 0);
      spark(row.querySelector(".checks-rate svg"), push("checks-" + l.preset, before ? rate(l.checks, before.checks, dt) : null));
      spark(row.querySelector(".violations-rate svg"), push("violations-" + l.preset, vRate));
    }
    // write-behind and zones, when the server has them
    $("card-write-behind").hidden = !s.write_behind;
    if (s.write_behind) {
      text("wb-lag", fmtInt(s.write_behind.lag));
      text("wb-dead", fmtInt(s.write_behind.dead_letters));
      spark($("spark-wb"), push("wb-lag", s.write_behind.lag));
    }
    const zones = Array.isArray(s.zones) ? s.zones : [];
    $("card-zones").hidden = zones.length === 0;
    if (zones.length) {
      const list = $("zones");
      const entries = zones.map((z) => [z.zone, z.online]).sort((a, b) => b[1] - a[1]);
      const top = Math.max(1, ...entries.map((e) => e[1]));
      list.replaceChildren(...entries.map(([zone, n]) => {
        const li = document.createElement("li");
        const name = document.createElement("span"), bar = document.createElement("div"), count = document.createElement("span");
        name.textContent = zone; count.textContent = fmtInt(n);
        bar.className = "bar"; bar.style.width = (100 * n / top).toFixed(1) + "%";
        li.append(name, bar, count);
        return li;
      }));
    }
    previous = s;
    document.body.dataset.samples = String(Number(document.body.dataset.samples) + 1);
  }

  function status(kind, message) {
    $("status").className = "status " + kind;
    text("status-text", message);
  }

  const feed = new EventSource("/dashboard/feed");
  feed.addEventListener("sample", (event) => {
    let sample;
    try {
      sample = JSON.parse(event.data);
    } catch (e) {
      reportError("bad sample: " + e.message);
      return;
    }
    render(sample);
    status(sample.redis.healthy ? "live" : "down",
      (sample.redis.healthy ? "live · " : "Redis unreachable · ") + new Date(sample.at_ms).toLocaleTimeString());
  });
  // EventSource reconnects by itself; a dropped feed is a state, not a page error.
  feed.onerror = () => status("down", "feed interrupted, reconnecting…");
})();
