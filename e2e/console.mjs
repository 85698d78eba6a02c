// The web console in a real browser: Debian's Chromium driven by
// playwright-core (from web/node_modules; Playwright never downloads a
// browser here). e2e/console_test.go starts the gateway and runs this with:
//
//   BASE_URL    https://127.0.0.1:PORT (self-signed certificate)
//   USER        an admin user, PASSWORD its console password
//   AUDITOR     an auditor, AUDITOR_PASSWORD its console password
//   WORD        a word printed in a recorded session (search and play it)
//   LIVE_WORD   a word printed by a session still running (watch, then kill it)
//   XFER_FILE   a file uploaded by a recorded sftp session (its table of operations)
//   TARGET, ACCOUNT  a target and a login on it the user may use
//   OUT_DIR     where screenshots go
//
// It exits non-zero with the reasons on any failed check, any console
// error, page error or Content-Security-Policy violation.

import { createRequire } from "node:module";
import { mkdtempSync, rmSync, mkdirSync, appendFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import path from "node:path";

const require = createRequire(new URL("../web/package.json", import.meta.url));
const { chromium, request } = require("playwright-core");

const env = (k) => {
  const v = process.env[k];
  if (!v) fail(`environment variable ${k} is not set`);
  return v;
};
const BASE = env("BASE_URL").replace(/\/$/, "");
const USER = env("USER");
const PASSWORD = env("PASSWORD");
const WORD = env("WORD");
const LIVE_WORD = process.env.LIVE_WORD || "";
// TAMPERED is set when the Go side edited the recording's file on disk:
// the player must say so above the screen.
const TAMPERED = process.env.TAMPERED === "1";
const TARGET = env("TARGET");
const ACCOUNT = env("ACCOUNT");
const OUT = env("OUT_DIR");
const AUDITOR = env("AUDITOR");
const AUDITOR_PASSWORD = env("AUDITOR_PASSWORD");
// The forms walk: a second target at TARGET_ADDR, an account on it whose
// key goes into AUTHORIZED_KEYS_FILE, a user with NEW_USER_KEY, and a
// connection with the shown ssh line (SSH_CLIENT_OPTS, a JSON array, give
// the key and known_hosts) in which TYPED_WORD is typed.
const TARGET_ADDR = env("TARGET_ADDR");
const AUTHORIZED_KEYS_FILE = env("AUTHORIZED_KEYS_FILE");
const NEW_USER_KEY = env("NEW_USER_KEY");
const SSH_CLIENT_OPTS = JSON.parse(env("SSH_CLIENT_OPTS"));
const TYPED_WORD = env("TYPED_WORD");
const XFER_FILE = env("XFER_FILE");
const AUDITOR_SSH_KEY = env("AUDITOR_SSH_KEY");
const NEW_TARGET = "web2";
const NEW_USER = "carol";

function fail(msg) {
  console.error("console.mjs: FAIL: " + msg);
  process.exit(1);
}

// Problems the page reports on its own; any of them fails the run.
const problems = [];
// Answers >= 400 the run did not ask for. Chromium logs each failed load as
// a console error; they are judged here, by URL, instead.
const expectedFailures = [];
const badResponses = [];

mkdirSync(OUT, { recursive: true });
const userData = mkdtempSync(path.join(tmpdir(), "pc-chromium-"));
let browser;
let shot = 0;

async function main() {
  browser = await chromium.launchPersistentContext(userData, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"],
    ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 900 },
  });
  await browser.grantPermissions(["clipboard-read", "clipboard-write"], { origin: BASE });
  const page = browser.pages()[0] || (await browser.newPage());
  page.setDefaultTimeout(20000);

  // CSP violations: Chromium logs most as console errors; the event catches
  // the rest. The init script is added by the driver, not the page, so the
  // page's own CSP does not apply to it.
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
    });
  });
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    if (m.text().startsWith("Failed to load resource")) return; // judged by badResponses
    problems.push(`console error: ${m.text()} (${m.location().url || "?"})`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("response", (r) => {
    if (r.status() < 400) return;
    const u = new URL(r.url());
    const i = expectedFailures.findIndex((x) => x.status === r.status() && x.path === u.pathname);
    if (i >= 0) expectedFailures.splice(i, 1);
    else badResponses.push(`${r.request().method()} ${u.pathname}${u.search} answered ${r.status()}`);
  });

  // Login. Before it, the app asks who it is and is told 401.
  expectedFailures.push({ status: 401, path: "/api/v1/me" });
  await step("login page", async () => {
    await page.goto(BASE + "/", { waitUntil: "load" });
    if (!new URL(page.url()).pathname.startsWith("/ui/")) throw new Error(`/ redirected to ${page.url()}, want /ui/`);
    await page.locator("form.login-form").waitFor();
    await screenshot(page, "login");
  });
  await step("wrong password is refused", async () => {
    expectedFailures.push({ status: 401, path: "/ui/login" });
    await page.fill("input[name=user]", USER);
    await page.fill("input[name=password]", PASSWORD + "-wrong");
    await page.click("form.login-form button[type=submit]");
    await page.locator("form.login-form .msg-error").waitFor();
  });
  await step("login", async () => {
    await page.fill("input[name=password]", PASSWORD);
    await page.click("form.login-form button[type=submit]");
    await page.locator("nav.nav").waitFor();
    const who = await page.locator(".who-name").textContent();
    if (who !== USER) throw new Error(`nav shows user ${who}, want ${USER}`);
  });
  const cookies = await browser.cookies(BASE);
  const session = cookies.find((c) => c.name === "__Host-pc_session");
  await step("session cookie is Secure, HttpOnly, SameSite=Strict", async () => {
    if (!session) throw new Error(`no __Host-pc_session cookie; have ${cookies.map((c) => c.name).join(", ")}`);
    if (!session.secure || !session.httpOnly || session.sameSite !== "Strict") {
      throw new Error(`cookie flags: secure=${session.secure} httpOnly=${session.httpOnly} sameSite=${session.sameSite}`);
    }
  });

  // Every page an admin has, in nav order, with a screenshot each.
  const pages = await page.locator("nav a[data-page]").evaluateAll((as) => as.map((a) => a.dataset.page));
  for (const want of ["targets", "users", "policies", "sessions", "recordings", "commands", "audit", "apikeys"]) {
    if (!pages.includes(want)) throw new Error(`nav lacks ${want} for an admin: ${pages.join(", ")}`);
  }
  for (const id of pages) {
    await step(`page ${id}`, async () => {
      await visit(page, id);
      const errs = await page.locator("#page .msg-error").allTextContents();
      if (errs.length) throw new Error(`page shows errors: ${errs.join(" | ")}`);
      await screenshots(page, id);
    });
  }
  await step("under 900 px the sidebar folds into a menu", async () => {
    await page.setViewportSize({ width: 800, height: 900 });
    try {
      if (await page.locator("nav a[data-page=targets]").isVisible()) throw new Error("the page links are shown at 800 px");
      await page.click("nav .menu-toggle");
      await page.locator("nav a[data-page=targets]").waitFor({ state: "visible" });
      await screenshot(page, "menu-open-800");
      await page.click("nav a[data-page=dashboard]");
      await page.locator("nav a[data-page=targets]").waitFor({ state: "hidden" });
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
    }
  });
  await step("targets lists the target", async () => {
    await visit(page, "targets");
    await expectText(page.locator("section[data-section=targets]"), TARGET);
  });

  await formsWalk(page);

  await step("policies: create through the editor", async () => {
    await visit(page, "policies");
    await page.click("details.expert > summary");
    const name = "e2e-editor-" + WORD.slice(-6);
    await page.fill("form[data-form=policy-editor] textarea", [
      "kind: Policy", `name: ${name}`, "type: target-access",
      `subjects: {users: [${USER}]}`, `targets: {names: [${TARGET}]}`,
      `target_users: [${ACCOUNT}]`, "actions: [exec]", ""].join("\n"));
    await page.click("form[data-form=policy-editor] button[type=submit]");
    await expectText(page.locator("[data-role=apply-result] .msg-ok"), `Policy/${name}`);
    await expectText(page.locator("section[data-section=policies]"), name);
    // Viewing it shows the stored document; Edit loads it back.
    await page.locator("section[data-section=policies] button.link", { hasText: name }).click();
    await expectText(page.locator("[data-role=policy-yaml]"), `name: ${name}`);
    await screenshot(page, "policy-created");
  });
  await step("policies: an invalid document is refused with the apply error", async () => {
    expectedFailures.push({ status: 400, path: "/api/v1/apply" });
    await page.fill("form[data-form=policy-editor] textarea", [
      "kind: Policy", "name: e2e-bad", "type: target-access", `subjects: {users: [${USER}]}`,
      `targets: {names: [${TARGET}]}`, `target_users: [${ACCOUNT}]`, "actions: [fly]", ""].join("\n"));
    await page.click("form[data-form=policy-editor] button[type=submit]");
    const msg = await page.locator("[data-role=apply-result] .apply-error").textContent();
    if (!/e2e-bad/.test(msg) || !/actions/.test(msg) || !/fly/.test(msg)) throw new Error(`apply error does not name the document and field: ${msg}`);
    await screenshot(page, "policy-error");
  });
  await step("policies: explain", async () => {
    const f = page.locator("form[data-form=explain]");
    await f.locator("input[name=target]").fill(TARGET);
    await f.locator("select[name=action]").selectOption("exec");
    await f.locator("input[name=command]").fill("uptime");
    await f.locator("input[name=source]").fill("127.0.0.1");
    await f.locator("button[type=submit]").click();
    await expectText(page.locator("[data-role=explain-result] .msg-ok"), "Allowed by");
    await screenshot(page, "policy-explain");
  });

  let secret = "";
  await step("API keys: create shows the secret once", async () => {
    await visit(page, "apikeys");
    await page.fill("form[data-form=apikey] input[name=name]", "e2e-key");
    await page.click("form[data-form=apikey] button[type=submit]");
    const box = page.locator("[data-role=secret]");
    await box.waitFor();
    secret = await box.inputValue();
    if (secret.length < 20) throw new Error(`secret looks too short: ${secret.length} characters`);
    await expectText(page.locator("section[data-section=new-key]"), "only time");
    await page.click("section[data-section=new-key] button:has-text('Copy')");
    await expectText(page.locator("[data-role=copy-status]"), "Copied");
    const clip = await page.evaluate(() => navigator.clipboard.readText());
    if (clip !== secret) throw new Error("the clipboard does not hold the key");
    await expectText(page.locator("section[data-section=apikeys]"), "e2e-key");
    await screenshot(page, "apikey-created");
  });
  await step("API keys: the list never shows the secret", async () => {
    await visit(page, "sessions");
    await visit(page, "apikeys");
    await expectText(page.locator("section[data-section=apikeys]"), "e2e-key");
    const html = await page.content();
    const text = await page.locator("body").innerText();
    const tail = secret.slice(-16);
    if (html.includes(tail) || text.includes(tail)) throw new Error("the key's secret is on the page after leaving it");
    const api = await page.evaluate(async () => (await fetch("/api/v1/apikeys", { credentials: "same-origin" })).text());
    if (api.includes(tail)) throw new Error("GET /api/v1/apikeys returns the secret");
  });
  await step("API keys: the key works as X-API-KEY", async () => {
    // A client of its own: no cookies, so only the key can authenticate.
    const rc = await request.newContext({ ignoreHTTPSErrors: true });
    try {
      const res = await rc.get(BASE + "/api/v1/me", { headers: { "X-API-KEY": secret } });
      if (res.status() !== 200) throw new Error(`GET /api/v1/me with the key: ${res.status()} ${await res.text()}`);
      const me = await res.json();
      if (me.name !== USER || me.via !== "apikey") throw new Error(`GET /api/v1/me with the key: ${JSON.stringify(me)}`);
    } finally {
      await rc.dispose();
    }
  });

  await step("recordings: search, play the hit, change speed", async () => {
    await visit(page, "recordings");
    await page.fill("form[data-form=search] input[name=q]", WORD);
    await page.click("form[data-form=search] button[type=submit]");
    const hit = page.locator("section[data-section=search-results] tbody tr").first();
    await hit.waitFor();
    await expectText(hit, WORD);
    await hit.locator("button:has-text('Play')").click();
    const screen = page.locator("[data-role=player]");
    await expectText(screen, WORD);
    if (TAMPERED) await expectText(page.locator("[data-role=integrity]"), "this recording was tampered with");
    await screenshot(page, "recording-playing");
    await page.selectOption("section[data-section=player] select[name=speed]", "4");
    await expectText(screen, WORD);
    const href = await page.locator("section[data-section=player] a:has-text('Download')").getAttribute("href");
    if (!/\/cast\?purpose=download$/.test(href || "")) throw new Error(`download link ${href}`);
  });

  await step("recordings: a file transfer is a table of operations", async () => {
    await visit(page, "recordings");
    const row = page.locator("section[data-section=recordings] tbody tr:has-text('file-transfer')").first();
    await row.waitFor();
    await row.locator("button:has-text('Play')").click();
    const ops = page.locator("[data-role=file-operations]");
    await expectText(ops, XFER_FILE);
    await expectText(ops.locator("tbody tr").first(), "upload");
    if (await page.locator("[data-role=player] .ap-player, [data-role=player] .ap-wrapper").count() !== 0) throw new Error("a file transfer was played as a terminal");
    await screenshot(page, "recording-file-transfer");
  });

  await step("commands: the session's command is listed", async () => {
    await visit(page, "commands");
    await expectText(page.locator("section[data-section=commands]"), WORD);
  });
  await step("audit: filters by type", async () => {
    await visit(page, "audit");
    await page.fill("form[data-form=audit] input[name=type]", "recording.download");
    await page.click("form[data-form=audit] button[type=submit]");
    await expectText(page.locator("section[data-section=audit]"), "recording.download");
    await screenshot(page, "audit-filtered");
  });

  if (LIVE_WORD) {
    await step("sessions: watch live, then kill", async () => {
      await visit(page, "sessions");
      const row = page.locator("section[data-section=sessions] tbody tr").first();
      await row.waitFor();
      await row.locator("button:has-text('Watch')").click();
      await expectText(page.locator("[data-role=live-player]"), LIVE_WORD);
      await screenshot(page, "session-live");
      page.once("dialog", (d) => d.accept());
      await row.locator("button:has-text('Kill')").click();
      await expectText(page.locator("#page .msg-ok"), "ended");
      await expectText(page.locator("section[data-section=sessions]"), "No active sessions");
      await screenshot(page, "session-killed");
    });
  }

  await step("logout", async () => {
    await page.click("nav button:has-text('Log out')");
    await page.locator("form.login-form").waitFor();
    // The old cookie is gone or dead: a reload lands on the login page.
    expectedFailures.push({ status: 401, path: "/api/v1/me" });
    await page.reload();
    await page.locator("form.login-form").waitFor();
  });

  // An auditor sees what the role allows and no more: no user admin, no
  // policy editor, no delete; search, recordings and audit are there.
  await step("auditor: login", async () => {
    await page.fill("input[name=user]", AUDITOR);
    await page.fill("input[name=password]", AUDITOR_PASSWORD);
    await page.click("form.login-form button[type=submit]");
    await page.locator("nav.nav").waitFor();
  });
  await step("auditor: pages", async () => {
    const got = await page.locator("nav a[data-page]").evaluateAll((as) => as.map((a) => a.dataset.page));
    if (got.includes("users")) throw new Error(`an auditor's nav offers users: ${got.join(", ")}`);
    for (const id of got) {
      await visit(page, id);
      const errs = await page.locator("#page .msg-error").allTextContents();
      if (errs.length) throw new Error(`page ${id} shows errors: ${errs.join(" | ")}`);
      await screenshots(page, "auditor-" + id);
    }
    await visit(page, "policies");
    if (await page.locator("form[data-form=policy-editor]").count()) throw new Error("an auditor sees the policy editor");
    await visit(page, "recordings");
    if (await page.locator("section[data-section=recordings] button:has-text('Delete')").count()) throw new Error("an auditor sees Delete");
    await page.fill("form[data-form=search] input[name=q]", WORD);
    await page.click("form[data-form=search] button[type=submit]");
    await expectText(page.locator("section[data-section=search-results]"), WORD);
    await screenshot(page, "auditor-recordings");
  });
  await step("auditor: an audit row leads to its recording", async () => {
    await visit(page, "audit");
    await page.fill("form[data-form=audit] input[name=type]", "session.start");
    await page.fill("form[data-form=audit] input[name=target]", NEW_TARGET);
    await page.click("form[data-form=audit] button[type=submit]");
    const row = page.locator("section[data-section=audit] tbody tr").first();
    await expectText(row, NEW_TARGET);
    const sid = (await row.locator("[data-role=session-link]").textContent()).trim();
    if (!sid) throw new Error("the audit row has no session link");
    await row.locator("a[data-action=play-at]").click();
    await page.waitForFunction((sid) => location.hash.startsWith("#/recordings?") && location.hash.includes(sid), sid);
    await expectText(page.locator("section[data-section=player] h2"), sid);
    await expectText(page.locator("[data-role=player]"), TYPED_WORD);
    await screenshots(page, "auditor-audit-to-recording");
  });
  await step("auditor: marks the recording reviewed", async () => {
    const f = page.locator("[data-role=session-review]").locator("..");
    await f.locator("input[name=comment]").fill("checked in the e2e run");
    await f.locator("button[data-action=review-reviewed]").click();
    await expectText(page.locator("[data-role=session-review]"), "Marked reviewed by " + AUDITOR);
  });
  await step("auditor: exports a signed report and opens an access review", async () => {
    await visit(page, "reports");
    const f = page.locator("form[data-form=report]");
    await f.locator("select[name=kind]").selectOption("access-log");
    await f.locator("input[name=since]").fill("1d");
    await f.locator("button[type=submit]").click();
    const out = page.locator("[data-role=report-out]");
    await expectText(out, "rows, signed");
    const names = await out.locator("a[data-role=report-file]").allTextContents();
    if (names.length !== 4 || !names.some((n) => n.endsWith(".pdf")) || !names.some((n) => n.endsWith(".manifest.json"))) {
      throw new Error(`report files: ${names.join(", ")}`);
    }
    await screenshots(page, "auditor-report-exported");
    await page.locator("button[data-action=start-review]").click();
    await expectText(page.locator("section[data-section=campaign] h2"), "Review ");
    await screenshots(page, "auditor-access-review");
  });
  await step("auditor: adds and removes their own SSH key", async () => {
    await visit(page, "account");
    const f = page.locator("form[data-form=ssh-key]");
    expectedFailures.push({ status: 403, path: `/api/v1/users/${AUDITOR}/ssh-keys` });
    await f.locator("textarea[name=key]").fill(AUDITOR_SSH_KEY);
    await f.locator("input[name=current_password]").fill("not my password");
    await f.locator("button[type=submit]").click();
    await expectText(f.locator("[data-error-for=current_password]"), "Wrong password");
    await f.locator("input[name=current_password]").fill(AUDITOR_PASSWORD);
    await f.locator("button[type=submit]").click();
    await expectText(f.locator(".msg-ok"), "Key added");
    const keys = page.locator("section[data-section=my-ssh-keys]");
    await expectText(keys, "SHA256:");
    await screenshots(page, "auditor-own-ssh-key");
    page.once("dialog", (d) => d.accept());
    await keys.locator("button:has-text('Remove')").click();
    await expectText(keys, "no SSH key");
  });
  await step("auditor: a forbidden page is a message", async () => {
    await page.goto(BASE + "/ui/#/users");
    await expectText(page.locator("#page .msg-error"), "cannot use this page");
  });
}

// formsWalk is the admin's day one, from forms alone: a target, an account
// on it (its key installed where the target reads it), a user, an access
// policy and a recording policy; then the ssh line the console shows is
// run with the real ssh client, the session is seen live on the
// dashboard, and a word typed in it is found by search and played.
async function formsWalk(page) {
  const submitForm = async (kind) => {
    await page.click(`form[data-form=resource-${kind}] button[type=submit]`);
  };
  await step("forms: a target, with a field error next to the field", async () => {
    await visit(page, "targets");
    await page.click("[data-action=new-target]");
    const f = page.locator("form[data-form=resource-target]");
    await f.locator("input[name=name]").fill(NEW_TARGET);
    expectedFailures.push({ status: 400, path: "/api/v1/apply" });
    await f.locator("input[name=address]").fill("no port here");
    await submitForm("target");
    await expectText(f.locator("[data-error-for=address]"), "address");
    if ((await f.locator("input[name=address]").getAttribute("aria-invalid")) !== "true") throw new Error("the address field is not marked invalid");
    await screenshots(page, "form-field-error");
    await f.locator("input[name=address]").fill(TARGET_ADDR);
    await f.locator("input[name=labels]").fill("env=e2e");
    await submitForm("target");
    await expectText(f.locator("[data-role=form-result] .msg-ok"), "created");
    await expectText(page.locator("section[data-section=targets]"), NEW_TARGET);
  });
  await step("forms: an account, its public key installed on the target", async () => {
    await page.click("[data-action=new-account]");
    const f = page.locator("form[data-form=resource-account]");
    await f.locator("input[name=target]").fill(NEW_TARGET);
    await f.locator("input[name=name]").fill(ACCOUNT);
    await submitForm("account");
    await expectText(f.locator("[data-role=form-result] .msg-ok"), "created");
    const key = page.locator(`section[data-section=accounts] tr:has-text("${NEW_TARGET}/${ACCOUNT}") [data-role=account-pubkey]`);
    await key.waitFor();
    const pub = await key.inputValue();
    if (!/^ssh-(ed25519|rsa) /.test(pub)) throw new Error(`the account's public key reads ${JSON.stringify(pub)}`);
    // What an admin does with the shown key: install it on the target.
    appendFileSync(AUTHORIZED_KEYS_FILE, pub.trim() + "\n");
    await screenshots(page, "account-created");
  });
  await step("forms: a user", async () => {
    await visit(page, "users");
    await page.click("[data-action=new-user]");
    const f = page.locator("form[data-form=resource-user]");
    await f.locator("input[name=name]").fill(NEW_USER);
    await f.locator("input[name=email]").fill(NEW_USER + "@example.com");
    await f.locator("textarea[name=ssh_keys]").fill(NEW_USER_KEY);
    await submitForm("user");
    await expectText(f.locator("[data-role=form-result] .msg-ok"), "created");
    await expectText(page.locator("section[data-section=users]"), NEW_USER);
  });
  await step("forms: a group, then deleted", async () => {
    await page.click("[data-action=new-group]");
    const f = page.locator("form[data-form=resource-group]");
    await f.locator("input[name=name]").fill("e2e-ops");
    await f.locator("input[name=members]").fill(NEW_USER);
    await f.locator("button[type=submit]").click();
    await expectText(f.locator("[data-role=form-result] .msg-ok"), "created");
    const row = page.locator("section[data-section=groups] tr:has-text('e2e-ops')");
    await row.waitFor();
    page.once("dialog", (d) => d.accept());
    await row.locator("button:has-text('Delete')").click();
    await expectText(page.locator("#page .msg-ok"), "Group e2e-ops deleted");
    await row.waitFor({ state: "detached" });
  });
  await step("forms: editing keeps the fields the form does not show", async () => {
    await visit(page, "policies");
    await page.locator("section[data-section=policies] tr:has-text('kept-fields') button[data-action=edit-form]").click();
    const f = page.locator("form[data-form=resource-policy]");
    if (!(await f.locator("input[name=name]").getAttribute("readonly") !== null)) throw new Error("the name of a stored policy is editable");
    await f.locator("input[name=actions]").fill("exec, shell");
    await f.locator("input[name=max_session]").fill("2h");
    await f.locator("button[type=submit]").click();
    await expectText(f.locator("[data-role=form-result] .msg-ok"), "updated");
    const p = await page.evaluate(async () => (await fetch("/api/v1/resources/policy/kept-fields", { credentials: "same-origin" })).json());
    if (!p.valid_until || !p.valid_until.startsWith("2099-01-01")) throw new Error(`valid_until was lost: ${JSON.stringify(p)}`);
    if (p.actions.join(",") !== "exec,shell" || !/^2h/.test(p.max_session)) throw new Error(`the edit did not apply: ${JSON.stringify(p)}`);
    await screenshots(page, "policy-form-edit");
  });
  await step("forms: an access policy and a recording policy", async () => {
    await visit(page, "policies");
    for (const [name, type, extra] of [["e2e-web2", "target-access", true], ["e2e-web2-rec", "session-recording", false]]) {
      await page.click("[data-action=new-policy]");
      const f = page.locator("form[data-form=resource-policy]");
      await f.locator("input[name=name]").fill(name);
      await f.locator("select[name=type]").selectOption(type);
      await f.locator("input[name='subjects.users']").fill(`${USER}, ${NEW_USER}`);
      await f.locator("input[name='targets.names']").fill(NEW_TARGET);
      if (extra) {
        await f.locator("input[name=target_users]").fill(ACCOUNT);
        await f.locator("input[name=actions]").fill("shell, exec");
      }
      await submitForm("policy");
      await expectText(f.locator("[data-role=form-result] .msg-ok"), "created");
      await expectText(page.locator("section[data-section=policies]"), name);
    }
    await screenshots(page, "policies-created");
  });
  let line = "";
  await step("targets: the ssh line for the viewer", async () => {
    await visit(page, "targets");
    const el = page.locator(`section[data-section=targets] tr:has-text("${NEW_TARGET}") [data-role=ssh-line]`);
    await el.first().waitFor();
    line = (await el.first().textContent()).trim();
    const want = new RegExp(`^ssh -p \\d+ ${USER}~${ACCOUNT}~${NEW_TARGET}@127\\.0\\.0\\.1$`);
    if (!want.test(line)) throw new Error(`the ssh line reads ${JSON.stringify(line)}`);
    await screenshots(page, "targets-ssh-line");
  });
  await step("targets: pin the learned host key", async () => {
    const row = page.locator(`section[data-section=targets] tr:has-text("${TARGET}")`).first();
    await expectText(row.locator("[data-role=host-key]"), "learned, not pinned");
    await row.locator("button[data-action=pin]").click();
    await expectText(page.locator("#page .msg-ok"), "pinned");
    await expectText(page.locator(`section[data-section=targets] tr:has-text("${TARGET}") [data-role=host-key]`), "pinned");
    if (await page.locator(`section[data-section=targets] tr:has-text("${TARGET}") button[data-action=pin]`).count()) throw new Error("Pin is still offered");
  });
  const ssh = await step("ssh: connect with the shown line and type a word", async () => {
    const args = line.split(/\s+/).slice(1);
    const child = spawn("ssh", [...SSH_CLIENT_OPTS, "-tt", ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let seen = "";
    child.stdout.on("data", (d) => { seen += d.toString(); });
    child.stderr.on("data", (d) => { seen += d.toString(); });
    const exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
    const waitSeen = async (what, ms) => {
      for (const end = Date.now() + ms; Date.now() < end;) {
        if (seen.includes(what)) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      child.kill();
      throw new Error(`ssh did not show ${JSON.stringify(what)}; it shows ${JSON.stringify(seen.slice(-400))}`);
    };
    // The word is typed in two halves, so that only the shell's output
    // (not the echo of the line) holds it whole.
    const half = TYPED_WORD.length >> 1;
    child.stdin.write(`w=${TYPED_WORD.slice(0, half)}; echo "$w""${TYPED_WORD.slice(half)}"\n`);
    await waitSeen(TYPED_WORD, 15000);
    return { child, exited };
  });
  await step("dashboard: the session is live", async () => {
    await visit(page, "dashboard");
    await expectText(page.locator("section[data-section=live-sessions]"), NEW_TARGET);
    await screenshots(page, "dashboard-live");
  });
  await step("ssh: the session ends", async () => {
    ssh.child.stdin.write("exit\n");
    const code = await Promise.race([ssh.exited, new Promise((r) => setTimeout(() => r("timeout"), 10000))]);
    if (code !== 0) { ssh.child.kill(); throw new Error(`ssh exited with ${code}`); }
  });
  await step("recordings: find the typed word and jump to it", async () => {
    await visit(page, "recordings");
    const hit = page.locator(`section[data-section=search-results] tbody tr:has-text("${NEW_TARGET}")`).first();
    // The index is committed in batches: search again until it is there.
    for (let i = 0; ; i++) {
      await page.fill("form[data-form=search] input[name=q]", TYPED_WORD);
      await page.click("form[data-form=search] button[type=submit]");
      if (await hit.waitFor({ timeout: 2000 }).then(() => true, () => false)) break;
      if (i >= 15) throw new Error("search never found the typed word");
    }
    await hit.locator("button:has-text('Play')").click();
    await expectText(page.locator("[data-role=player]"), TYPED_WORD);
    // The match is shown with the word marked, and the player starts at it.
    await expectText(page.locator("section[data-section=player] [data-role=hit] mark"), TYPED_WORD);
    await page.locator("section[data-section=player] [data-role=start-at]").waitFor();
    await screenshots(page, "search-jump");
  });
  await step("audit: Older pages back through the log", async () => {
    await visit(page, "audit");
    await page.fill("form[data-form=audit] input[name=limit]", "3");
    await page.click("form[data-form=audit] button[type=submit]");
    const firstID = async () => (await page.locator("section[data-section=audit] tbody tr td").first().textContent()).trim();
    await page.locator("section[data-section=audit] tbody tr").first().waitFor();
    const newest = Number(await firstID());
    await page.click("section[data-section=audit] [data-action=older]");
    await page.locator("section[data-section=audit] [data-action=newest]").waitFor();
    const older = Number(await firstID());
    if (!(older < newest - 2)) throw new Error(`the older page starts at ${older}, the newest at ${newest}`);
    await expectText(page.locator("section[data-section=audit] thead"), "Session");
  });
}

// step runs one check; a failure records its name and a screenshot and
// stops the run (later steps depend on earlier ones).
async function step(name, fn) {
  try {
    const v = await fn();
    console.log("ok   " + name);
    return v;
  } catch (err) {
    const page = browser && browser.pages()[0];
    if (page) await screenshot(page, "FAILED-" + name.replace(/[^a-z0-9]+/gi, "-")).catch(() => {});
    throw new Error(`${name}: ${err.message}`);
  }
}

async function visit(page, id) {
  await page.click(`nav a[data-page=${id}]`);
  await page.waitForFunction((id) => location.hash === "#/" + id, id);
  // Pages show "Loading…" until every section has its answer.
  await page.waitForFunction(() => ![...document.querySelectorAll("#page .msg-info")].some((e) => e.textContent === "Loading…"));
}

async function expectText(locator, text) {
  await locator.first().waitFor();
  await locator.first().filter({ hasText: text }).waitFor().catch(async () => {
    const got = (await locator.first().innerText().catch(() => "?")).slice(0, 400);
    throw new Error(`expected ${JSON.stringify(text)} in ${locator}; it shows: ${JSON.stringify(got)}`);
  });
}

// screenshots takes the page at 1280 and at 800 px wide.
async function screenshots(page, name) {
  for (const width of [1280, 800]) {
    await page.setViewportSize({ width, height: 900 });
    await screenshot(page, `${name}-${width}`);
  }
  await page.setViewportSize({ width: 1280, height: 900 });
}

async function screenshot(page, name) {
  const file = path.join(OUT, String(++shot).padStart(2, "0") + "-" + name + ".png");
  await page.screenshot({ path: file, fullPage: true });
  console.log("screenshot " + file);
}

let code = 0;
try {
  await main();
} catch (err) {
  console.error("console.mjs: FAIL: " + err.message);
  code = 1;
}
for (const p of problems) console.error("console.mjs: FAIL: " + p);
for (const r of badResponses) console.error("console.mjs: FAIL: unexpected answer: " + r);
if (problems.length || badResponses.length) code = 1;
if (browser) await browser.close().catch(() => {});
rmSync(userData, { recursive: true, force: true });
if (code === 0) console.log("console.mjs: PASS");
process.exit(code);
