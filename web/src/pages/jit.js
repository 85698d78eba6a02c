// Just-in-time access: request access under a jit policy, see your
// requests and, for approvers, decide pending ones. The API decides who
// sees and decides what (internal/api/jit.go); nobody decides their own.

import { h, clear, table, time, message, field, input, formValues } from "../dom.js";
import { get, request, enc, describe } from "../api.js";
import { load, actionButton, poll, hashParams } from "./common.js";

const STATES = ["", "pending", "approved", "denied", "expired", "revoked"];

export async function jitPage(main, ctx) {
  const out = h("div", { class: "status", "data-role": "jit-status" });
  const listSec = h("section", { "data-section": "jit-requests" });
  const detail = h("section", { "data-section": "jit-detail" });
  let state = hashParams().get("state") || "";

  const submit = h("button", { type: "submit" }, "Request access");
  const form = h("form", { class: "box", "data-form": "jit-request", onsubmit: async (ev) => {
    ev.preventDefault();
    const v = formValues(form);
    const body = { target: v.target, reason: v.reason, channel: "console" };
    if (v.account) body.account = v.account;
    if (v.duration) body.duration = v.duration;
    submit.disabled = true;
    clear(out);
    try {
      const r = await request("POST", "/api/v1/jit/requests", body);
      form.reset();
      clear(out, message("ok", r.state === "approved"
        ? `Request ${r.id} approved by the policy: access until ${time(r.expires_at)}.`
        : `Request ${r.id} filed; an approver has been told.`));
      await refresh();
    } catch (err) {
      clear(out, message("error", describe(err)));
    } finally {
      submit.disabled = false;
    }
  } },
  h("h2", {}, "Request just-in-time access"),
  h("div", { class: "filters" },
    field("Target", input("target", { required: true, placeholder: "web1" })),
    field("Account", input("account", { placeholder: "deploy (empty: what the policy grants)" })),
    field("Duration", input("duration", { placeholder: "1h (empty: the policy's default)" })),
    field("Reason", input("reason", { placeholder: "incident 42" })),
    submit));

  const decide = async (r, verb) => {
    const body = { channel: "console" };
    if (verb === "deny") {
      const reason = prompt(`Deny ${r.requester}'s request ${r.id}: why? (the requester is told)`);
      if (!reason) return;
      body.reason = reason;
    }
    if (verb === "revoke" && !confirm(`End ${r.requester}'s access to ${r.target} now? Live sessions on it end.`)) return;
    const res = await request("POST", `/api/v1/jit/requests/${enc(r.id)}/${verb}`, body);
    clear(out, message("ok", `Request ${res.id} is ${res.state}.`));
    await refresh();
  };
  const show = async (r) => {
    const full = await get(`/api/v1/jit/requests/${enc(r.id)}`);
    clear(detail, h("div", { class: "box" },
      h("h2", {}, `Request ${full.id}`),
      h("p", {}, `${full.requester} asks ${full.account || "any granted account"} on ${full.target} for ${full.duration} under ${full.policy}. Reason: ${full.reason || "-"}`),
      table([
        { label: "Time", get: (e) => time(e.time), nowrap: true },
        { label: "Step", get: (e) => e.kind },
        { label: "Channel", get: (e) => e.channel || "" },
        { label: "By", get: (e) => e.actor || "" },
        { label: "Detail", get: (e) => e.detail || "" },
      ], full.history || [], "No history.")));
  };
  const stateFilter = h("select", { name: "state", "aria-label": "State", onchange: () => { state = stateFilter.value; refresh(); } },
    STATES.map((s) => h("option", { value: s, selected: s === state }, s || "any state")));

  const refresh = () => load(listSec, ctx, async () => table([
    { label: "ID", get: (r) => h("a", { href: "#", "data-role": "jit-show", onclick: (ev) => { ev.preventDefault(); show(r); } }, h("code", {}, r.id)), nowrap: true },
    { label: "Requester", get: (r) => r.requester },
    { label: "Target", get: (r) => r.target },
    { label: "Account", get: (r) => r.account || "-" },
    { label: "Duration", get: (r) => r.duration },
    { label: "Reason", get: (r) => r.reason || "-" },
    { label: "State", get: (r) => h("span", { class: "state-" + r.state }, r.state) },
    { label: "Decided by", get: (r) => r.decided_by || "-" },
    { label: "Created", get: (r) => time(r.created_at), nowrap: true },
    { label: "Expires", get: (r) => (r.expires_at ? time(r.expires_at) : "-"), nowrap: true },
    { label: "", get: (r) => h("span", { class: "row" },
      r.may_decide ? actionButton("Approve", out, () => decide(r, "approve"), { "data-role": "jit-approve" }) : null,
      r.may_decide ? actionButton("Deny", out, () => decide(r, "deny"), { class: "danger", "data-role": "jit-deny" }) : null,
      r.state === "approved" && ctx.roles.admin ? actionButton("Revoke", out, () => decide(r, "revoke"), { class: "danger" }) : null) },
  ], await get("/api/v1/jit/requests", state ? { state } : undefined), "No requests."));

  // A webhook's approve or deny link lands here: it decides nothing until
  // the signed-in approver confirms, and works once.
  const token = hashParams().get("link");
  if (token) {
    main.append(h("div", { class: "box", "data-section": "jit-link" },
      h("h2", {}, "Decide a request from a link"),
      h("p", {}, "This link approves or denies one access request, once, as you. Only an approver of its policy may use it."),
      actionButton("Use the link", out, async () => {
        const r = await request("POST", `/api/v1/jit/links/${enc(token)}`, {});
        clear(out, message("ok", `Request ${r.id} is ${r.state}.`));
        location.hash = "#/jit";
      }, { "data-role": "jit-use-link" })));
  }
  main.append(form, out, h("h2", {}, "Requests"), h("div", { class: "filters" }, stateFilter), listSec, detail);
  await poll(ctx, 5000, refresh);
}
