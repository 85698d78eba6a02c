// Targets and environments: what a user may reach, grouped.

import { h, table, list, labels } from "../dom.js";
import { get } from "../api.js";
import { load } from "./common.js";

export async function targetsPage(main, ctx) {
  const targets = h("section", { "data-section": "targets" });
  main.append(h("h2", {}, "Targets"), targets);
  const work = [load(targets, ctx, async () => table([
    { label: "Name", get: (t) => t.name },
    { label: "Address", get: (t) => t.address },
    { label: "Labels", get: (t) => labels(t.labels) },
    { label: "Auth", get: (t) => t.auth || "key" },
    { label: "Host key", get: (t) => (t.host_key ? h("code", { class: "trunc", title: t.host_key }, t.host_key) : "not pinned") },
  ], await get("/api/v1/resources/target"), "No targets."))];
  // Environments are resource reads that only admins may make.
  if (ctx.roles.admin) {
    const envs = h("section", { "data-section": "environments" });
    main.append(h("h2", {}, "Environments"), envs);
    work.push(load(envs, ctx, async () => table([
      { label: "Name", get: (e) => e.name },
      { label: "Targets", get: (e) => list(e.targets) },
      { label: "Selector", get: (e) => labels(e.selector) },
    ], await get("/api/v1/resources/environment"), "No environments.")));
  }
  await Promise.all(work);
}
