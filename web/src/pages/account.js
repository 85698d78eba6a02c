// My account, for every user: their own SSH keys (adding one asks the
// current password: a key outlives this session), their password, a way
// to their API keys, and their second factor (TOTP). Enrolling shows the
// QR code (a data: URL, which the CSP's img-src allows), the secret and
// the recovery codes once; a first code from the app confirms it.

import { h, clear, message, field, input, time, table } from "../dom.js";
import { load, actionButton } from "./common.js";
import { get, request, enc, describe, fieldOf } from "../api.js";

export async function accountPage(main, ctx) {
  const path = `/api/v1/users/${enc(ctx.me.name)}/mfa`;
  const sec = h("section", { class: "box", "data-section": "mfa" });
  const out = h("div", { class: "status" });
  const keys = h("section", { "data-section": "my-ssh-keys" });
  main.append(h("h2", {}, "SSH keys"), keys, sshKeyForm(ctx, () => refreshKeys()),
    h("h2", {}, "Password"), passwordForm(ctx),
    h("h2", {}, "API keys"), h("p", {}, "Keys for scripts and the CLI: ", h("a", { href: "#/apikeys" }, "create and revoke them on API keys"), "."),
    h("h2", {}, "Second factor"), sec, out);
  const keysPath = `/api/v1/users/${enc(ctx.me.name)}/ssh-keys`;
  const keysOut = h("div", { class: "status" });
  keys.after(keysOut);
  const refreshKeys = () => load(keys, ctx, async () => table([
    { label: "Type", get: (k) => k.type, nowrap: true },
    { label: "Fingerprint", get: (k) => h("code", {}, k.fingerprint), nowrap: true },
    { label: "Comment", get: (k) => k.comment },
    { label: "", get: (k) => actionButton("Remove", keysOut, async () => {
      if (!confirm(`Remove the key ${k.fingerprint}? New SSH connections with it are refused at once.`)) return;
      await request("DELETE", keysPath + "/" + k.fingerprint.split("/").map(enc).join("/"));
      clear(keysOut, message("ok", "Key " + k.fingerprint + " removed."));
      await refreshKeys();
    }, { class: "danger" }) },
  ], await get(keysPath), [h("p", {}, "You have no SSH key: you cannot connect through the gateway yet."),
    h("p", { class: "hint" }, "Paste your public key (the line in ~/.ssh/id_ed25519.pub) below. No key yet? Run ssh-keygen -t ed25519.")]));
  await refreshKeys();

  const refresh = async () => {
    const st = await get(path);
    if (!ctx.live()) return;
    if (st.state === "active") {
      clear(sec,
        h("p", { "data-role": "mfa-state" }, "Active since ", time(st.activated_at), "."),
        h("p", {}, `${st.recovery_codes_left} recovery codes left. An admin resets a lost factor (portcullis mfa reset ${ctx.me.name}).`));
      return;
    }
    const start = h("button", { type: "button", onclick: async () => {
      start.disabled = true;
      clear(out);
      try {
        showEnrollment(await request("POST", path, {}));
      } catch (err) {
        clear(out, message("error", describe(err)));
      } finally {
        start.disabled = false;
      }
    } }, st.state === "pending" ? "Start again" : "Enroll an authenticator app");
    clear(sec,
      h("p", { "data-role": "mfa-state" }, st.state === "pending"
        ? "Enrolled but not confirmed: start again to get a new QR code."
        : "No second factor. Some targets may require one; enrolling also protects your console sign-in."),
      start);
  };

  // showEnrollment shows the new secret once; nothing keeps it.
  const showEnrollment = (en) => {
    const code = input("code", { required: true, autocomplete: "one-time-code", inputmode: "numeric", placeholder: "123456" });
    const confirmBtn = h("button", { type: "submit" }, "Confirm");
    const form = h("form", { "data-form": "mfa-confirm", onsubmit: async (ev) => {
      ev.preventDefault();
      confirmBtn.disabled = true;
      clear(out);
      try {
        await request("POST", path + "/confirm", { code: code.value.trim() });
        clear(out, message("ok", "Second factor active."));
        await refresh();
      } catch (err) {
        clear(out, message("error", describe(err)));
      } finally {
        confirmBtn.disabled = false;
      }
    } }, field("Code from the app", code), confirmBtn);
    clear(sec,
      message("info", "Scan the QR code with an authenticator app, then type the code it shows. The secret and the recovery codes are shown only now."),
      h("img", { src: "data:image/png;base64," + en.qr_png_base64, alt: "QR code of " + en.uri, class: "qr", "data-role": "mfa-qr", width: 256, height: 256 }),
      h("p", {}, "Secret, to type in by hand: ", h("code", { "data-role": "mfa-secret" }, en.secret)),
      h("h3", {}, "Recovery codes (each works once)"),
      h("ul", { class: "recovery-codes" }, en.recovery_codes.map((c) => h("li", {}, h("code", {}, c)))),
      form);
    code.focus();
  };

  await refresh();
}

// sshKeyForm adds a public key to the signed-in user.
function sshKeyForm(ctx, done) {
  const out = h("div", { class: "status" });
  const key = h("textarea", { name: "key", rows: 2, class: "mono wide", required: true, placeholder: "ssh-ed25519 AAAA… you@laptop", "aria-label": "Public key" });
  const current = h("input", { name: "current_password", type: "password", autocomplete: "current-password", required: true });
  const keyErr = h("span", { class: "field-error", "data-error-for": "key" });
  const pwErr = h("span", { class: "field-error", "data-error-for": "current_password" });
  const submit = h("button", { type: "submit" }, "Add key");
  const form = h("form", { class: "box", "data-form": "ssh-key", onsubmit: async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    clear(out);
    keyErr.textContent = pwErr.textContent = "";
    try {
      await request("POST", `/api/v1/users/${enc(ctx.me.name)}/ssh-keys`, { key: key.value.trim(), current_password: current.value });
      form.reset();
      clear(out, message("ok", "Key added: you can connect with it now."));
      await done();
    } catch (err) {
      const text = describe(err);
      const f = fieldOf(text);
      if (f === "key") keyErr.textContent = text;
      else if (f === "current_password") pwErr.textContent = "Wrong password.";
      clear(out, message("error", text));
    } finally {
      submit.disabled = false;
    }
  } },
  h("label", { class: "field wide" }, h("span", {}, "Public key"), key, keyErr),
  h("label", { class: "field" }, h("span", {}, "Your current password"), current,
    h("small", { class: "hint" }, "A key outlives this session, so adding one asks your password. Signed in with single sign-on only? Ask an admin."), pwErr),
  submit, out);
  return form;
}

// passwordForm changes the signed-in user's own console password.
function passwordForm(ctx) {
  const out = h("div", { class: "status" });
  const current = h("input", { name: "current_password", type: "password", autocomplete: "current-password", required: true });
  const next = h("input", { name: "password", type: "password", autocomplete: "new-password", required: true, minlength: 12 });
  const again = h("input", { name: "again", type: "password", autocomplete: "new-password", required: true });
  const submit = h("button", { type: "submit" }, "Change password");
  const form = h("form", { class: "box filters", "data-form": "my-password", onsubmit: async (ev) => {
    ev.preventDefault();
    clear(out);
    if (next.value !== again.value) return clear(out, message("error", "The two new passwords differ."));
    submit.disabled = true;
    try {
      await request("POST", `/api/v1/users/${enc(ctx.me.name)}/password`, { password: next.value, current_password: current.value });
      form.reset();
      // Every console session of the user ends with the old password,
      // this one too: the next request asks to log in again.
      clear(out, message("ok", "Password changed. Log in again with the new one."));
    } catch (err) {
      clear(out, message("error", describe(err)));
    } finally {
      submit.disabled = false;
    }
  } },
  field("Current password", current), field("New password (12 characters or more)", next), field("New password again", again), submit);
  return h("div", {}, form, out);
}
