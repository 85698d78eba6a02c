// Recordings: search what was on screen, list with filters, play in the
// browser from a search hit at 1x, 2x or 4x, download, delete.

import { h, clear, table, time, message, field, input, select } from "../dom.js";
import { get, request, enc, describe } from "../api.js";
import { load, filterForm, actionButton, hashParams } from "./common.js";
import { playRecording, Slot } from "../player.js";
import { reviewForm } from "./reports.js";

const SPEEDS = [["1", "1x"], ["2", "2x"], ["4", "4x"]];

export async function recordingsPage(main, ctx) {
  const out = h("div", { class: "status" });
  const hits = h("section", { "data-section": "search-results" });
  const listSec = h("section", { "data-section": "recordings" });
  const panel = h("section", { class: "box hidden", "data-section": "player" });
  const slot = new Slot();
  let current = null; // {id, speed}
  const stop = () => slot.clear();
  ctx.onCleanup(stop);

  // hit, from a search, is the matched text: shown above the player with
  // the matched words marked, and as a marker on its timeline.
  const play = (id, startAt, why, hit) => {
    stop();
    current = { id, speed: current ? current.speed : 1 };
    panel.classList.remove("hidden");
    const screen = h("div", { class: "player", "data-role": "player" });
    const failed = (err) => clear(screen, message("error", "Cannot play: " + describe(err)));
    // The gateway checks the file against the hash it ended with; a
    // mismatch is shown above the player, in words, for as long as it plays.
    const warning = h("div", { "data-role": "integrity" });
    const onTampered = (words) => clear(warning, message("error", "Warning: this recording was tampered with: " + words));
    const speed = select("speed", SPEEDS, String(current.speed));
    speed.setAttribute("aria-label", "Speed");
    // A new speed restarts the player where it was: the player takes its
    // speed only when created.
    speed.addEventListener("change", async () => {
      const at = slot.player ? await slot.player.getCurrentTime() : startAt;
      current.speed = Number(speed.value);
      stop();
      screen.replaceChildren();
      slot.set(playRecording(screen, id, { startAt: at, speed: current.speed, onTampered, hit: hit && plain(hit) }), failed);
    });
    const download = h("a", { href: `/api/v1/recordings/${enc(id)}/cast?purpose=download`, download: id + ".cast", class: "button secondary" }, "Download");
    clear(panel,
      h("div", { class: "row" }, h("h2", {}, "Recording " + id),
        field("Speed", speed), download,
        h("button", { type: "button", class: "secondary", onclick: () => { stop(); panel.classList.add("hidden"); } }, "Close")),
      startAt > 0 ? h("p", { class: "hint", "data-role": "start-at" }, `Starting at ${startAt.toFixed(1)} s, ${why || "where the search matched"}.`) : null,
      hit ? h("p", { class: "snippet", "data-role": "hit" }, "Match: ", marks(hit)) : null,
      warning, screen,
      ctx.roles.auditor ? reviewForm(id) : null);
    slot.set(playRecording(screen, id, { startAt, speed: current.speed, onTampered, hit: hit && plain(hit) }), failed);
    panel.scrollIntoView({ block: "nearest" });
  };

  const remove = async (r) => {
    if (!confirm(`Delete recording ${r.id} of ${r.user} on ${r.target}? This cannot be undone.`)) return;
    await request("DELETE", `/api/v1/recordings/${enc(r.id)}`);
    if (current && current.id === r.id) { stop(); panel.classList.add("hidden"); }
    clear(out, message("ok", "Recording " + r.id + " deleted."));
    await showList(lastFilter);
  };

  const search = (v) => {
    if (!v.q) return clear(hits);
    return load(hits, ctx, async () => table([
      { label: "Recording", get: (x) => h("code", {}, x.id), nowrap: true },
      { label: "User", get: (x) => x.user },
      { label: "Target", get: (x) => x.target },
      { label: "At", get: (x) => x.offset.toFixed(1) + " s" },
      { label: "Match", get: (x) => h("span", { class: "snippet" }, marks(x.snippet)) },
      // The offset is the time of the line that holds the match, to the
      // millisecond: start just after it, so that the line is on screen.
      { label: "", get: (x) => h("button", { type: "button", onclick: () => play(x.id, x.offset + 0.001, "", x.snippet) }, "Play") },
    ], await get("/api/v1/recordings/search", { q: v.q }), "No recording matches. Try a shorter word, or one typed rather than shown."));
  };

  let lastFilter = {};
  const showList = (v) => {
    lastFilter = v;
    return load(listSec, ctx, async () => table([
      { label: "ID", get: (r) => h("code", {}, r.id), nowrap: true },
      { label: "State", get: (r) => r.state },
      { label: "Kind", get: (r) => r.kind, nowrap: true },
      { label: "User", get: (r) => r.user },
      { label: "Target", get: (r) => r.target },
      { label: "Account", get: (r) => r.account },
      { label: "Action", get: (r) => r.action + (r.command ? ": " + r.command : "") },
      { label: "Started", get: (r) => time(r.started_at), nowrap: true },
      { label: "Ended", get: (r) => time(r.ended_at), nowrap: true },
      { label: "Size", get: (r) => (r.state === "active" ? "" : size(r.size)) },
      { label: "", get: (r) => h("div", { class: "row" },
        h("button", { type: "button", onclick: () => play(r.id, 0) }, "Play"),
        h("a", { href: `/api/v1/recordings/${enc(r.id)}/cast?purpose=download`, download: r.id + ".cast", class: "button secondary" }, "Download"),
        ctx.roles.admin ? actionButton("Delete", out, () => remove(r), { class: "danger" }) : null) },
    ], await get("/api/v1/recordings", v), "No recordings. Sessions are recorded when a session-recording policy names them (Policies)."));
  };

  // Searching everyone's screens is an auditor's right (admins have it).
  if (ctx.roles.auditor) {
    main.append(h("h2", {}, "Search"),
      filterForm("search", [field("Text on screen", input("q", { type: "search", placeholder: "e.g. rm -rf", required: true }))], search, "Search"),
      hits);
  }
  main.append(panel, out,
    h("h2", {}, "All recordings"),
    filterForm("recordings", [
      field("User", input("user")), field("Target", input("target")),
      field("State", select("state", [["", "any"], "active", "ended", "interrupted"], "")),
      field("Since", input("since", { placeholder: "24h or RFC 3339" })),
      field("Limit", input("limit", { value: "100", inputmode: "numeric" })),
    ], showList),
    listSec);
  await showList({ limit: "100" });

  // A link from the audit log, the command history or a session id:
  // #/recordings?id=SESSION&at=RFC3339 opens that recording at that moment.
  const want = hashParams();
  if (want.get("id") && ctx.live()) {
    try {
      const rec = await get(`/api/v1/recordings/${enc(want.get("id"))}`);
      const at = Date.parse(want.get("at") || "");
      const offset = isNaN(at) ? 0 : Math.max(0, (at - Date.parse(rec.started_at)) / 1000);
      if (ctx.live()) play(rec.id, offset, want.get("at") ? "the moment of the event you followed" : "");
    } catch (err) {
      if (ctx.live()) clear(out, message("error", err.status === 404
        ? `Session ${want.get("id")} has no recording (it was not recorded, or the recording was deleted).`
        : "Cannot open the recording: " + describe(err)));
    }
  }
}

// marks turns a snippet's «matched» words into <mark> elements (as text
// nodes: a snippet is what a session printed, never markup).
function marks(snippet) {
  return snippet.split(/(«[^»]*»)/).filter((p) => p !== "").map((p) =>
    p.startsWith("«") && p.endsWith("»") ? h("mark", {}, p.slice(1, -1)) : p);
}

// plain is a snippet without its marks, for the player's marker label.
function plain(snippet) {
  return snippet.replace(/[«»]/g, "");
}

function size(n) {
  if (n < 1024) return n + " B";
  if (n < 1 << 20) return (n / 1024).toFixed(1) + " KiB";
  return (n / (1 << 20)).toFixed(1) + " MiB";
}
