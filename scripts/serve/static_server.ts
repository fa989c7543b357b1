/**
 * The HTTP server of the web page and of disk images: static files from a
 * few directories, `Range` requests (one range: `bytes=a-b`, `a-` or `-n`;
 * RFC 9110 §14), and, for pages that use SharedArrayBuffer, the
 * cross-origin-isolation headers (COOP `same-origin`, COEP `require-corp`,
 * CORP). Images are readable from other origins (CORS, with `Content-Range`
 * exposed), so a page served elsewhere can use them. Nothing is ever
 * written: methods other than GET, HEAD and OPTIONS get 405.
 *
 * Plain `node:` modules, so it runs on Deno and Node alike (the lazy HTTP
 * image's tests run on both against it). `scripts/serve.ts` is its command.
 *
 * @module
 */

import { createReadStream, statSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, resolve, sep } from "node:path";

/** A directory served under a URL path prefix. */
export interface Mount {
  /** URL path prefix, starting and ending with `/` (`/images/`). */
  readonly prefix: string;
  /** The directory whose files it serves. */
  readonly directory: string;
}

/** How the server runs. */
export interface StaticServerOptions {
  /** What it serves; the longest matching prefix wins. */
  readonly mounts: readonly Mount[];
  /** Send COOP/COEP/CORP, which SharedArrayBuffer needs (default true). */
  readonly isolate?: boolean;
  /** Address to listen on (default 127.0.0.1: loopback only). */
  readonly hostname?: string;
  /** Port (default 0: any free port). */
  readonly port?: number;
}

/** A request the server answered, for tests and the log. */
export interface ServedRequest {
  readonly method: string;
  readonly path: string;
  /** The Range header, if any. */
  readonly range?: string;
  readonly status: number;
}

/** A running server. */
export interface StaticServer {
  /** Its base URL (`http://127.0.0.1:8080/`). */
  readonly url: string;
  /** Every request answered so far, in order. */
  readonly requests: readonly ServedRequest[];
  /** Stops listening and ends open connections. */
  close(): Promise<void>;
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

/** Starts serving; resolves once it listens. */
export function startStaticServer(options: StaticServerOptions): Promise<StaticServer> {
  const mounts = [...options.mounts].sort((a, b) => b.prefix.length - a.prefix.length);
  const isolate = options.isolate ?? true;
  const requests: ServedRequest[] = [];
  const server = createServer((request, response) => {
    const status = answer(request, response, mounts, isolate);
    requests.push({
      method: request.method ?? "",
      path: request.url ?? "",
      ...(request.headers.range === undefined ? {} : { range: request.headers.range }),
      status,
    });
  });
  return new Promise((resolveStart, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.hostname ?? "127.0.0.1", () => {
      const address = server.address() as AddressInfo;
      const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
      resolveStart({
        url: `http://${host}:${address.port}/`,
        requests,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

/** Answers one request; returns its status. */
function answer(
  request: IncomingMessage,
  response: ServerResponse,
  mounts: readonly Mount[],
  isolate: boolean,
): number {
  const headers: Record<string, string> = {
    "Cache-Control": "no-store",
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Range",
    "Access-Control-Expose-Headers": "Content-Range, Content-Length, Accept-Ranges",
    "Accept-Ranges": "bytes",
    ...(isolate
      ? {
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Embedder-Policy": "require-corp",
        "Cross-Origin-Resource-Policy": "cross-origin",
      }
      : {}),
  };
  const method = request.method ?? "";
  if (method === "OPTIONS") return send(response, 204, headers);
  if (method !== "GET" && method !== "HEAD") {
    return send(response, 405, { ...headers, Allow: "GET, HEAD, OPTIONS" }, "read-only server\n");
  }
  const file = fileFor(request.url ?? "/", mounts);
  let size: number;
  try {
    const info = statSync(file ?? "");
    if (!info.isFile()) throw new Error("not a file");
    size = info.size;
  } catch {
    return send(response, 404, headers, "not found\n");
  }
  headers["Content-Type"] = CONTENT_TYPES[extname(file!)] ?? "application/octet-stream";
  const range = parseRange(request.headers.range, size);
  if (range === "unsatisfiable") {
    return send(response, 416, { ...headers, "Content-Range": `bytes */${size}` });
  }
  const [start, end] = range ?? [0, size - 1];
  const status = range === undefined ? 200 : 206;
  if (range !== undefined) headers["Content-Range"] = `bytes ${start}-${end}/${size}`;
  headers["Content-Length"] = String(size === 0 ? 0 : end - start + 1);
  response.writeHead(status, headers);
  if (method === "HEAD" || size === 0) response.end();
  else createReadStream(file!, { start, end }).pipe(response);
  return status;
}

function send(
  response: ServerResponse,
  status: number,
  headers: Record<string, string>,
  body = "",
): number {
  response.writeHead(status, { ...headers, "Content-Type": "text/plain; charset=utf-8" });
  response.end(body);
  return status;
}

/** The file a URL path names, or undefined when it is outside every mount. */
function fileFor(url: string, mounts: readonly Mount[]): string | undefined {
  let path: string;
  try {
    path = decodeURIComponent(new URL(url, "http://x").pathname);
  } catch {
    return undefined;
  }
  const mount = mounts.find((m) => path.startsWith(m.prefix));
  if (mount === undefined) return undefined;
  const root = resolve(mount.directory);
  let file = resolve(join(root, path.slice(mount.prefix.length)));
  // Nothing outside the directory, whatever the path says (`..`, encoded or not).
  if (file !== root && !file.startsWith(root + sep)) return undefined;
  if (path.endsWith("/")) file = join(file, "index.html");
  return file;
}

/**
 * The one byte range `header` asks for in a file of `size` bytes (RFC 9110
 * §14.1.2), undefined when there is none to honour (no header, a unit other
 * than bytes, several ranges, a malformed one: the whole file is sent),
 * `"unsatisfiable"` when it starts beyond the end.
 */
export function parseRange(
  header: string | undefined,
  size: number,
): [number, number] | "unsatisfiable" | undefined {
  const match = header === undefined ? null : /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (match === null || (match[1] === "" && match[2] === "")) return undefined;
  if (match[1] === "") {
    // The last n bytes.
    const suffix = Number(match[2]);
    if (suffix === 0) return "unsatisfiable";
    return size === 0 ? "unsatisfiable" : [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(match[1]);
  const end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (!Number.isSafeInteger(start) || start >= size) return "unsatisfiable";
  if (end < start) return undefined;
  return [start, end];
}
