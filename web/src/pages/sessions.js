// Active sessions: who is connected where, a live view of a recorded one,
// and a kill button. The list refreshes itself every few seconds.

import { h, clear, table, time, message } from "../dom.js";
import { get, request, enc, describe } from "../api.js";
import { load, quietLoad, actionButton, poll, sessionLink } from "./common.js";
import { watchSession, Slot } from "../player.js";

export async function sessionsPage(main, ctx) {
  const out = h("div", { class: "status" });
  const listSec = h("section", { "data-section": "sessions" });
  const live = h("section", { class: "box hidden", "data-section": "live" });
  const slot = new Slot();
  const stopWatching = () => {
    slot.clear();
    live.classList.add("hidden");
    live.replaceChildren();
  };
  ctx.onCleanup(stopWatching);

  // Admins may end any session, others their own; auditors watch everyone's
  // but end only their own.
  const canKill = (s) => ctx.roles.admin || s.user === ctx.me.name;
  const watch = (s) => {
    stopWatching();
    live.classList.remove("hidden");
    const state = h("div", { class: "status" }, message("info", "Live: " + s.user + " on " + s.target));
    const screen = h("div", { class: "player", "data-role": "live-player" });
    clear(live, h("div", { class: "row" }, h("h2", {}, "Session " + s.id),
      h("button", { type: "button", class: "secondary", onclick: stopWatching }, "Close")), state, screen);
    const ended = (err) => {
      if (!ctx.live()) return;
      clear(state, err ? message("error", "Live view stopped: " + describe(err)) : message("info", "The session has ended."));
    };
    slot.set(watchSession(screen, s.id, ended), ended);
  };
  const kill = async (s) => {
    if (!confirm(`End session ${s.id} of ${s.user} on ${s.target}?`)) return;
    await request("POST", `/api/v1/sessions/${enc(s.id)}/kill`, {});
    clear(out, message("ok", "Session " + s.id + " ended."));
    // The kill is answered when the session is told to end; it leaves the
    // list a moment later, once its connection has closed.
    for (let i = 0; i < 20 && ctx.live(); i++) {
      const running = await get("/api/v1/sessions");
      if (!running.some((x) => x.id === s.id)) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    await refresh();
  };
  let first = true;
  const refresh = () => (first ? load : quietLoad)(listSec, ctx, async () => { first = false; return table([
    { label: "ID", get: (s) => (s.recorded ? sessionLink(s.id) : h("code", {}, s.id)), nowrap: true },
    { label: "User", get: (s) => s.user },
    { label: "Target", get: (s) => s.target },
    { label: "Account", get: (s) => s.account },
    { label: "Source", get: (s) => s.source },
    { label: "Action", get: (s) => s.action + (s.command ? ": " + s.command : "") },
    { label: "Started", get: (s) => time(s.started), nowrap: true },
    { label: "", get: (s) => h("div", { class: "row" },
      s.recorded ? h("button", { type: "button", onclick: () => watch(s) }, "Watch") : h("span", { class: "hint" }, "not recorded"),
      canKill(s) ? actionButton("Kill", out, () => kill(s), { class: "danger" }) : null) },
  ], await get("/api/v1/sessions"), [h("p", {}, "No active sessions."),
    h("p", { class: "hint" }, "Sessions appear here as they start; Targets shows the ssh line to connect with.")]); });
  main.append(h("p", { class: "hint" }, "Refreshes every 3 seconds."), out, listSec, live);
  await poll(ctx, 3000, refresh);
}
