// Command history: every command run through the gateway, with filters.

import { h, table, time, field, input } from "../dom.js";
import { get } from "../api.js";
import { load, filterForm } from "./common.js";

export async function commandsPage(main, ctx) {
  const listSec = h("section", { "data-section": "commands" });
  const show = (v) => load(listSec, ctx, async () => table([
    { label: "Time", get: (c) => time(c.time) },
    { label: "User", get: (c) => c.user },
    { label: "Target", get: (c) => c.target },
    { label: "Account", get: (c) => c.account },
    { label: "Session", get: (c) => h("code", {}, c.session) },
    { label: "Command", get: (c) => h("code", {}, c.command) },
    { label: "Type", get: (c) => (c.interactive ? (c.certain ? "shell" : "shell?") : "exec") },
    { label: "Exit", get: (c) => (c.exit_status === null || c.exit_status === undefined ? "" : String(c.exit_status)) },
  ], await get("/api/v1/commands", v), "No commands."));
  main.append(filterForm("commands", [
    field("User", input("user")), field("Target", input("target")), field("Session", input("session")),
    field("Since", input("since", { placeholder: "24h or RFC 3339" })),
    field("Limit", input("limit", { value: "200", inputmode: "numeric" })),
  ], show), listSec);
  await show({ limit: "200" });
}
