// Targets, accounts and environments. Everyone sees the targets they may
// reach and the exact ssh line to reach each one with, per allowed
// account; admins also create, edit and delete them, pin a learned host
// key, and see each account's public key to install, with a rotate action.

import { h, clear, table, list, labels, message } from "../dom.js";
import { get, request, enc } from "../api.js";
import { load, actionButton } from "./common.js";
import { resourceForm, deleteResource, editorPanel } from "../forms.js";

const TARGET_FIELDS = [
  { name: "name", label: "Name", required: true, key: true, placeholder: "web1" },
  { name: "address", label: "Address", required: true, placeholder: "10.0.0.5:22" },
  { name: "labels", label: "Labels", type: "map", placeholder: "env=prod, team=web" },
  { name: "auth", label: "Authentication", type: "select", options: [["", "key (a gateway-held key per account)"], ["certificate", "certificate (the target trusts the gateway CA)"]] },
  { name: "host_key", label: "Pinned host key", wide: true, placeholder: "empty: learn on first use, then pin", hint: "ssh-ed25519 AAAA… as in known_hosts, without the host name." },
  { name: "provision_account", label: "Provisioning account", placeholder: "root (empty: never create logins)" },
];
const ACCOUNT_FIELDS = [
  { name: "target", label: "Target", required: true, key: true, placeholder: "web1" },
  { name: "name", label: "Login on the target", required: true, key: true, placeholder: "deploy" },
  { name: "rotate_every", label: "Rotate the key every", placeholder: "90d (empty: never)" },
  { name: "lock_password", label: "Lock the login's password", type: "bool" },
];
const ENV_FIELDS = [
  { name: "name", label: "Name", required: true, key: true, placeholder: "prod" },
  { name: "targets", label: "Targets", type: "list", placeholder: "web1, db1" },
  { name: "selector", label: "Label selector", type: "map", placeholder: "env=prod" },
];

export async function targetsPage(main, ctx) {
  const out = h("div", { class: "status" });
  const targets = h("section", { "data-section": "targets" });
  const panel = editorPanel();
  const admin = ctx.roles.admin;
  const refreshAll = async () => { await Promise.all(work()); };
  const edit = (kind, fields, obj) => panel.show(resourceForm(kind, fields, obj, async () => { await refreshAll(); }));
  const remove = async (kind, name) => {
    if (await deleteResource(kind, name)) {
      clear(out, message("ok", `${kind} ${name} deleted.`));
      panel.close();
      await refreshAll();
    }
  };

  main.append(
    h("div", { class: "row" }, h("h2", {}, "Targets"),
      admin ? h("button", { type: "button", "data-action": "new-target", onclick: () => edit("Target", TARGET_FIELDS, null) }, "New target") : null),
    out, panel.el, targets);

  const pin = async (t) => {
    const res = await request("POST", `/api/v1/targets/${enc(t.name)}/pin`, {});
    clear(out, message("ok", `Host key of ${t.name} pinned: ${res.fingerprint}.`));
    await refreshAll();
  };
  const hostKey = (t) => {
    if (t.host_key) return h("span", { "data-role": "host-key" }, h("span", { class: "badge ok" }, "pinned"), " ", h("code", { class: "trunc", title: t.host_key }, t.host_key));
    if (t.learned_host_key) {
      return h("span", { "data-role": "host-key" }, h("span", { class: "badge warn" }, "learned, not pinned"), " ",
        h("code", { class: "trunc", title: t.learned_host_key }, t.learned_host_key), " ",
        admin ? actionButton("Pin", out, () => pin(t), { "data-action": "pin" }) : null);
    }
    return h("span", { class: "hint", "data-role": "host-key" }, "none yet: learned on the first connection");
  };

  const accountsSec = h("section", { "data-section": "accounts" });
  const envs = h("section", { "data-section": "environments" });
  const work = () => {
    const w = [load(targets, ctx, async () => {
      const [list, me] = await Promise.all([get("/api/v1/resources/target"), get("/api/v1/me")]);
      const lines = await connectLines(ctx, list, me.ssh_port);
      return table([
        { label: "Name", get: (t) => h("strong", {}, t.name), nowrap: true },
        { label: "Address", get: (t) => t.address, nowrap: true },
        { label: "Labels", get: (t) => labels(t.labels) },
        { label: "How to connect", get: (t) => lines.get(t.name) },
        { label: "Host key", get: hostKey },
        admin ? { label: "", get: (t) => h("div", { class: "row nowrap" },
          h("button", { type: "button", class: "secondary", "data-action": "edit", onclick: () => edit("Target", TARGET_FIELDS, t) }, "Edit"),
          actionButton("Delete", out, () => remove("Target", t.name), { class: "danger" })) } : null,
      ].filter(Boolean), list, admin
        ? [h("p", {}, "No targets yet."), h("p", { class: "hint" }, "Create one with New target, then an account on it (below) and a policy that lets someone use it (Policies).")]
        : [h("p", {}, "No target is open to you."), h("p", { class: "hint" }, "Ask an admin for a policy that lets you reach one.")]);
    })];
    if (admin) {
      w.push(load(accountsSec, ctx, async () => table([
        { label: "Account", get: (a) => h("strong", {}, a.target + "/" + a.name), nowrap: true },
        { label: "Public key to install in ~/.ssh/authorized_keys", get: (a) => (a.public_key
          ? h("div", { class: "row" }, h("input", { type: "text", readonly: true, value: a.public_key, class: "pubkey", "data-role": "account-pubkey", "aria-label": "Public key of " + a.target + "/" + a.name }),
            h("button", { type: "button", class: "secondary", onclick: (ev) => copy(ev.target, a.public_key) }, "Copy"))
          : h("span", { class: "hint" }, "none: the target trusts the gateway's certificate authority")) },
        { label: "Key created", get: (a) => (a.public_key_created ? a.public_key_created.slice(0, 10) : ""), nowrap: true },
        { label: "Rotation", get: (a) => a.rotate_every || "manual" },
        { label: "", get: (a) => h("div", { class: "row nowrap" },
          h("button", { type: "button", class: "secondary", onclick: () => edit("Account", ACCOUNT_FIELDS, a) }, "Edit"),
          actionButton("Rotate key", out, () => rotate(a), { class: "secondary", "data-action": "rotate" }),
          actionButton("Delete", out, () => remove("Account", a.target + "/" + a.name), { class: "danger" })) },
      ], await get("/api/v1/resources/account"), [h("p", {}, "No accounts yet."),
        h("p", { class: "hint" }, "An account is a login on a target that the gateway uses with its own key: create one with New account and install the key it shows.")])));
      w.push(load(envs, ctx, async () => table([
        { label: "Name", get: (e) => h("strong", {}, e.name), nowrap: true },
        { label: "Targets", get: (e) => list(e.targets) },
        { label: "Selector", get: (e) => labels(e.selector) },
        { label: "", get: (e) => h("div", { class: "row nowrap" },
          h("button", { type: "button", class: "secondary", onclick: () => edit("Environment", ENV_FIELDS, e) }, "Edit"),
          actionButton("Delete", out, () => remove("Environment", e.name), { class: "danger" })) },
      ], await get("/api/v1/resources/environment"), [h("p", {}, "No environments."),
        h("p", { class: "hint" }, "An environment groups targets by name or label, for policies to name them at once.")])));
    }
    return w;
  };
  const rotate = async (a) => {
    if (!confirm(`Rotate the key of ${a.target}/${a.name}? The gateway installs a new key on the target and removes the old one.`)) return;
    const res = await request("POST", `/api/v1/accounts/${enc(a.target)}/${enc(a.name)}/rotate`, {});
    clear(out, message("ok", `Key of ${a.target}/${a.name} rotated` + (res && res.new_fingerprint ? ` (${res.old_fingerprint || "none"} → ${res.new_fingerprint})` : "") + "."));
    await refreshAll();
  };

  if (admin) {
    main.append(
      h("div", { class: "row" }, h("h2", {}, "Accounts"),
        h("button", { type: "button", "data-action": "new-account", onclick: () => edit("Account", ACCOUNT_FIELDS, null) }, "New account")),
      accountsSec,
      h("div", { class: "row" }, h("h2", {}, "Environments"),
        h("button", { type: "button", "data-action": "new-environment", onclick: () => edit("Environment", ENV_FIELDS, null) }, "New environment")),
      envs);
  }
  await refreshAll();
}

// connectLines asks policy explain, per target, which accounts the viewer
// may use, and writes the ssh line for each: the host is the one this
// page was loaded from, the port the gateway's SSH port.
async function connectLines(ctx, targets, port) {
  const host = location.hostname.replace(/^\[(.*)\]$/, "$1");
  const out = new Map();
  await Promise.all(targets.map(async (t) => {
    let users = [];
    for (const action of ["shell", "exec", "file-transfer"]) {
      try {
        const r = await request("POST", "/api/v1/policy/explain", { user: ctx.me.name, target: t.name, action });
        users = r.target_users || [];
      } catch {
        users = [];
      }
      if (users.length) break;
    }
    if (!users.length) {
      out.set(t.name, h("span", { class: "hint" }, "No account is open to you here."));
      return;
    }
    out.set(t.name, h("div", { class: "connect" }, users.map((u) => {
      const line = `ssh ${port ? "-p " + port + " " : ""}${ctx.me.name}~${u}~${t.name}@${host}`;
      return h("div", { class: "row nowrap" },
        h("code", { class: "ssh-line", "data-role": "ssh-line", "data-account": u }, line),
        h("button", { type: "button", class: "secondary small", onclick: (ev) => copy(ev.target, line) }, "Copy"));
    })));
  }));
  return out;
}

async function copy(button, text) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Select and copy";
  }
}
