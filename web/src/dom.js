// DOM helpers. Every piece of data reaches the page as a text node or an
// attribute value, never as markup: the console shows what users, targets
// and recordings contain, and any of it may be hostile.

/**
 * h builds an element. attrs: plain attributes, except on* (listeners),
 * value/checked/disabled/selected (properties) and class. children:
 * strings (text nodes), nodes, arrays of them; null and false are skipped.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value" || k === "checked" || k === "disabled" || k === "selected") el[k] = v;
    else if (k === "style") throw new Error("style attributes break the CSP: use a class");
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** clear empties an element and appends the children. */
export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/**
 * table renders rows under columns [{label, get: row => string|Node,
 * nowrap}]; nowrap keeps ids and dates on one line. An empty list says so,
 * and what to do next (empty: a string, a node or an array), rather than
 * showing a bare header.
 */
export function table(columns, rows, empty = "Nothing to show.") {
  if (!rows || rows.length === 0) return h("div", { class: "empty", "data-role": "empty" }, empty);
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c.label)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) => h("td", { class: c.nowrap ? "nowrap" : null }, cell(c.get(r)))))))));
}

function cell(v) {
  if (v === null || v === undefined) return "";
  if (v instanceof Node || Array.isArray(v)) return v;
  return String(v);
}

/** message is a status line: kind "error", "ok" or "info". */
export function message(kind, text) {
  return h("p", { class: "msg msg-" + kind, role: kind === "error" ? "alert" : "status" }, text);
}

/** field is a labelled input inside a form. */
export function field(label, input) {
  return h("label", { class: "field" }, h("span", {}, label), input);
}

/** input returns a text input; opts are its attributes. */
export function input(name, opts = {}) {
  return h("input", { name, type: "text", autocomplete: "off", ...opts });
}

/** select returns a select of [value, label] or value options. */
export function select(name, options, value) {
  return h("select", { name }, options.map((o) => {
    const [v, l] = Array.isArray(o) ? o : [o, o];
    return h("option", { value: v, selected: v === value }, l);
  }));
}

/** formValues reads a form's named fields, trimmed, skipping empty ones. */
export function formValues(form) {
  const out = {};
  for (const [k, v] of new FormData(form).entries()) {
    const s = String(v).trim();
    if (s !== "") out[k] = s;
  }
  return out;
}

/** time shows an RFC 3339 time as "2026-01-02 15:04:05Z"; empty stays empty. */
export function time(t) {
  if (!t) return "";
  const d = new Date(t);
  if (isNaN(d)) return String(t);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

/** list joins an array for a table cell. */
export function list(a) {
  return Array.isArray(a) ? a.join(", ") : "";
}

/** labels shows a map as k=v pairs. */
export function labels(m) {
  return m ? Object.entries(m).map(([k, v]) => k + "=" + v).join(", ") : "";
}
