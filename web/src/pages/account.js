// My account: the signed-in user's second factor (TOTP). Enrolling shows
// the QR code (a data: URL, which the CSP's img-src allows), the secret and
// the recovery codes once; a first code from the app confirms it.

import { h, clear, message, field, input, time } from "../dom.js";
import { get, request, enc, describe } from "../api.js";

export async function accountPage(main, ctx) {
  const path = `/api/v1/users/${enc(ctx.me.name)}/mfa`;
  const sec = h("section", { class: "box", "data-section": "mfa" });
  const out = h("div", { class: "status" });
  main.append(h("h2", {}, "Second factor"), sec, out);

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
