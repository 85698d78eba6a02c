// Pieces every page uses: a section that loads, and a filter form.

import { h, clear, message, formValues } from "../dom.js";
import { describe } from "../api.js";

/**
 * load fills section with what fn returns (a node), showing a loading line
 * meanwhile and the error, as a message, if it fails. A 403 is a message
 * too: a page must never break because a role may not read one part.
 */
export async function load(section, ctx, fn) {
  clear(section, message("info", "Loading…"));
  try {
    const node = await fn();
    if (ctx.live()) clear(section, node);
  } catch (err) {
    if (ctx.live()) clear(section, message("error", describe(err)));
  }
}

/**
 * filterForm is a row of inputs with a submit button; onSubmit gets the
 * non-empty values. It submits once at creation when initial is true.
 */
export function filterForm(name, fields, onSubmit, button = "Show") {
  const form = h("form", { class: "filters", "data-form": name, onsubmit: (ev) => {
    ev.preventDefault();
    onSubmit(withTimes(formValues(form)));
  } }, fields, h("button", { type: "submit" }, button));
  return form;
}

/**
 * withTimes turns since and until given as a duration back from now
 * ("24h", "1h30m", "7d"), as the CLI takes them, into the RFC 3339 times
 * the API takes; anything else is passed on for the API to judge.
 */
export function withTimes(v) {
  const out = { ...v };
  for (const k of ["since", "until"]) {
    const ms = out[k] && duration(out[k]);
    if (ms) out[k] = new Date(Date.now() - ms).toISOString();
  }
  return out;
}

// The same forms as the gateway's (Go package internal/duration): Go's
// units plus d for 24 hours, each part a number and a unit.
const units = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 };
const part = "(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:ns|us|µs|ms|s|m|h|d)";
const form = new RegExp(`^(?:${part})+$`);

function duration(s) {
  if (!form.test(s)) return 0;
  let ms = 0;
  for (const [, n, u] of s.matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)/g)) ms += Number(n) * units[u];
  return ms;
}

/** action runs fn on click, showing its failure in out; the button is disabled meanwhile. */
export function actionButton(label, out, fn, attrs = {}) {
  const b = h("button", { type: "button", ...attrs, onclick: async () => {
    b.disabled = true;
    try {
      await fn();
    } catch (err) {
      clear(out, message("error", describe(err)));
    } finally {
      b.disabled = false;
    }
  } }, label);
  return b;
}

/** pre shows a value as indented JSON. */
export function pre(v) {
  return h("pre", { class: "code" }, typeof v === "string" ? v : JSON.stringify(v, null, 2));
}

/**
 * poll runs fn now and then every ms milliseconds while the page is
 * shown: lists refresh themselves instead of asking for a Refresh click.
 * The page's cleanup stops it; a run never overlaps the previous one, and
 * a hidden tab skips its turns.
 */
export function poll(ctx, ms, fn) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped || !ctx.live()) return;
    if (document.visibilityState !== "hidden") {
      try { await fn(); } catch { /* the section shows its own error */ }
    }
    if (!stopped && ctx.live()) timer = setTimeout(tick, ms);
  };
  ctx.onCleanup(() => { stopped = true; clearTimeout(timer); });
  return tick();
}

/**
 * quietLoad is load without the "Loading…" line: a refresh keeps the old
 * rows on screen until the new ones arrive.
 */
export async function quietLoad(section, ctx, fn) {
  try {
    const node = await fn();
    if (ctx.live()) clear(section, node);
  } catch (err) {
    if (ctx.live()) clear(section, message("error", describe(err)));
  }
}

/**
 * pagedList shows a newest-first listing a page at a time: render(rows)
 * makes the table; when the API says older rows exist (X-Next-Before), an
 * "Older" button reads the next page with before=, and "Newest" goes back.
 * While the newest page is shown it refreshes itself every liveMs (0: never),
 * unless the reader has unfolded a row's detail.
 */
export function pagedList(section, ctx, fetchPage, render, what, liveMs = 0) {
  let current = null; // {params, before}
  const body = async (params, before) => {
    const q = { ...params };
    if (before) q.before = before;
    const { rows, next } = await fetchPage(q);
    return h("div", {}, render(rows),
      h("div", { class: "row pager" },
        before ? h("button", { type: "button", class: "secondary", "data-action": "newest", onclick: () => show(params, "") }, "Newest") : null,
        next ? h("button", { type: "button", class: "secondary", "data-action": "older", onclick: () => show(params, next) }, "Older " + what)
          : h("span", { class: "hint", "data-role": "end" }, rows.length ? "No older " + what + "." : "")));
  };
  const show = (params, before) => {
    current = { params, before };
    return load(section, ctx, () => body(params, before));
  };
  if (liveMs > 0) {
    let started = false;
    poll(ctx, liveMs, async () => {
      // The first turn is the page's own first show.
      if (!started) { started = true; return; }
      if (!current || current.before || section.querySelector("details[open]")) return;
      const { params } = current;
      const node = await body(params, "").catch(() => null);
      if (node && ctx.live() && current.params === params && !current.before) clear(section, node);
    });
  }
  return show;
}

/**
 * recordingHref links to a session's recording, opened at time at (an
 * RFC 3339 time, or empty for the start).
 */
export function recordingHref(session, at) {
  const q = new URLSearchParams({ id: session });
  if (at) q.set("at", at);
  return "#/recordings?" + q.toString();
}

/** sessionLink is a session id as a link to its recording. */
export function sessionLink(session, at) {
  if (!session) return "";
  return h("a", { href: recordingHref(session, at), class: "nowrap", "data-role": "session-link", title: "Open the recording of " + session }, h("code", {}, session));
}

/** hashParams reads the query of the route (#/page?k=v). */
export function hashParams() {
  const i = location.hash.indexOf("?");
  return new URLSearchParams(i < 0 ? "" : location.hash.slice(i + 1));
}
