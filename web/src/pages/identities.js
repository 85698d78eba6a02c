// Users, groups and service accounts, and setting a user's console password.

import { h, clear, table, list, message, field, input } from "../dom.js";
import { get, request, enc } from "../api.js";
import { load, actionButton } from "./common.js";

export async function identitiesPage(main, ctx) {
  const users = h("section", { "data-section": "users" });
  const groups = h("section", { "data-section": "groups" });
  const sas = h("section", { "data-section": "serviceaccounts" });
  main.append(h("h2", {}, "Users"), users, passwordForm(),
    h("h2", {}, "Groups"), groups, h("h2", {}, "Service accounts"), sas);
  const keys = (k) => (k && k.length ? String(k.length) : "0");
  await Promise.all([
    load(users, ctx, async () => table([
      { label: "Name", get: (u) => u.name },
      { label: "Email", get: (u) => u.email },
      { label: "Groups", get: (u) => list(u.groups) },
      { label: "Roles", get: (u) => list(u.roles) },
      { label: "MFA", get: (u) => u.mfa },
      { label: "SSH keys", get: (u) => keys(u.ssh_keys) },
    ], await get("/api/v1/resources/user"), "No users.")),
    load(groups, ctx, async () => table([
      { label: "Name", get: (g) => g.name },
      { label: "Members", get: (g) => list(g.members) },
    ], await get("/api/v1/resources/group"), "No groups.")),
    load(sas, ctx, async () => table([
      { label: "Name", get: (s) => s.name },
      { label: "Owner", get: (s) => s.owner },
      { label: "SSH keys", get: (s) => keys(s.ssh_keys) },
    ], await get("/api/v1/resources/serviceaccount"), "No service accounts.")),
  ]);
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
