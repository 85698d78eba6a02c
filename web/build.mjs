// Builds the console into ../internal/web/dist: assets/app-HASH.js and
// assets/app-HASH.css (content-hashed, so the Go side may cache them for
// ever) and index.html, which names them. No inline script or style: the
// gateway's Content-Security-Policy allows only files from itself.
//
// Run with `node build.mjs` (make assets does, after npm ci). The output is
// committed, so that `go build` alone yields a working console; it must be
// deterministic (content hashes, no timestamps or absolute paths), because
// `make check-assets` rebuilds into PORTCULLIS_WEB_OUT (a temporary
// directory) and fails when the committed files differ.

import * as esbuild from "esbuild";
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(process.env.PORTCULLIS_WEB_OUT || path.join(here, "../internal/web/dist"));
const assets = path.join(dist, "assets");

await mkdir(assets, { recursive: true });
// Old hashed files would otherwise pile up in the embedded file system.
for (const f of await readdir(assets)) {
  if (/^app-(chunk-)?[A-Za-z0-9]+\.(js|css)(\.map)?$/.test(f)) await rm(path.join(assets, f));
}

const result = await esbuild.build({
  entryPoints: [path.join(here, "src/main.js")],
  bundle: true,
  minify: true,
  format: "esm",
  target: ["chrome110", "firefox115", "safari16"],
  outdir: assets,
  splitting: true, // the player is imported on first use: its own chunk
  entryNames: "app-[hash]",
  chunkNames: "app-chunk-[hash]",
  assetNames: "app-[hash]",
  metafile: true,
  legalComments: "none",
  logLevel: "warning",
});

const outs = Object.keys(result.metafile.outputs).map((p) => path.basename(p));
const js = outs.find((f) => /^app-[A-Za-z0-9]+\.js$/.test(f));
const css = outs.filter((f) => f.endsWith(".css"));
if (!js || css.length !== 1) throw new Error(`esbuild wrote ${outs.join(", ")}: want one entry .js and one .css`);

// Relative asset paths: the page is /ui/ and its assets /ui/assets/. The
// empty icon keeps browsers from asking for /favicon.ico.
const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Portcullis</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="assets/${css[0]}">
<script type="module" src="assets/${js}"></script>
</head>
<body>
<div id="app"></div>
</body>
</html>
`;
await writeFile(path.join(dist, "index.html"), html);
for (const [p, o] of Object.entries(result.metafile.outputs)) {
  console.log(`web: ${path.relative(process.cwd(), path.join(assets, path.basename(p)))} ${(o.bytes / 1024).toFixed(1)} KiB`);
}
