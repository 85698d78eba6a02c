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
export async function playRecording(el, id, { startAt = 0, speed = 1, onTampered } = {}) {
  const res = await fetch(`/api/v1/recordings/${encodeURIComponent(id)}/cast?purpose=play`, { credentials: "same-origin" });
  if (!res.ok) throw await errorFrom(res);
  const data = await res.text();
  if (res.headers.get("X-Recording-Integrity") === "tampered" && onTampered) {
    onTampered(res.headers.get("X-Recording-Warning") || "its file is not what was recorded");
  }
  return (await player()).create(
    { data },
    el,
    { ...common, autoPlay: true, startAt: Math.max(0, startAt), speed },
  );
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
