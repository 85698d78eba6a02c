// asciinema-player, for recordings (a cast file fetched with the session
// cookie) and for live sessions (the watch stream, fed line by line to a
// player driver of our own).

import { errorFrom } from "./api.js";

// The player is most of the console's weight (its terminal is WebAssembly):
// load it on first use, not with the login page.
let playerModule = null;
function player() {
  playerModule ??= import("asciinema-player");
  return playerModule;
}

const common = { fit: "width", terminalFontSize: "small", idleTimeLimit: 2 };

/**
 * playRecording mounts a player on el for the recording's cast, from
 * startAt seconds at speed. It resolves to the player (dispose() to remove).
 * The cast is fetched here, not by the player, because the gateway says in
 * the answer's X-Recording-Integrity header whether the file is the one
 * recorded: onTampered(words) is called before playing one that is not.
 */
export async function playRecording(el, id, { startAt = 0, speed = 1, onTampered, hit } = {}) {
  const res = await fetch(`/api/v1/recordings/${encodeURIComponent(id)}/cast?purpose=play`, { credentials: "same-origin" });
  if (!res.ok) throw await errorFrom(res);
  const data = await res.text();
  if (res.headers.get("X-Recording-Integrity") === "tampered" && onTampered) {
    onTampered(res.headers.get("X-Recording-Warning") || "its file is not what was recorded");
  }
  const ops = fileOperations(data);
  if (ops) return showOperations(el, ops, startAt);
  const opts = { ...common, autoPlay: true, startAt: Math.max(0, startAt), speed };
  // A search hit is a marker on the timeline, labelled with what matched.
  if (hit) opts.markers = [[Math.max(0, startAt), hit]];
  return (await player()).create({ data }, el, opts);
}

/**
 * fileOperations returns the operations of a file-transfer recording (its
 * header says kind "file-transfer"; each "o" event is one JSON operation),
 * or null for a terminal recording, which the player plays.
 */
export function fileOperations(cast) {
  const lines = cast.split("\n");
  let header;
  try { header = JSON.parse(lines[0]); } catch { return null; }
  if (!header || !header.portcullis || header.portcullis.kind !== "file-transfer") return null;
  const ops = [];
  for (const line of lines.slice(1)) {
    if (!line.trim()) continue;
    let ev;
    try { ev = JSON.parse(line); } catch { continue; }
    if (!Array.isArray(ev) || ev[1] !== "o") continue;
    let op;
    try { op = JSON.parse(String(ev[2])); } catch { op = null; }
    if (!op || typeof op !== "object" || Array.isArray(op)) op = { op: "note", path: String(ev[2]).trim() };
    ops.push({ op: String(op.op ?? ""), path: String(op.path ?? ""), path2: String(op.path2 ?? ""),
      bytes: Number(op.bytes) || 0, error: String(op.error ?? ""), time: Number(ev[0]) || 0 });
  }
  return ops;
}

/**
 * showOperations renders a file-transfer recording as a table, one row per
 * operation, the row at (or first after) startAt marked as the hit. Text
 * goes in as text nodes, never markup. It returns what a player's caller
 * expects of a player.
 */
function showOperations(el, ops, startAt) {
  const cell = (text, cls) => { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; return td; };
  const wrap = document.createElement("div");
  wrap.className = "table-wrap";
  wrap.setAttribute("data-role", "file-operations");
  const tbl = document.createElement("table");
  const head = document.createElement("tr");
  for (const l of ["At", "Operation", "Path", "To", "Bytes", "Error"]) { const th = document.createElement("th"); th.textContent = l; head.append(th); }
  const thead = document.createElement("thead");
  thead.append(head);
  const body = document.createElement("tbody");
  let marked = false;
  for (const op of ops) {
    const tr = document.createElement("tr");
    tr.append(cell(op.time.toFixed(1) + " s", "nowrap"), cell(op.op || ""), cell(op.path || "", "snippet"), cell(op.path2 || "", "snippet"),
      cell(op.op === "upload" || op.op === "download" ? String(op.bytes || 0) : ""), cell(op.error || ""));
    if (!marked && startAt > 0 && op.time >= startAt - 0.001) { tr.className = "hit"; tr.setAttribute("data-role", "hit"); marked = true; }
    body.append(tr);
  }
  tbl.append(thead, body);
  wrap.append(tbl);
  if (ops.length === 0) wrap.textContent = "No file operations were seen in this transfer (rsync is not followed; see the audit log).";
  el.replaceChildren(wrap);
  const hitRow = body.querySelector("tr.hit");
  if (hitRow) hitRow.scrollIntoView({ block: "nearest" });
  return { dispose() { wrap.remove(); }, async getCurrentTime() { return startAt; } };
}

/**
 * watchSession mounts a player that shows a running session from its
 * start, then live. onEnd(err) is called when the stream ends; err is
 * null when the session ended normally. It resolves to the player.
 */
export async function watchSession(el, id, onEnd) {
  const url = `/api/v1/sessions/${encodeURIComponent(id)}/watch?from=start`;
  return (await player()).create(liveDriver(url, onEnd), el, { ...common, idleTimeLimit: undefined, autoPlay: true, controls: false });
}

/**
 * liveDriver is an asciinema-player driver (a factory the player calls
 * with its callbacks) over a streamed asciicast v2 answer: the header
 * resets the terminal, each output event is shown as it arrives. The
 * backlog of a from=start stream arrives at once and is drawn at once,
 * which is what a live view wants: the current screen, then what follows.
 */
function liveDriver(url, onEnd) {
  return ({ dispatch }) => {
    let ctrl = null;
    let started = 0;
    async function run() {
      const res = await fetch(url, { credentials: "same-origin", signal: ctrl.signal, headers: { Accept: "application/x-asciicast" } });
      if (!res.ok) throw await errorFrom(res);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      let header = null;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line.trim() === "") continue;
          const ev = JSON.parse(line);
          if (!header) {
            header = ev;
            const cols = ev.width ?? ev.term?.cols ?? 80;
            const rows = ev.height ?? ev.term?.rows ?? 24;
            dispatch("reset", { size: { cols, rows } });
            dispatch("playing");
            started = performance.now();
          } else if (Array.isArray(ev) && ev[1] === "o") {
            dispatch("output", ev[2]);
          } else if (Array.isArray(ev) && ev[1] === "r") {
            const [cols, rows] = String(ev[2]).split("x").map(Number);
            if (cols > 0 && rows > 0) dispatch("resize", { cols, rows });
          }
        }
      }
    }
    return {
      play() {
        if (ctrl) return true;
        ctrl = new AbortController();
        dispatch("play");
        run().then(
          () => { dispatch("ended", { message: "Session ended" }); onEnd?.(null); },
          (err) => {
            if (ctrl.signal.aborted) return;
            dispatch("ended", { message: "Stream stopped" });
            onEnd?.(err);
          });
        return true;
      },
      stop() {
        ctrl?.abort();
      },
      getCurrentTime() {
        return started ? (performance.now() - started) / 1000 : 0;
      },
    };
  };
}

/**
 * Slot holds at most one player. Players are created asynchronously, so
 * a player that arrives after the slot moved on (another recording, the
 * page left) is disposed of at once instead of playing unseen.
 */
export class Slot {
  constructor() {
    this.player = null;
    this.token = null;
  }

  /** set replaces the slot's player with the one pending resolves to; onError gets a failure to create it. */
  set(pending, onError) {
    this.clear();
    const token = {};
    this.token = token;
    pending.then(
      (p) => {
        if (this.token === token) this.player = p;
        else p.dispose();
      },
      (err) => {
        if (this.token === token) onError(err);
      });
  }

  /** clear disposes of the current player, if any. */
  clear() {
    this.token = null;
    if (this.player) this.player.dispose();
    this.player = null;
  }
}
