/**
 * Builds the browser build and serves the web page:
 *
 *     npm run serve -- [--port=8080] [--hostname=127.0.0.1] [--images=DIR] [--no-isolation]
 *
 * The page is `web/index.html` at `/`, the build at `/dist/`; with
 * `--images=DIR`, the disk images in DIR at `/images/` (Range requests,
 * readable from other origins), so `/?image=/images/disk.img` opens one
 * lazily. Every answer carries the cross-origin-isolation headers
 * SharedArrayBuffer needs (COOP `same-origin`, COEP `require-corp`) unless
 * `--no-isolation` (which shows what the page says without them).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { statSync } from "node:fs";
import process from "node:process";
import { buildBrowser, ROOT } from "./build_browser.ts";
import { type Mount, startStaticServer } from "./serve/static_server.ts";

/** Stops with one line naming the problem, as the user typed it (exit 2). */
function usage(problem: string): never {
  console.error(`serve: ${problem}`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string", default: "8080" },
      hostname: { type: "string", default: "127.0.0.1" },
      images: { type: "string" },
      "no-isolation": { type: "boolean", default: false },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (error) {
  usage((error as Error).message);
}
const port = Number(values.port);
if (!/^\d+$/.test(values.port) || port > 65535) {
  usage(`--port=${values.port} is not a port number (0-65535)`);
}
const mounts: Mount[] = [{ prefix: "/", directory: `${ROOT}web` }];
if (values.images !== undefined) {
  let directory = false;
  try {
    directory = statSync(values.images).isDirectory();
  } catch {
    // reported below
  }
  if (!directory) usage(`--images=${values.images} is not a directory`);
  mounts.push({ prefix: "/images/", directory: values.images });
}

const build = await buildBrowser();
const server = await startStaticServer({
  mounts,
  hostname: values.hostname,
  port,
  isolate: !values["no-isolation"],
}).catch((error) => usage(`cannot listen on ${values.hostname}:${port}: ${error.message}`));
console.log(`built ${build.files.length} files; serving the page at ${server.url}`);
if (values.images !== undefined) {
  console.log(`images from ${values.images} at ${server.url}images/`);
}
