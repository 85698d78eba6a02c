// API keys: create (the secret is shown once, with a copy button), list
// (never the secret) and revoke.

import { h, clear, table, time, message, field, input, select, formValues, list } from "../dom.js";
import { get, request, enc, describe } from "../api.js";
import { load, actionButton } from "./common.js";

export async function apikeysPage(main, ctx) {
  const out = h("div", { class: "status" });
  const secret = h("section", { "data-section": "new-key" });
  const listSec = h("section", { "data-section": "apikeys" });

  // Users without a role may create access keys for themselves only;
  // registration keys and other owners are for admins.
  const kinds = ctx.roles.admin ? ["access", "registration"] : ["access"];
  const create = h("button", { type: "submit" }, "Create key");
  const form = h("form", { class: "box", "data-form": "apikey", onsubmit: async (ev) => {
    ev.preventDefault();
    const v = formValues(form);
    const body = { name: v.name, kind: v.kind || "access" };
    if (v.owner) body.owner = v.owner;
    if (v.expires_in) body.expires_in = v.expires_in;
    if (v.source_cidrs) body.source_cidrs = v.source_cidrs.split(/[\s,]+/).filter(Boolean);
    create.disabled = true;
    clear(out);
    try {
      const key = await request("POST", "/api/v1/apikeys", body);
      form.reset();
      showSecret(secret, key);
      await refresh();
    } catch (err) {
      clear(out, message("error", describe(err)));
    } finally {
      create.disabled = false;
    }
  } },
  h("h2", {}, "Create a key"),
  h("div", { class: "filters" },
    field("Name", input("name", { required: true, placeholder: "ci" })),
    field("Kind", select("kind", kinds, "access")),
    ctx.roles.admin ? field("Owner", input("owner", { placeholder: ctx.me.name })) : null,
    field("Expires in", input("expires_in", { placeholder: "30d, 720h (empty: never)" })),
    field("Source CIDRs", input("source_cidrs", { placeholder: "10.0.0.0/8, 192.0.2.7/32" })),
    create));

  const revoke = async (k) => {
    if (!confirm(`Revoke key ${k.id} (${k.name})? Scripts using it stop working at once.`)) return;
    await request("POST", `/api/v1/apikeys/${enc(k.id)}/revoke`, {});
    clear(out, message("ok", "Key " + k.id + " revoked."));
    await refresh();
  };
  const refresh = () => load(listSec, ctx, async () => table([
    { label: "ID", get: (k) => h("code", {}, k.id), nowrap: true },
    { label: "Name", get: (k) => k.name },
    { label: "Kind", get: (k) => k.kind },
    { label: "Owner", get: (k) => k.owner },
    { label: "Created by", get: (k) => k.created_by },
    { label: "Created", get: (k) => time(k.created_at), nowrap: true },
    { label: "Expires", get: (k) => (k.expires_at ? time(k.expires_at) : "never"), nowrap: true },
    { label: "Sources", get: (k) => list(k.source_cidrs) || "any" },
    { label: "State", get: (k) => h("span", { class: "state-" + k.state }, k.state) },
    { label: "", get: (k) => (k.state === "active" ? actionButton("Revoke", out, () => revoke(k), { class: "danger" }) : "") },
  ], await get("/api/v1/apikeys"), "No API keys. Create one above for a script: it sends the key as the X-API-KEY header."));

  main.append(form, secret, out, h("h2", {}, "Keys"), listSec);
  await refresh();
}

// showSecret shows a new key's secret once. Nothing keeps it: leaving the
// page or creating another key forgets it.
function showSecret(sec, key) {
  const value = h("input", { type: "text", readonly: true, value: key.key, class: "secret", "data-role": "secret", "aria-label": "API key" });
  const copied = h("span", { class: "hint", "data-role": "copy-status" });
  const copy = h("button", { type: "button", onclick: async () => {
    try {
      await navigator.clipboard.writeText(value.value);
      copied.textContent = "Copied.";
    } catch (err) {
      // No clipboard permission: leave the text selected to copy by hand.
      value.select();
      copied.textContent = "Copy failed (" + err.message + "); the key is selected, press Ctrl+C.";
    }
  } }, "Copy");
  clear(sec, h("div", { class: "box secret-box" },
    h("h2", {}, `Key ${key.id} (${key.name})`),
    message("info", "This is the only time the key is shown. Copy it now and keep it in a secret store; it cannot be shown again."),
    h("p", {}, "Send it as the X-API-KEY header."),
    h("div", { class: "row" }, value, copy, copied),
    h("button", { type: "button", class: "secondary", onclick: () => sec.replaceChildren() }, "I have saved it")));
}
