// Policies: the list, each one as YAML, an editor that applies a YAML
// stream exactly as `portcullis apply -f` does (same validation, errors
// shown verbatim), and the explain box.

import { h, clear, table, list, labels, message, field, input, select } from "../dom.js";
import { get, request, describe } from "../api.js";
import { load, pre } from "./common.js";
import { toYAML } from "../yaml.js";

const TEMPLATE = `kind: Policy
name: NAME
type: target-access
subjects: {users: [alice]}
targets: {names: [web1]}
target_users: [deploy]
actions: [shell, exec]
`;

export async function policiesPage(main, ctx) {
  if (ctx.roles.admin) await adminPart(main, ctx);
  main.append(explainBox(ctx));
}

async function adminPart(main, ctx) {
  const listSec = h("section", { "data-section": "policies" });
  const view = h("section", { class: "box hidden", "data-section": "policy-view" });
  const editorOut = h("div", { class: "status", "data-role": "apply-result" });
  const editor = h("textarea", { name: "yaml", class: "editor", rows: 16, spellcheck: "false", "aria-label": "Policy YAML" });
  const applyBtn = h("button", { type: "submit" }, "Apply");
  const form = h("form", { class: "box", "data-form": "policy-editor", onsubmit: async (ev) => {
    ev.preventDefault();
    applyBtn.disabled = true;
    clear(editorOut);
    try {
      const res = await request("POST", "/api/v1/apply", editor.value, { contentType: "application/yaml" });
      clear(editorOut, applyResult(res));
      await refresh();
    } catch (err) {
      // Apply errors name the document and the field: show them as they are.
      clear(editorOut, h("pre", { class: "msg msg-error apply-error", role: "alert" }, describe(err)));
    } finally {
      applyBtn.disabled = false;
    }
  } },
  h("h2", {}, "Create or edit"),
  h("p", { class: "hint" }, "A YAML stream as for portcullis apply -f; every document is validated, and the whole stream is stored or nothing is."),
  editor,
  h("div", { class: "row" }, applyBtn,
    h("button", { type: "button", class: "secondary", onclick: () => { editor.value = TEMPLATE; editor.focus(); } }, "New policy")),
  editorOut);

  const edit = (p) => {
    editor.value = toYAML(p);
    editor.focus();
    form.scrollIntoView({ block: "nearest" });
  };
  const show = (p) => {
    view.classList.remove("hidden");
    clear(view, h("h2", {}, "Policy " + p.name),
      h("pre", { class: "code", "data-role": "policy-yaml" }, toYAML(p)),
      h("button", { type: "button", onclick: () => edit(p) }, "Edit"));
  };
  const refresh = () => load(listSec, ctx, async () => table([
    { label: "Name", get: (p) => h("button", { type: "button", class: "link", onclick: () => show(p) }, p.name) },
    { label: "Type", get: (p) => p.type },
    { label: "Subjects", get: (p) => subjects(p.subjects) },
    { label: "Targets", get: (p) => targets(p.targets) },
    { label: "Target users", get: (p) => list(p.target_users) },
    { label: "Actions", get: (p) => list(p.actions) },
    { label: "", get: (p) => h("button", { type: "button", class: "secondary", onclick: () => edit(p) }, "Edit") },
  ], await get("/api/v1/resources/policy"), "No policies."));
  main.append(listSec, view, form);
  await refresh();
}

function applyResult(res) {
  const parts = [];
  for (const [k, label] of [["created", "Created"], ["updated", "Updated"], ["unchanged", "Unchanged"]]) {
    if (res && res[k] && res[k].length) parts.push(label + ": " + res[k].join(", "));
  }
  return h("div", {},
    message("ok", "Applied. " + (parts.join(". ") || "Nothing changed.")),
    (res && res.warnings || []).map((w) => message("info", "Warning: " + w)));
}

function subjects(s) {
  if (!s) return "";
  const out = [];
  if (s.users) out.push(...s.users);
  if (s.groups) out.push(...s.groups.map((g) => "group:" + g));
  if (s.service_accounts) out.push(...s.service_accounts.map((a) => "sa:" + a));
  return out.join(", ");
}

function targets(t) {
  if (!t) return "";
  const out = [];
  if (t.names) out.push(...t.names);
  if (t.environments) out.push(...t.environments.map((e) => "env:" + e));
  if (t.labels) out.push(labels(t.labels));
  return out.join(", ");
}

function explainBox(ctx) {
  const out = h("div", { class: "status", "data-role": "explain-result" });
  // Only admins may ask about someone else.
  const user = input("user", { value: ctx.me.name, required: true, readonly: !ctx.roles.admin });
  const form = h("form", { class: "box", "data-form": "explain", onsubmit: async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const req = {};
    for (const k of ["user", "target", "account", "action", "command", "source", "time"]) {
      const v = String(f.get(k) || "").trim();
      if (v) req[k] = v;
    }
    clear(out, message("info", "Asking…"));
    try {
      clear(out, explainResult(await request("POST", "/api/v1/policy/explain", req)));
    } catch (err) {
      clear(out, message("error", describe(err)));
    }
  } },
  h("h2", {}, "Explain"),
  h("p", { class: "hint" }, "May this user do this on this target? The answer names the policy that decided it."),
  h("div", { class: "filters" },
    field("User", user),
    field("Target", input("target", { required: true })),
    field("Account", input("account", { placeholder: "any allowed" })),
    field("Action", select("action", ["shell", "exec", "file-transfer", "tunnel"], "shell")),
    field("Command", input("command")),
    field("Source address", input("source", { required: true, placeholder: "10.0.0.5" })),
    field("At", input("time", { placeholder: "now (RFC 3339)" })),
    h("button", { type: "submit" }, "Explain")),
  out);
  return form;
}

function explainResult(r) {
  return h("div", {},
    message(r.allow ? "ok" : "error", r.allow ? `Allowed by ${r.policy} as ${r.account}` : "Denied: " + r.reason),
    r.target_users && r.target_users.length ? h("p", {}, "Target users allowed: " + r.target_users.join(", ")) : null,
    r.operation ? h("p", {}, "Operation: " + r.operation) : null,
    r.obligations ? h("details", {}, h("summary", {}, "Obligations"), pre(r.obligations)) : null,
    table([
      { label: "Policy", get: (s) => s.policy },
      { label: "Type", get: (s) => s.type },
      { label: "Outcome", get: (s) => s.outcome },
      { label: "Why", get: (s) => s.why },
    ], r.steps, "No policy names this subject."));
}
