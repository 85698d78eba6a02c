// Dashboard: what is happening now and lately. Live sessions, sign-ins
// and denials per hour over the last day (a bar chart drawn as SVG), the
// latest changes and each target's status; it refreshes itself every few
// seconds. It reads only the API everyone else uses, so each role sees
// what that role may read (a user without a role: their own sessions and
// events).

import { h, table, time } from "../dom.js";
import { get, getPage } from "../api.js";
import { load, quietLoad, poll, sessionLink } from "./common.js";

const SVG = "http://www.w3.org/2000/svg";
const HOURS = 24;

export async function dashboardPage(main, ctx) {
  const live = h("section", { "data-section": "live-sessions" });
  const chart = h("section", { class: "box", "data-section": "activity" });
  const changes = h("section", { "data-section": "changes" });
  const status = h("section", { "data-section": "target-status" });
  main.append(
    h("p", { class: "hint" }, "Refreshes every 5 seconds."),
    h("h2", {}, "Live sessions"), live,
    h("h2", {}, "Sign-ins and denials, last 24 hours"), chart,
    h("div", { class: "dash-grid" },
      h("div", {}, h("h2", {}, "Recent changes"), changes),
      h("div", {}, h("h2", {}, "Targets"), status)));

  let first = true;
  const refresh = async () => {
    const fill = first ? load : quietLoad;
    first = false;
    const since = new Date(Date.now() - HOURS * 3600e3).toISOString();
    // One read of the day's events feeds the chart, the changes and the
    // targets' status.
    const events = getPage("/api/v1/audit", { since, limit: "1000" }).then((p) => p.rows);
    await Promise.all([
      fill(live, ctx, async () => table([
        { label: "Session", get: (s) => (s.recorded ? sessionLink(s.id) : h("code", {}, s.id)), nowrap: true },
        { label: "User", get: (s) => s.user },
        { label: "Target", get: (s) => s.target },
        { label: "Account", get: (s) => s.account },
        { label: "Action", get: (s) => s.action + (s.command ? ": " + s.command : "") },
        { label: "Since", get: (s) => time(s.started), nowrap: true },
      ], await get("/api/v1/sessions"), [h("p", {}, "Nobody is connected right now."),
        h("p", { class: "hint" }, "Targets shows the ssh line to connect with; sessions appear here as they start.")])),
      fill(chart, ctx, async () => activityChart(await events)),
      fill(changes, ctx, async () => table([
        { label: "Time", get: (e) => time(e.time), nowrap: true },
        { label: "By", get: (e) => e.user },
        { label: "Change", get: (e) => change(e) },
      ], (await events).filter((e) => /^(resource\.|setting\.|apikey\.(create|revoke)|password\.|mfa\.)/.test(e.type)).slice(0, 8),
      "No changes in the last 24 hours.")),
      fill(status, ctx, async () => targetStatus(await get("/api/v1/resources/target"), await events)),
    ]);
  };
  await poll(ctx, 5000, refresh);
}

// activityChart draws successful sign-ins and denials per hour as bars.
function activityChart(events) {
  const now = Date.now();
  const start = now - HOURS * 3600e3;
  const ok = new Array(HOURS).fill(0);
  const denied = new Array(HOURS).fill(0);
  for (const e of events) {
    const i = Math.floor((Date.parse(e.time) - start) / 3600e3);
    if (i < 0 || i >= HOURS) continue;
    if (e.type === "login.success") ok[i]++;
    else if (e.outcome === "deny" || e.type === "login.failure" || e.type === "request.deny") denied[i]++;
  }
  const max = Math.max(1, ...ok, ...denied);
  const W = 720, H = 140, bw = W / HOURS;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H + 18}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  const total = (a) => a.reduce((x, y) => x + y, 0);
  svg.setAttribute("aria-label", `${total(ok)} sign-ins and ${total(denied)} denials in the last 24 hours`);
  const el = (tag, attrs, text) => {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
    if (text !== undefined) n.textContent = text;
    svg.appendChild(n);
    return n;
  };
  for (let i = 0; i < HOURS; i++) {
    const hour = new Date(start + i * 3600e3);
    for (const [j, a, cls] of [[0, ok, "bar-ok"], [1, denied, "bar-deny"]]) {
      if (!a[i]) continue;
      const bh = Math.max(2, (a[i] / max) * H);
      const r = el("rect", { x: i * bw + 2 + j * (bw / 2 - 2), y: H - bh, width: bw / 2 - 2, height: bh, class: cls });
      const t = document.createElementNS(SVG, "title");
      t.textContent = `${hour.toISOString().slice(11, 13)}:00 UTC: ${a[i]} ${j ? "denied" : "sign-ins"}`;
      r.appendChild(t);
    }
    if (i % 3 === 0) el("text", { x: i * bw + 2, y: H + 14, class: "axis" }, hour.toISOString().slice(11, 13) + "h");
  }
  el("line", { x1: 0, y1: H, x2: W, y2: H, class: "axis-line" });
  return h("div", {},
    h("p", { class: "legend" }, h("span", { class: "key key-ok" }), ` Sign-ins: ${total(ok)}  `,
      h("span", { class: "key key-deny" }), ` Denials: ${total(denied)}`, h("span", { class: "hint" }, " (UTC hours; the last 1000 events)")),
    svg);
}

// targetStatus is each target's host key state and its last connection:
// a session that started, or an error reaching it.
function targetStatus(targets, events) {
  const last = new Map();
  for (const e of events) { // newest first: the first seen is the last
    if (!e.target || last.has(e.target)) continue;
    if (e.type === "session.start") last.set(e.target, { ok: true, e });
    else if (e.type === "target.error" || e.type === "hostkey.mismatch") last.set(e.target, { ok: false, e });
  }
  return table([
    { label: "Target", get: (t) => h("a", { href: "#/targets" }, t.name), nowrap: true },
    { label: "Status", get: (t) => {
      const l = last.get(t.name);
      if (!l) return h("span", { class: "badge" }, "no connection today");
      return h("span", { class: "badge " + (l.ok ? "ok" : "bad"), title: l.e.message }, (l.ok ? "reachable " : "error ") + time(l.e.time).slice(11));
    } },
    { label: "Host key", get: (t) => (t.host_key ? "pinned" : t.learned_host_key ? "learned, not pinned" : "not yet seen") },
  ], targets, "No targets you may reach.");
}

// change says what an event changed: an apply names its resources.
function change(e) {
  const d = e.detail || {};
  const names = [...(d.created || []).map((n) => "created " + n), ...(d.updated || []).map((n) => "updated " + n)];
  if (e.type === "resource.apply" && names.length) return names.join(", ");
  return e.message;
}
