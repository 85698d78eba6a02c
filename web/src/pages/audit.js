// Audit log, newest first, a page at a time ("Older" follows the API's
// before= cursor); each event's detail unfolds, and an event of a session
// links to the session's recording at that moment.

import { h, table, time, field, input } from "../dom.js";
import { getPage } from "../api.js";
import { filterForm, pre, withTimes, pagedList, sessionLink, recordingHref } from "./common.js";

export async function auditPage(main, ctx) {
  const listSec = h("section", { "data-section": "audit" });
  const render = (rows) => table([
    { label: "ID", get: (e) => String(e.id), nowrap: true },
    { label: "Time", get: (e) => time(e.time), nowrap: true },
    { label: "Type", get: (e) => e.type, nowrap: true },
    { label: "Outcome", get: (e) => h("span", { class: "outcome-" + e.outcome }, e.outcome) },
    { label: "User", get: (e) => e.user },
    { label: "Source", get: (e) => e.source, nowrap: true },
    { label: "Target", get: (e) => e.target },
    { label: "Session", get: (e) => sessionLink(e.session_id), nowrap: true },
    { label: "Message", get: (e) => (e.detail && Object.keys(e.detail).length
      ? h("details", {}, h("summary", {}, e.message), pre(e.detail))
      : e.message) },
    { label: "", get: (e) => (e.session_id
      ? h("a", { href: recordingHref(e.session_id, e.time), class: "button secondary nowrap", "data-action": "play-at" }, "▶ at this moment")
      : ""), nowrap: true },
  ], rows, "No events match. Widen Since or clear a filter.");
  const show = pagedList(listSec, ctx, (q) => getPage("/api/v1/audit", q), render, "events", 5000);
  main.append(filterForm("audit", [
    field("Since", input("since", { placeholder: "24h or RFC 3339 (empty: all)" })),
    field("Type", input("type", { placeholder: "session.start, login." })),
    field("User", input("user")), field("Target", input("target")), field("Session", input("session")),
    field("Per page", input("limit", { value: "100", inputmode: "numeric" })),
  ], show), listSec);
  await show(withTimes({ limit: "100" }));
}
