// Users, groups and service accounts: created, edited and deleted from
// forms (through apply, like the YAML editor), and a user's console
// password set by an admin.

import { h, clear, table, list, message, field, input } from "../dom.js";
import { get, request, enc } from "../api.js";
import { load, actionButton } from "./common.js";
import { resourceForm, deleteResource, editorPanel } from "../forms.js";

const USER_FIELDS = [
  { name: "name", label: "Name", required: true, key: true, placeholder: "alice" },
  { name: "email", label: "Email", placeholder: "alice@example.com" },
  { name: "groups", label: "Groups", type: "list", placeholder: "ops, web" },
  { name: "roles", label: "Console roles", type: "list", placeholder: "admin or auditor (empty: none)" },
  { name: "mfa", label: "Second factor", type: "select", options: [["", "optional"], ["required", "required"]] },
  { name: "ssh_keys", label: "SSH public keys (one a line)", type: "lines", wide: true, placeholder: "ssh-ed25519 AAAA… alice@laptop" },
];
const GROUP_FIELDS = [
  { name: "name", label: "Name", required: true, key: true, placeholder: "ops" },
  { name: "members", label: "Members", type: "list", placeholder: "alice, bob" },
];
const SA_FIELDS = [
  { name: "name", label: "Name", required: true, key: true, placeholder: "ci-deploy" },
  { name: "owner", label: "Owner (a user)", placeholder: "alice" },
  { name: "ssh_keys", label: "SSH public keys (one a line)", type: "lines", wide: true },
];

export async function identitiesPage(main, ctx) {
  const out = h("div", { class: "status" });
  const users = h("section", { "data-section": "users" });
  const groups = h("section", { "data-section": "groups" });
  const sas = h("section", { "data-section": "serviceaccounts" });
  const panel = editorPanel();
  const edit = (kind, fields, obj) => panel.show(resourceForm(kind, fields, obj, () => refresh()));
  const remove = async (kind, name) => {
    if (await deleteResource(kind, name)) {
      clear(out, message("ok", `${kind} ${name} deleted.`));
      panel.close();
      await refresh();
    }
  };
  const actions = (kind, fields) => (o) => h("div", { class: "row nowrap" },
    h("button", { type: "button", class: "secondary", "data-action": "edit", onclick: () => edit(kind, fields, o) }, "Edit"),
    actionButton("Delete", out, () => remove(kind, o.name), { class: "danger" }));
  const newButton = (kind, fields) => h("button", { type: "button", "data-action": "new-" + kind.toLowerCase(),
    onclick: () => edit(kind, fields, null) }, "New " + kind.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase());
  main.append(out, panel.el,
    h("div", { class: "row" }, h("h2", {}, "Users"), newButton("User", USER_FIELDS)), users, passwordForm(),
    h("div", { class: "row" }, h("h2", {}, "Groups"), newButton("Group", GROUP_FIELDS)), groups,
    h("div", { class: "row" }, h("h2", {}, "Service accounts"), newButton("ServiceAccount", SA_FIELDS)), sas);
  const keys = (k) => (k && k.length ? String(k.length) : "0");
  const refresh = () => Promise.all([
    load(users, ctx, async () => table([
      { label: "Name", get: (u) => h("strong", {}, u.name), nowrap: true },
      { label: "Email", get: (u) => u.email },
      { label: "Groups", get: (u) => list(u.groups) },
      { label: "Roles", get: (u) => list(u.roles) },
      { label: "MFA", get: (u) => u.mfa },
      { label: "SSH keys", get: (u) => keys(u.ssh_keys) },
      { label: "", get: actions("User", USER_FIELDS) },
    ], await get("/api/v1/resources/user"), "No users: create one with New user.")),
    load(groups, ctx, async () => table([
      { label: "Name", get: (g) => h("strong", {}, g.name), nowrap: true },
      { label: "Members", get: (g) => list(g.members) },
      { label: "", get: actions("Group", GROUP_FIELDS) },
    ], await get("/api/v1/resources/group"), "No groups. A group lets one policy name many users; users can also list their groups themselves.")),
    load(sas, ctx, async () => table([
      { label: "Name", get: (s) => h("strong", {}, s.name), nowrap: true },
      { label: "Owner", get: (s) => s.owner },
      { label: "SSH keys", get: (s) => keys(s.ssh_keys) },
      { label: "", get: actions("ServiceAccount", SA_FIELDS) },
    ], await get("/api/v1/resources/serviceaccount"), "No service accounts. A service account is a non-person identity (CI, scripts) with its own SSH keys.")),
  ]);
  await refresh();
}

function passwordForm() {
  const out = h("div", { class: "status" });
  const user = input("user", { required: true });
  const pw = h("input", { name: "password", type: "password", autocomplete: "new-password", required: true });
  const form = h("form", { class: "filters", "data-form": "password", onsubmit: (ev) => ev.preventDefault() },
    field("User", user), field("New console password", pw),
    actionButton("Set password", out, async () => {
      if (!form.reportValidity()) return;
      await request("POST", `/api/v1/users/${enc(user.value.trim())}/password`, { password: pw.value });
      pw.value = "";
      clear(out, message("ok", "Password set for " + user.value.trim() + "."));
    }));
  return h("details", { class: "box" }, h("summary", {}, "Set a user's console password"), form, out);
}
