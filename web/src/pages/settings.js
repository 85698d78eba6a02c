// Settings (admins): the gateway-wide switches the API exposes. Each change
// is audited (setting.change) and takes effect at once.

import { h, clear, message } from "../dom.js";
import { get, request, describe } from "../api.js";
import { load } from "./common.js";

export async function settingsPage(main, ctx) {
  const sec = h("section", { class: "box", "data-section": "settings" });
  const out = h("div", { class: "status" });
  main.append(sec, out,
    h("p", { class: "hint" }, "Retention of recordings and audit events is set when the gateway starts (serve --recordings-retention, --audit-retention, or the config file): the API has no setting for it, so the console cannot change it."));
  const refresh = () => load(sec, ctx, async () => {
    const s = await get("/api/v1/settings");
    const box = h("input", { type: "checkbox", name: "global_registration_keys", checked: !!s.global_registration_keys, onchange: async () => {
      box.disabled = true;
      try {
        await request("PUT", "/api/v1/settings/global_registration_keys", { value: box.checked });
        clear(out, message("ok", `Global registration keys ${box.checked ? "allowed" : "refused"}.`));
      } catch (err) {
        box.checked = !box.checked;
        clear(out, message("error", describe(err)));
      } finally {
        box.disabled = false;
      }
    } });
    return h("label", { class: "check" }, box, " Global registration keys (",
      h("code", {}, "global_registration_keys"), "): on, keys an admin created register targets and act as nobody; off, only each admin's own keys work, and they stop when their owner stops being an admin.");
  });
  await refresh();
}
