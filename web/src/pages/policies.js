// Policies: the list, each one as YAML, an editor that applies a YAML
// stream exactly as `portcullis apply -f` does (same validation, errors
// shown verbatim), and the explain box.

import { h, clear, table, list, labels, message, field, input, select } from "../dom.js";
import { get, request, describe } from "../api.js";
import { load, pre, actionButton } from "./common.js";
import { toYAML } from "../yaml.js";
import { resourceForm, deleteResource, editorPanel } from "../forms.js";

const POLICY_FIELDS = [
  { name: "name", label: "Name", required: true, key: true, placeholder: "ops-web" },
  { name: "type", label: "Type", type: "select", options: ["target-access", "session-recording", "proxy", "kubernetes", "jit"] },
  { name: "subjects.users", label: "Users", type: "list", placeholder: "alice, bob" },
  { name: "subjects.groups", label: "Groups", type: "list", placeholder: "ops" },
  { name: "subjects.service_accounts", label: "Service accounts", type: "list" },
  { name: "targets.names", label: "Targets", type: "list", placeholder: "web1, db1" },
  { name: "targets.environments", label: "Environments", type: "list", placeholder: "prod" },
  { name: "targets.labels", label: "Target labels", type: "map", placeholder: "env=prod" },
  { name: "target_users", label: "Accounts (logins on the targets)", type: "list", placeholder: "deploy, {username}" },
  { name: "actions", label: "Actions", type: "list", placeholder: "shell, exec, file-transfer, tunnel" },
  { name: "source_cidrs", label: "From networks", type: "list", placeholder: "10.0.0.0/8 (empty: anywhere)" },
  { name: "max_session", label: "Longest session", placeholder: "8h" },
  { name: "idle_timeout", label: "Idle timeout", placeholder: "30m" },
  { name: "require_mfa", label: "Require a second factor", type: "bool" },
];
const OPERATION_FIELDS = [
  { name: "name", label: "Name", required: true, key: true, placeholder: "restart-web" },
  { name: "patterns", label: "Command patterns (regular expressions, one a line)", type: "lines", wide: true, required: true, placeholder: "^systemctl restart nginx$" },
];

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
    form.closest("details")?.setAttribute("open", "");
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
    { label: "Name", get: (p) => h("button", { type: "button", class: "link", onclick: () => show(p) }, p.name), nowrap: true },
    { label: "Type", get: (p) => p.type },
    { label: "Subjects", get: (p) => subjects(p.subjects) },
    { label: "Targets", get: (p) => targets(p.targets) },
    { label: "Target users", get: (p) => list(p.target_users) },
    { label: "Actions", get: (p) => list(p.actions) },
    { label: "", get: (p) => rowActions(p) },
  ], await get("/api/v1/resources/policy"), [h("p", {}, "No policies: nobody can reach any target yet."),
    h("p", { class: "hint" }, "Create one with New policy: who (users, groups), where (targets), as which account, to do what.")]));
  let rowActions = () => null;
  // Forms: the everyday path; the YAML editor below stays the expert one
  // (commands, paths, tunnels and the other rules have no form fields,
  // and a form keeps them as they are).
  const out = h("div", { class: "status" });
  const panel = editorPanel();
  const formEdit = (kind, fields, obj) => panel.show(resourceForm(kind, fields, obj, () => Promise.all([refresh(), refreshOps()])));
  const remove = async (kind, name) => {
    if (await deleteResource(kind, name)) {
      clear(out, message("ok", `${kind} ${name} deleted.`));
      panel.close();
      await Promise.all([refresh(), refreshOps()]);
    }
  };
  const opsSec = h("section", { "data-section": "operations" });
  const refreshOps = () => load(opsSec, ctx, async () => table([
    { label: "Name", get: (o) => h("strong", {}, o.name), nowrap: true },
    { label: "Patterns", get: (o) => h("code", {}, (o.patterns || []).join("  ")) },
    { label: "", get: (o) => h("div", { class: "row nowrap" },
      h("button", { type: "button", class: "secondary", onclick: () => formEdit("Operation", OPERATION_FIELDS, o) }, "Edit"),
      actionButton("Delete", out, () => remove("Operation", o.name), { class: "danger" })) },
  ], await get("/api/v1/resources/operation"), "No operations. An operation names commands (by pattern) that a policy may allow or require approval for."));
  rowActions = (p) => h("div", { class: "row nowrap" },
    h("button", { type: "button", class: "secondary", "data-action": "edit-form", onclick: () => formEdit("Policy", POLICY_FIELDS, p) }, "Edit"),
    h("button", { type: "button", class: "secondary", onclick: () => edit(p) }, "YAML"),
    actionButton("Delete", out, () => remove("Policy", p.name), { class: "danger" }));
  main.append(
    h("div", { class: "row" }, h("h2", {}, "Policies"),
      h("button", { type: "button", "data-action": "new-policy", onclick: () => formEdit("Policy", POLICY_FIELDS, null) }, "New policy")),
    out, panel.el, listSec, view,
    h("div", { class: "row" }, h("h2", {}, "Operations"),
      h("button", { type: "button", "data-action": "new-operation", onclick: () => formEdit("Operation", OPERATION_FIELDS, null) }, "New operation")),
    opsSec,
    h("details", { class: "expert" }, h("summary", {}, "YAML editor (expert: any resource, several at once)"), form));
  await Promise.all([refresh(), refreshOps()]);
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
