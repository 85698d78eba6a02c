// The client of the gateway's JSON API. It sends the session cookie
// (same-origin) and, on every state change, the CSRF token the login or
// GET /api/v1/me handed out.

let csrfToken = "";

/** setCSRF records the token for later non-GET requests. */
export function setCSRF(token) {
  csrfToken = token || "";
}

/** APIError is a non-2xx answer: status, code and the server's message. */
export class APIError extends Error {
  constructor(status, code, msg) {
    super(msg);
    this.status = status;
    this.code = code;
  }
}

/** onUnauthorized is called when a request answers 401 (session gone). */
let unauthorized = () => {};
export function onUnauthorized(fn) {
  unauthorized = fn;
}

/**
 * request sends one API call and returns the decoded JSON (null for 204).
 * body: an object (sent as JSON) or a string with opts.contentType.
 * opts.noAuthRedirect: a 401 is the caller's business (the login form).
 */
export async function request(method, path, body, opts = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = opts.csrf ?? csrfToken;
  let payload;
  if (body !== undefined) {
    if (typeof body === "string") {
      payload = body;
      headers["Content-Type"] = opts.contentType || "text/plain";
    } else {
      payload = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload, credentials: "same-origin", signal: opts.signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new APIError(0, "network", "the gateway did not answer: " + err.message);
  }
  if (!res.ok) {
    const e = await errorFrom(res);
    if (res.status === 401 && !opts.noAuthRedirect) unauthorized(e);
    throw e;
  }
  if (res.status === 204) return null;
  const text = await res.text();
  const decoded = text ? JSON.parse(text) : null;
  if (opts.withHeaders) return { body: decoded, headers: res.headers };
  return decoded;
}

/**
 * errorFrom reads an error answer, {"error": {"code", "message"}} or the
 * older {"error": "message"}, into an APIError.
 */
export async function errorFrom(res) {
  let code = "", msg = "";
  try {
    const body = await res.json();
    if (body && typeof body.error === "string") msg = body.error;
    else if (body && body.error) ({ code = "", message: msg = "" } = body.error);
  } catch {
    // Not JSON: a proxy's page, say. The status says enough.
  }
  return new APIError(res.status, code, msg || `${res.status} ${res.statusText}`);
}

/** get is request("GET", ...) with a query built from params (empty ones dropped). */
export function get(path, params, opts) {
  return request("GET", withQuery(path, params), undefined, opts);
}

/**
 * getPage reads one page of a newest-first listing: rows, and next, the
 * before= cursor of the older page when more exist (X-Next-Before), else "".
 */
export async function getPage(path, params, opts = {}) {
  const { body, headers } = await request("GET", withQuery(path, params), undefined, { ...opts, withHeaders: true });
  return { rows: body || [], next: headers.get("X-Next-Before") || "" };
}

/**
 * fieldOf reads the field an apply or API error names ("field key: ...",
 * "... Target/web1: field address: ..."), or "" when it names none.
 */
export function fieldOf(message) {
  // "field subjects.users[1]: ..." names subjects.users.
  const m = /\bfield ([A-Za-z0-9_.]+)/.exec(message || "");
  return m ? m[1].replace(/\.$/, "") : "";
}

/** withQuery appends the non-empty params to path. */
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, v);
  }
  const s = q.toString();
  return s ? path + "?" + s : path;
}

/** describe turns any failure into one line for the page. */
export function describe(err) {
  if (err instanceof APIError) {
    if (err.status === 403) return "Not allowed: " + err.message;
    return err.message;
  }
  return String(err && err.message ? err.message : err);
}

/** enc escapes one path segment. */
export const enc = encodeURIComponent;
