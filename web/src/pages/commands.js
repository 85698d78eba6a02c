// Command history, newest first, a page at a time: every command run
// through the gateway, each linked to its session's recording at the
// moment it was typed.

import { h, table, time, field, input } from "../dom.js";
import { getPage } from "../api.js";
import { filterForm, withTimes, pagedList, sessionLink, recordingHref } from "./common.js";

export async function commandsPage(main, ctx) {
  const listSec = h("section", { "data-section": "commands" });
  const render = (rows) => table([
    { label: "Time", get: (c) => time(c.time), nowrap: true },
    { label: "User", get: (c) => c.user },
    { label: "Target", get: (c) => c.target },
    { label: "Account", get: (c) => c.account },
    { label: "Session", get: (c) => sessionLink(c.session), nowrap: true },
    { label: "Command", get: (c) => h("code", {}, c.command) },
    // The CLI's words: shell (a line typed in a shell), exec.
    { label: "Type", get: (c) => (c.interactive ? (c.certain ? "shell" : "shell?") : "exec") },
    { label: "Exit", get: (c) => (c.exit_status === null || c.exit_status === undefined ? "" : String(c.exit_status)) },
    { label: "", get: (c) => h("a", { href: recordingHref(c.session, c.time), class: "button secondary nowrap", "data-action": "play-at" }, "▶ at this moment"), nowrap: true },
  ], rows, "No commands match. Commands appear once someone runs one through the gateway.");
  const show = pagedList(listSec, ctx, (q) => getPage("/api/v1/commands", q), render, "commands", 5000);
  main.append(filterForm("commands", [
    field("User", input("user")), field("Target", input("target")), field("Session", input("session")),
    field("Since", input("since", { placeholder: "24h or RFC 3339" })),
    field("Per page", input("limit", { value: "100", inputmode: "numeric" })),
  ], show), listSec);
  await show(withTimes({ limit: "100" }));
}
