// Audit log with filters; each event's detail unfolds.

import { h, table, time, field, input } from "../dom.js";
import { get } from "../api.js";
import { load, filterForm, pre, withTimes } from "./common.js";

export async function auditPage(main, ctx) {
  const listSec = h("section", { "data-section": "audit" });
  const show = (v) => load(listSec, ctx, async () => table([
    { label: "ID", get: (e) => String(e.id) },
    { label: "Time", get: (e) => time(e.time) },
    { label: "Type", get: (e) => e.type },
    { label: "Outcome", get: (e) => h("span", { class: "outcome-" + e.outcome }, e.outcome) },
    { label: "User", get: (e) => e.user },
    { label: "Source", get: (e) => e.source },
    { label: "Target", get: (e) => e.target },
    { label: "Message", get: (e) => (e.detail && Object.keys(e.detail).length
      ? h("details", {}, h("summary", {}, e.message), pre(e.detail))
      : e.message) },
  ], await get("/api/v1/audit", v), "No events."));
  main.append(filterForm("audit", [
    field("Since", input("since", { value: "24h", placeholder: "24h or RFC 3339" })),
    field("Type", input("type", { placeholder: "session.start" })),
    field("User", input("user")), field("Target", input("target")),
    field("Limit", input("limit", { value: "500", inputmode: "numeric" })),
  ], show), listSec);
  await show(withTimes({ since: "24h", limit: "500" }));
}
