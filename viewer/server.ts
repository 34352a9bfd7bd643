// The local web server of `heal view`: the page (viewer/web/, its TypeScript transpiled by esbuild on
// request), three.js's ES modules straight from node_modules, protobufjs (CommonJS only) bundled
// into one ES module on first request, the scene schema, and the API the page reads:
//   GET /api/index                               scenarios, frames, agents, meta (small JSON)
//   GET /api/frame?scenario=SPLIT/NAME&ts=TS     one frame, protobuf healview.Frame
//   GET /api/camera?scenario=..&ts=..&agent=ID&camera=NAME   the camera picture as stored

import * as http from 'node:http';
import { constants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { build, transform } from 'esbuild';
import { DataError } from '../datasets/io.ts';
import { SceneSource, SCENE_PROTO_PATH, publicMessage, type ViewOptions } from './scene.ts';

const VIEWER_DIR = path.dirname(fileURLToPath(import.meta.url));
/** The page: the only folder of this project served by path (the server's own sources sit beside it). */
const WEB_DIR = path.join(VIEWER_DIR, 'web');
const require = createRequire(import.meta.url);

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.proto': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
};

/** URL prefix → folder served under it. Only these folders are reachable. */
function staticRoots(): [string, string][] {
  const threeBuild = path.dirname(require.resolve('three'));
  const threeRoot = path.dirname(threeBuild);
  return [
    ['/vendor/three/', threeBuild],
    ['/vendor/three-addons/', path.join(threeRoot, 'examples', 'jsm')],
    ['/', WEB_DIR],
  ];
}

/** The page's modules as JavaScript, by file; a file is transpiled again when it changes. */
const pageModules = new Map<string, { mtimeMs: number; code: string }>();

async function pageModule(file: string, mtimeMs: number): Promise<string> {
  const cached = pageModules.get(file);
  if (cached?.mtimeMs === mtimeMs) return cached.code;
  // Types only: tsc --noEmit checks them, esbuild drops them (and the type-only imports of server files).
  const { code } = await transform(await fs.readFile(file, 'utf8'), {
    loader: 'ts',
    format: 'esm',
    target: 'es2022',
    sourcemap: 'inline',
    sourcefile: path.relative(VIEWER_DIR, file),
  });
  pageModules.set(file, { mtimeMs, code });
  return code;
}

let protobufModule: Promise<string> | undefined;

/** protobufjs ships CommonJS and a UMD script, no ES module: the page gets one, bundled once. */
function protobufBundle(): Promise<string> {
  protobufModule ??= build({
    stdin: { contents: "export { default } from 'protobufjs';", resolveDir: VIEWER_DIR, loader: 'js' },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  }).then(
    (r) => r.outputFiles[0].text,
    (err: unknown) => {
      protobufModule = undefined;
      throw err;
    },
  );
  return protobufModule;
}

function sendScript(res: http.ServerResponse, code: string) {
  res.writeHead(200, { 'content-type': MIME['.js'], 'content-length': Buffer.byteLength(code), 'cache-control': 'no-cache' });
  res.end(code);
}

export interface ViewServer {
  url: string;
  source: SceneSource;
  close(): Promise<void>;
}

export interface ServeOptions extends ViewOptions {
  port?: number;
  host?: string;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function param(url: URL, name: string): string {
  const v = url.searchParams.get(name);
  if (v === null || v === '') throw new HttpError(400, `missing query parameter "${name}"`);
  return v;
}

/**
 * Streams one regular file. The file is opened before anything is sent, so that running out of
 * descriptors (EMFILE: a thousand idle connections hold one each) is an error response, not an
 * unhandled stream error that ends the server; errors after the headers close that one response.
 */
async function sendFile(res: http.ServerResponse, file: string, headers: Record<string, string>): Promise<void> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new HttpError(404, `not found: ${path.basename(file)}`);
    if (code === 'EMFILE' || code === 'ENFILE') throw new HttpError(503, 'the server has too many open files; try again');
    throw new HttpError(403, `cannot open ${path.basename(file)}`);
  }
  const st = await handle.stat().catch(() => undefined);
  if (!st?.isFile()) {
    await handle.close().catch(() => {});
    throw new HttpError(404, `not a plain file: ${path.basename(file)}`);
  }
  res.writeHead(200, { ...headers, 'content-length': String(st.size) });
  const stream = handle.createReadStream();
  stream.on('error', () => res.destroy());
  res.on('close', () => stream.destroy());
  res.on('error', () => stream.destroy());
  stream.pipe(res);
}

/** `file` with symlinks resolved, when it is inside one of `roots` (themselves resolved); else undefined. */
async function insideRoots(file: string, roots: string[]): Promise<string | undefined> {
  const real = await fs.realpath(file).catch(() => undefined);
  if (!real) return undefined;
  return roots.some((r) => real === r || real.startsWith(r.endsWith(path.sep) ? r : r + path.sep)) ? real : undefined;
}

function decodePath(p: string): string {
  try {
    return decodeURIComponent(p);
  } catch {
    throw new HttpError(400, 'malformed %-escape in the path');
  }
}

async function serveStatic(res: http.ServerResponse, roots: [string, string][], pathname: string): Promise<boolean> {
  for (const [prefix, dir] of roots) {
    if (!pathname.startsWith(prefix)) continue;
    const rel = decodePath(pathname.slice(prefix.length)) || 'index.html';
    const file = path.resolve(dir, rel);
    // The page asks for files by URL; nothing outside the served folders may come back.
    if (file !== dir && !file.startsWith(dir + path.sep)) throw new HttpError(403, `outside the served folders: ${pathname}`);
    const ext = path.extname(file).toLowerCase();
    const page = dir === WEB_DIR && ext === '.ts';
    const type = MIME[ext];
    if (!type && !page) continue;
    const st = await fs.stat(file).catch(() => undefined);
    if (!st?.isFile()) continue;
    if (page) {
      sendScript(res, await pageModule(file, st.mtimeMs));
      return true;
    }
    await sendFile(res, file, { 'content-type': type, 'cache-control': 'no-cache' });
    return true;
  }
  return false;
}

export async function startServer(input: string, opts: ServeOptions = {}): Promise<ViewServer> {
  const source = await SceneSource.open(input, opts);
  const roots = staticRoots();
  const log = opts.log ?? (() => {});
  const indexJson = JSON.stringify(source.index);
  // Pictures are served only from inside the dataset or the run folder, symlinks resolved: a
  // data_info.json may name any path, and a link in the dataset may point anywhere.
  const dataRoots = (await Promise.all([source.index.data, source.index.input].map((d) => fs.realpath(d).catch(() => undefined)))).filter(
    (d): d is string => d !== undefined,
  );

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, `method ${req.method} not allowed`);
    if (url.pathname === '/api/index') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache' });
      res.end(indexJson);
      return;
    }
    if (url.pathname === '/api/frame') {
      const scenario = param(url, 'scenario');
      const ts = param(url, 'ts');
      const bytes = await source.frame(scenario, ts);
      res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': bytes.length, 'cache-control': 'no-cache' });
      res.end(bytes);
      // Playback asks for the next frame next; building it now hides most of the wait.
      const frames = source.index.scenarios.find((s) => s.key === scenario)?.frames ?? [];
      const i = frames.findIndex((f) => f.ts === ts);
      if (i >= 0 && i + 1 < frames.length) source.prefetch(scenario, frames[i + 1].ts);
      return;
    }
    if (url.pathname === '/api/camera') {
      const agent = Number(param(url, 'agent'));
      if (!Number.isInteger(agent)) throw new HttpError(400, `query parameter "agent" must be an integer (got "${url.searchParams.get('agent')}")`);
      const { file, mime } = await source.camera(param(url, 'scenario'), param(url, 'ts'), agent, param(url, 'camera'));
      const real = await insideRoots(file, dataRoots);
      if (!real) throw new HttpError(404, `camera picture missing or outside the dataset: ${path.basename(file)}`);
      await sendFile(res, real, { 'content-type': mime, 'cache-control': 'max-age=3600' });
      return;
    }
    if (url.pathname === '/vendor/protobufjs.js') {
      sendScript(res, await protobufBundle());
      return;
    }
    if (url.pathname === '/proto/scene.proto') {
      res.writeHead(200, { 'content-type': MIME['.proto'], 'cache-control': 'no-cache' });
      res.end(await fs.readFile(SCENE_PROTO_PATH));
      return;
    }
    if (await serveStatic(res, roots, url.pathname)) return;
    throw new HttpError(404, `not found: ${url.pathname}`);
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : err instanceof DataError ? 404 : 500;
      // The body never carries what a file held (a parse error quotes it): the log has the whole message.
      const full = err instanceof Error ? err.message : String(err);
      const message = err instanceof HttpError ? err.message : publicMessage(err);
      if (status !== 404 || message !== full) log(`heal view: ${req.url}: ${full}`);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(message);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') reject(new Error(`port ${opts.port ?? 8080} on ${opts.host ?? '127.0.0.1'} is in use (port 0 picks a free one)`));
      else reject(err);
    });
    server.listen(opts.port ?? 8080, opts.host ?? '127.0.0.1', () => resolve());
  });
  // After listening, an error (EMFILE on accept) is logged; without a listener it would end the process.
  server.on('error', (err) => log(`heal view: server error: ${err.message}`));
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host === '0.0.0.0' || host === '[::]' ? 'localhost' : host}:${addr.port}/`,
    source,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
