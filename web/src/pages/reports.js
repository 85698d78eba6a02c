// Compliance: export a signed report (files and manifest saved from the
// browser, the same bytes the CLI writes), and run access review
// campaigns: open one, keep or revoke each entitlement, sign it off.
// Auditors and admins; the API decides who may decide what.

import { h, clear, message, table, time, field, input, select, formValues } from "../dom.js";
import { request, get, describe } from "../api.js";
import { load, withTimes, actionButton } from "./common.js";

/** saveLink is a download link for bytes given as base64. */
function saveLink(name, base64, type) {
  const bin = atob(base64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  return h("a", { href: url, download: name, class: "button secondary", "data-role": "report-file" }, name);
}

const TYPES = { csv: "text/csv", json: "application/json", pdf: "application/pdf" };

export async function reportsPage(main, ctx) {
  const out = h("div", { "data-role": "report-out" });
  const kinds = await get("/api/v1/reports");
  const kindSel = select("kind", kinds.map((k) => [k.name, k.title]), "access-log");
  kindSel.setAttribute("aria-label", "Report");
  const desc = h("p", { class: "hint", "data-role": "report-desc" });
  const describeKind = () => clear(desc, (kinds.find((k) => k.name === kindSel.value) || {}).description || "");
  kindSel.addEventListener("change", describeKind);
  describeKind();
  const formats = ["csv", "json", "pdf"].map((f) =>
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "format-" + f, checked: true }), " " + f.toUpperCase()));
  const form = h("form", { class: "filters", "data-form": "report", onsubmit: async (ev) => {
    ev.preventDefault();
    const v = withTimes(formValues(form));
    const body = { formats: ["csv", "json", "pdf"].filter((f) => v["format-" + f]) };
    if (v.since) body.since = v.since;
    if (v.until) body.until = v.until;
    clear(out, message("info", "Generating…"));
    try {
      const ex = await request("POST", "/api/v1/reports/" + encodeURIComponent(kindSel.value), body);
      if (!ctx.live()) return;
      const manifest = JSON.stringify(ex.manifest, null, 2) + "\n";
      clear(out,
        message("ok", `${ex.manifest.rows} rows, signed. Save every file and the manifest side by side; check them with portcullis report verify MANIFEST --key KEY.`),
        h("div", { class: "row" },
          ex.files.map((f) => saveLink(f.name, f.data, TYPES[f.format])),
          saveLink(ex.manifest_name, btoa(manifest), "application/json")),
        table([
          { label: "File", get: (f) => f.name, nowrap: true },
          { label: "Bytes", get: (f) => String(f.size) },
          { label: "SHA-256", get: (f) => h("code", {}, f.sha256) },
        ], ex.manifest.files));
    } catch (err) {
      if (ctx.live()) clear(out, message("error", describe(err)));
    }
  } },
  field("Report", kindSel),
  field("Since", input("since", { value: "30d", placeholder: "30d or RFC 3339" })),
  field("Until", input("until", { placeholder: "empty: now" })),
  h("div", { class: "field" }, h("span", {}, "Formats"), formats),
  h("button", { type: "submit" }, "Generate"));

  const reviews = h("section", { "data-section": "reviews" });
  const campaign = h("section", { "data-section": "campaign" });
  const showList = () => load(reviews, ctx, async () => {
    const cs = await get("/api/v1/reviews");
    const msg = h("div");
    const name = input("name", { placeholder: "name (default: access review DATE)" });
    return h("div", {},
      h("div", { class: "row" }, name, actionButton("Start a review", msg, async () => {
        const c = await request("POST", "/api/v1/reviews", { name: name.value.trim() });
        await showList();
        await showCampaign(c.id);
      }, { "data-action": "start-review" })), msg,
      table([
        { label: "ID", get: (c) => String(c.id) },
        { label: "Name", get: (c) => h("a", { href: "#", onclick: (ev) => { ev.preventDefault(); showCampaign(c.id); } }, c.name) },
        { label: "Started", get: (c) => time(c.started_at) + " by " + c.started_by, nowrap: true },
        { label: "State", get: (c) => (c.closed_at ? `closed ${time(c.closed_at)} by ${c.closed_by}: ${c.sign_off}` : "open") },
      ], cs, "No access review yet. Start one to review every entitlement."));
  });

  const showCampaign = (id) => load(campaign, ctx, async () => {
    const c = await get("/api/v1/reviews/" + id);
    const msg = h("div", { "data-role": "review-msg" });
    const open = !c.closed_at;
    const decide = (it, decision) => actionButton(decision === "keep" ? "Keep" : "Revoke", msg, async () => {
      const comment = prompt(decision === "keep" ? "Comment (optional)" : "Why revoke? (the access ends at once)") ?? null;
      if (comment === null) return;
      const r = await request("POST", `/api/v1/reviews/${id}/items/${it.item}`, { decision, comment });
      await showCampaign(id);
      if (r.effect) campaign.prepend(message("ok", `Item ${r.item}: ${r.effect}`));
    }, { class: decision === "keep" ? "secondary" : "danger", "data-action": decision });
    const signOff = input("sign_off", { placeholder: "sign-off statement" });
    return h("div", {},
      h("h2", {}, `Review ${c.id}: ${c.name}`), msg,
      open ? h("div", { class: "row" }, signOff, actionButton("Sign off", msg, async () => {
        await request("POST", `/api/v1/reviews/${id}/close`, { sign_off: signOff.value });
        await showList();
        await showCampaign(id);
      }, { "data-action": "sign-off" })) : message("info", `Closed ${time(c.closed_at)} by ${c.closed_by}: ${c.sign_off}`),
      table([
        { label: "#", get: (it) => String(it.item) },
        { label: "Identity", get: (it) => `${it.identity} (${it.identity_kind})` },
        { label: "Via", get: (it) => it.via },
        { label: "Policy", get: (it) => it.policy + (it.jit_policy ? ` (jit ${it.jit_policy})` : "") },
        { label: "Target", get: (it) => it.target },
        { label: "As", get: (it) => it.target_user },
        { label: "Privileged", get: (it) => (it.privileged ? h("span", { class: "outcome-deny" }, it.privileged) : "") },
        { label: "Granted by", get: (it) => it.granted_by || "" },
        { label: "Decision", get: (it) => (it.decision
          ? `${it.decision} by ${it.reviewer}${it.comment ? ": " + it.comment : ""}${it.effect ? " — " + it.effect : ""}`
          : (open ? h("span", { class: "row" }, decide(it, "keep"), decide(it, "revoke")) : "")) },
      ], c.items || [], "This review has no entitlements."));
  });

  main.append(
    h("section", { "data-section": "report" }, h("h2", {}, "Export a report"), form, desc, out),
    h("h2", {}, "Access reviews"), reviews, campaign);
  await showList();
}

/** reviewForm is the session review of one recording: reviewed or flagged, with a comment. */
export function reviewForm(id) {
  const out = h("div", { "data-role": "session-review" });
  const comment = input("comment", { placeholder: "comment (needed to flag)" });
  const mark = (decision) => actionButton(decision === "reviewed" ? "Mark reviewed" : "Flag", out, async () => {
    const r = await request("POST", `/api/v1/recordings/${encodeURIComponent(id)}/reviews`, { decision, comment: comment.value });
    clear(out, message("ok", `Marked ${r.decision} by ${r.reviewer}.`));
  }, { class: decision === "reviewed" ? "secondary" : "danger", "data-action": "review-" + decision });
  get(`/api/v1/recordings/${encodeURIComponent(id)}/reviews`).then((rs) => {
    const last = rs && rs[rs.length - 1];
    if (last && !out.firstChild) clear(out, message("info", `Last review: ${last.decision} by ${last.reviewer} ${time(last.time)}${last.comment ? ": " + last.comment : ""}`));
  }).catch(() => { /* not an auditor: the buttons answer for themselves */ });
  return h("div", { class: "row" }, comment, mark("reviewed"), mark("flagged"), out);
}

