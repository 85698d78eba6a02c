// Resource forms: create and edit a resource field by field, through the
// same apply API as `portcullis apply -f` and the YAML editor, so the
// gateway's validation is the only one. An error that names a field
// ("field address: ...") is shown next to that field; fields the form does
// not show are kept from the stored resource, so editing never drops them.

import { h, clear, message } from "./dom.js";
import { request, describe, fieldOf, enc } from "./api.js";

// Status fields the gateway computes: never sent back.
const STATUS = ["learned_host_key", "public_key", "public_key_created"];

/**
 * resourceForm returns a form for kind. fields: [{name, label, type, ...}]
 * where type is "text" (default), "list" (comma or space separated),
 * "lines" (one item a line), "map" (k=v, comma separated), "select"
 * (options), "bool" or a path "subjects.users" into a nested object.
 * initial is the stored resource when editing (its name is then fixed),
 * or null to create. onDone(result) runs after a successful apply.
 */
export function resourceForm(kind, fields, initial, onDone) {
  const editing = !!initial;
  const out = h("div", { class: "status", "data-role": "form-result" });
  const slots = {};
  const inputs = {};
  const rows = fields.map((f) => {
    const el = control(f, initial ? read(initial, f.name) : f.value);
    if (editing && f.key) el.readOnly = true;
    inputs[f.name] = el;
    slots[f.name] = h("span", { class: "field-error", "data-error-for": f.name, role: "alert" });
    return h("label", { class: "field" + (f.wide ? " wide" : ""), "data-field": f.name },
      h("span", {}, f.label, f.required ? " *" : ""), el,
      f.hint ? h("small", { class: "hint" }, f.hint) : null, slots[f.name]);
  });
  const submit = h("button", { type: "submit" }, editing ? "Save" : "Create");
  const form = h("form", { class: "box resource-form", "data-form": "resource-" + kind.toLowerCase(), onsubmit: async (ev) => {
    ev.preventDefault();
    for (const s of Object.values(slots)) s.textContent = "";
    for (const el of Object.values(inputs)) el.removeAttribute("aria-invalid");
    clear(out);
    const obj = structuredClone(initial || {});
    for (const k of STATUS) delete obj[k];
    obj.kind = kind;
    for (const f of fields) write(obj, f.name, value(f, inputs[f.name]));
    submit.disabled = true;
    try {
      const res = await request("POST", "/api/v1/apply", [obj]);
      clear(out, message("ok", `${kind} ${obj.target ? obj.target + "/" : ""}${obj.name} ${res.created?.length ? "created" : res.updated?.length ? "updated" : "unchanged"}.`),
        (res.warnings || []).map((w) => message("info", "Warning: " + w)));
      if (onDone) await onDone(res, obj);
    } catch (err) {
      const text = describe(err);
      const name = fieldOf(text);
      // The field itself, else the closest one under it ("subjects"
      // names the first subject field) or above it ("labels.env").
      const f = fields.find((x) => x.name === name) || fields.find((x) => x.name.startsWith(name + ".")) ||
        fields.find((x) => name.startsWith(x.name + "."));
      if (f) {
        slots[f.name].textContent = text.slice(Math.max(0, text.indexOf("field " + name)));
        inputs[f.name].setAttribute("aria-invalid", "true");
        inputs[f.name].focus();
      }
      clear(out, h("pre", { class: "msg msg-error apply-error", role: "alert" }, text));
    } finally {
      submit.disabled = false;
    }
  } },
  h("h3", {}, (editing ? "Edit " : "New ") + kind + (editing ? " " + (initial.target ? initial.target + "/" : "") + initial.name : "")),
  h("div", { class: "form-grid" }, rows),
  h("div", { class: "row" }, submit), out);
  return form;
}

function control(f, v) {
  const attrs = { name: f.name, placeholder: f.placeholder || "", required: !!f.required, autocomplete: "off" };
  switch (f.type) {
    case "select":
      return h("select", { name: f.name }, f.options.map((o) => {
        const [val, label] = Array.isArray(o) ? o : [o, o];
        return h("option", { value: val, selected: val === (v ?? "") }, label);
      }));
    case "bool":
      return h("input", { name: f.name, type: "checkbox", checked: !!v });
    case "lines":
      return h("textarea", { ...attrs, rows: 3, class: "mono", value: Array.isArray(v) ? v.join("\n") : v || "" });
    case "list":
      return h("input", { ...attrs, type: "text", value: Array.isArray(v) ? v.join(", ") : v || "" });
    case "map":
      return h("input", { ...attrs, type: "text", value: v && typeof v === "object" ? Object.entries(v).map(([k, x]) => k + "=" + x).join(", ") : "" });
    default:
      return h("input", { ...attrs, type: "text", value: v ?? "" });
  }
}

function value(f, el) {
  switch (f.type) {
    case "bool":
      return el.checked || undefined;
    case "lines":
      return nonEmpty(el.value.split("\n").map((s) => s.trim()).filter(Boolean));
    case "list":
      return nonEmpty(el.value.split(/[\s,]+/).filter(Boolean));
    case "map": {
      const m = {};
      for (const part of el.value.split(",").map((s) => s.trim()).filter(Boolean)) {
        const i = part.indexOf("=");
        // "k" without "=" goes to the gateway as is, for it to refuse.
        m[i < 0 ? part : part.slice(0, i).trim()] = i < 0 ? "" : part.slice(i + 1).trim();
      }
      return Object.keys(m).length ? m : undefined;
    }
    default:
      return el.value.trim() || undefined;
  }
}

function nonEmpty(a) {
  return a.length ? a : undefined;
}

// read and write follow a dotted path; write drops empty values (and
// empty parents) so the stored document stays as apply would write it.
function read(obj, path) {
  return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

function write(obj, path, v) {
  const keys = path.split(".");
  let o = obj;
  for (const k of keys.slice(0, -1)) {
    if (o[k] == null || typeof o[k] !== "object") o[k] = {};
    o = o[k];
  }
  const last = keys[keys.length - 1];
  if (v === undefined) delete o[last];
  else o[last] = v;
  if (keys.length > 1 && Object.keys(o).length === 0) delete obj[keys[0]];
}

/**
 * deleteResource asks, then deletes kind/name (name may be TARGET/NAME for
 * an account); the gateway refuses a delete others depend on, and says so.
 */
export async function deleteResource(kind, name) {
  if (!confirm(`Delete ${kind} ${name}? This cannot be undone.`)) return false;
  await request("DELETE", `/api/v1/resources/${enc(kind.toLowerCase())}/${name.split("/").map(enc).join("/")}`);
  return true;
}

/** editorPanel is a slot that shows one form at a time, with a Close button. */
export function editorPanel() {
  const el = h("section", { class: "hidden", "data-section": "form" });
  return {
    el,
    show(form) {
      el.classList.remove("hidden");
      clear(el, h("div", { class: "row" }, h("span", { class: "grow" }),
        h("button", { type: "button", class: "secondary", onclick: () => this.close() }, "Close")), form);
      el.scrollIntoView({ block: "nearest" });
      const first = form.querySelector("input:not([readonly]), select, textarea");
      if (first) first.focus();
    },
    close() {
      el.classList.add("hidden");
      el.replaceChildren();
    },
  };
}
