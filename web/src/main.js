// The Portcullis web console: a single page with hash routes (#/targets,
// #/recordings, ...) over the gateway's JSON API. No framework: each page
// is a function that fills a container, and a route change throws the
// previous page away (its cleanup stops players and streams).

import "asciinema-player/dist/bundle/asciinema-player.css";
import "./style.css";
import { h, clear, message, field, input } from "./dom.js";
import { request, setCSRF, onUnauthorized, describe, APIError } from "./api.js";
import { targetsPage } from "./pages/targets.js";
import { identitiesPage } from "./pages/identities.js";
import { policiesPage } from "./pages/policies.js";
import { sessionsPage } from "./pages/sessions.js";
import { recordingsPage } from "./pages/recordings.js";
import { commandsPage } from "./pages/commands.js";
import { auditPage } from "./pages/audit.js";
import { apikeysPage } from "./pages/apikeys.js";
import { accountPage } from "./pages/account.js";
import { dashboardPage } from "./pages/dashboard.js";
import { settingsPage } from "./pages/settings.js";
import { jitPage } from "./pages/jit.js";
import { reportsPage } from "./pages/reports.js";

// Which pages a role sees, as the API decides (internal/api/authz.go):
// every user may list the targets they can reach, their own sessions,
// recordings, commands, audit events and API keys, and ask policy explain
// about themselves; auditors read everyone's records; admins everything.
// Pages check finer rights themselves (search needs auditor, the editor
// admin). The API enforces all of this; hiding only spares a dead end.
const PAGES = [
  { id: "dashboard", title: "Dashboard", render: dashboardPage, show: () => true },
  { id: "targets", title: "Targets & environments", render: targetsPage, show: () => true },
  { id: "users", title: "Users & groups", render: identitiesPage, show: (r) => r.admin },
  { id: "policies", title: "Policies", render: policiesPage, show: () => true },
  { id: "sessions", title: "Active sessions", render: sessionsPage, show: () => true },
  { id: "recordings", title: "Recordings", render: recordingsPage, show: () => true },
  { id: "commands", title: "Command history", render: commandsPage, show: () => true },
  { id: "audit", title: "Audit log", render: auditPage, show: () => true },
  { id: "jit", title: "Access requests", render: jitPage, show: () => true },
  { id: "reports", title: "Reports & reviews", render: reportsPage, show: (r) => r.auditor },
  { id: "apikeys", title: "API keys", render: apikeysPage, show: () => true },
  { id: "account", title: "My account", render: accountPage, show: () => true },
  { id: "settings", title: "Settings", render: settingsPage, show: (r) => r.admin },
];

const root = document.getElementById("app");
let me = null; // {name, roles, via, csrf_token}
let cleanup = null; // the current page's teardown
let generation = 0; // bumps on every route change; stale renders check it

function roleSet(roles) {
  const s = new Set(roles || []);
  // Admins hold every auditor right too.
  return { admin: s.has("admin"), auditor: s.has("admin") || s.has("auditor"), list: [...s] };
}

// SSO_ERRORS turns the codes of /ui/#sso_error= (set by the gateway's
// single sign-on callback) into sentences; the gateway log has the detail.
const SSO_ERRORS = {
  unavailable: "The identity provider cannot be reached; try again later or log in with a password.",
  expired: "The single sign-on expired or was already used; start again.",
  denied: "The identity provider did not sign you in.",
  rejected: "The identity provider's answer was refused; ask an admin to check the gateway log.",
  no_user: "No Portcullis user is linked to this account; ask an admin.",
  mfa_not_enrolled: "A verification code is required and no second factor is enrolled; ask an admin.",
  internal: "Single sign-on failed; the gateway log has the detail.",
};

// ssoResult reads and clears what the single sign-on callback left in
// the fragment: a one-use token for the code step, or an error code.
function ssoResult() {
  const m = /^#(mfa|sso_error)=([A-Za-z0-9_%-]+)$/.exec(location.hash);
  if (!m) return null;
  history.replaceState(null, "", location.pathname);
  return m[1] === "mfa" ? { mfa: decodeURIComponent(m[2]) } : { error: SSO_ERRORS[m[2]] ?? SSO_ERRORS.internal };
}

async function boot() {
  onUnauthorized(() => showLogin("Your session has ended; log in again."));
  const sso = ssoResult();
  if (sso?.mfa) return showCode(sso.mfa);
  try {
    me = await request("GET", "/api/v1/me", undefined, { noAuthRedirect: true });
  } catch (err) {
    if (err instanceof APIError && err.status === 401) return showLogin(sso?.error);
    clear(root, h("main", { class: "login" }, message("error", "Cannot reach the gateway: " + describe(err))));
    return;
  }
  setCSRF(me.csrf_token);
  showShell();
}

function showLogin(note) {
  me = null;
  teardown();
  const user = input("user", { autocomplete: "username", required: true, autofocus: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const status = h("div", { class: "status" }, note ? message("info", note) : null);
  const submit = h("button", { type: "submit" }, "Log in");
  const form = h("form", { class: "login-form", onsubmit: async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    clear(status);
    try {
      // The pre-login CSRF token: the cookie it sets and the header we
      // send must match, which a cross-site form cannot arrange.
      const pre = await request("GET", "/ui/login-csrf", undefined, { noAuthRedirect: true });
      const ans = await request("POST", "/ui/login", { user: user.value, password: password.value },
        { csrf: pre.csrf_token ?? pre.csrf, noAuthRedirect: true });
      password.value = "";
      // A second factor is asked: no session yet, a one-use token.
      if (ans.mfa_required) return showCode(ans.token);
      await signedIn(ans);
    } catch (err) {
      let text = describe(err);
      if (err instanceof APIError && err.status === 401) text = "Wrong user name or password.";
      if (err instanceof APIError && err.status === 403 && err.code === "mfa_not_enrolled") text = err.message;
      if (err instanceof APIError && err.status === 429) text = "Too many attempts; wait a minute and try again.";
      clear(status, message("error", text));
    } finally {
      submit.disabled = false;
    }
  } },
  h("h1", {}, "Portcullis"),
  field("User", user), field("Password", password), submit, status);
  const ssoSlot = h("div", { class: "sso" });
  clear(root, h("main", { class: "login" }, form, ssoSlot));
  user.focus();
  // Single sign-on is a plain navigation: the gateway redirects to the
  // provider and back.
  request("GET", "/ui/login-csrf", undefined, { noAuthRedirect: true }).then((pre) => {
    if (pre.sso) clear(ssoSlot, h("a", { class: "button", href: "/ui/oidc/login", "data-action": "sso" }, "Sign in with SSO"));
  }, () => {});
}

// signedIn finishes a sign-in whose answer carries the session's CSRF
// token.
async function signedIn(ans) {
  setCSRF(ans.csrf_token);
  // The roles come from /me, read from the user's current resource,
  // as on every later page load.
  me = await request("GET", "/api/v1/me", undefined, { noAuthRedirect: true });
  if (me.csrf_token) setCSRF(me.csrf_token);
  if (!location.hash || location.hash === "#/login") location.hash = "";
  showShell();
}

// showCode asks the verification code after a right password. The token
// is good for one try: any refusal goes back to the password.
function showCode(token) {
  const code = input("code", { autocomplete: "one-time-code", inputmode: "numeric", required: true, autofocus: true });
  const status = h("div", { class: "status" });
  const submit = h("button", { type: "submit" }, "Verify");
  const form = h("form", { class: "login-form", "data-form": "mfa-code", onsubmit: async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    try {
      const pre = await request("GET", "/ui/login-csrf", undefined, { noAuthRedirect: true });
      const ans = await request("POST", "/ui/login/mfa", { token, code: code.value.trim() },
        { csrf: pre.csrf_token ?? pre.csrf, noAuthRedirect: true });
      await signedIn(ans);
    } catch (err) {
      showLogin(err instanceof APIError && err.status === 429
        ? "Too many wrong codes; wait a minute and try again."
        : "Verification failed: " + describe(err));
    }
  } },
  h("h1", {}, "Portcullis"),
  h("p", {}, "Enter the code from your authenticator app, or a recovery code."),
  field("Verification code", code), submit, status);
  clear(root, h("main", { class: "login" }, form));
  code.focus();
}

function showShell() {
  const roles = roleSet(me.roles);
  const pages = PAGES.filter((p) => p.show(roles));
  // Under 900 px the sidebar folds into a menu button (style.css); a
  // click on a page closes it again.
  const toggle = h("button", { type: "button", class: "menu-toggle", "aria-expanded": "false", "aria-controls": "nav-pages",
    onclick: () => {
      const open = nav.classList.toggle("open");
      toggle.setAttribute("aria-expanded", String(open));
    } }, "☰ Menu");
  const nav = h("nav", { class: "nav" },
    h("div", { class: "brand-row" }, h("div", { class: "brand" }, "Portcullis"), toggle),
    h("ul", { id: "nav-pages" }, pages.map((p) => h("li", {}, h("a", { href: "#/" + p.id, "data-page": p.id,
      onclick: () => { nav.classList.remove("open"); toggle.setAttribute("aria-expanded", "false"); } }, p.title)))),
    h("div", { class: "who" },
      h("span", { class: "who-name" }, me.name),
      roles.list.length ? h("span", { class: "who-roles" }, roles.list.join(", ")) : null,
      h("button", { type: "button", class: "link", onclick: logout }, "Log out")));
  const main = h("main", { class: "page", id: "page" });
  clear(root, h("div", { class: "shell" }, nav, main));
  window.onhashchange = () => route(pages, roles, nav, main);
  route(pages, roles, nav, main);
}

function route(pages, roles, nav, main) {
  if (!me) return;
  const id = (location.hash.replace(/^#\/?/, "").split(/[/?]/)[0]) || pages[0]?.id;
  const page = pages.find((p) => p.id === id);
  teardown();
  const gen = ++generation;
  for (const a of nav.querySelectorAll("a[data-page]")) {
    a.classList.toggle("active", a.dataset.page === id);
    if (a.dataset.page === id) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (!page) {
    clear(main, message("error", PAGES.some((p) => p.id === id) ? "Your role cannot use this page." : "No such page."));
    return;
  }
  document.title = page.title + " · Portcullis";
  clear(main, h("h1", {}, page.title));
  const ctx = {
    me, roles,
    // live: false once the user has left the page, so late answers are dropped.
    live: () => gen === generation,
    onCleanup: (fn) => { const prev = cleanup; cleanup = () => { fn(); if (prev) prev(); }; },
  };
  Promise.resolve(page.render(main, ctx)).catch((err) => {
    if (ctx.live()) main.appendChild(message("error", describe(err)));
  });
}

function teardown() {
  if (cleanup) {
    const fn = cleanup;
    cleanup = null;
    try { fn(); } catch (err) { console.warn("page cleanup failed", err); }
  }
}

async function logout() {
  try {
    await request("POST", "/ui/logout", undefined, { noAuthRedirect: true });
  } catch (err) {
    // Logged out or not, the page forgets the session; say if the
    // gateway did not confirm.
    return showLogin("Logout failed: " + describe(err));
  }
  setCSRF("");
  showLogin("Logged out.");
}

boot();
