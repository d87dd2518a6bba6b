// What the browser tests stand on: the real leadchat binary on a port of its
// own with Redis under a key prefix of its own, tiny static servers playing
// the customers' sites, a headless Chromium, and a few lines of Redis client.
// Anything missing (Chromium, Redis, the binary) throws: the tests fail, they
// never skip.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const SCREENSHOTS = join(REPO, 'target/browser-screenshots');
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const REDIS = { host: '127.0.0.1', port: 6379 };

function leadchatBinary() {
  if (process.env.LEADCHAT_BIN) return process.env.LEADCHAT_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(REPO, 'target');
  return join(target, 'debug/leadchat');
}

/** One Redis command over RESP; enough for PING, LRANGE and DEL. */
export function redis(...args) {
  return new Promise((resolvePromise, reject) => {
    const socket = connect(REDIS.port, REDIS.host);
    let buf = Buffer.alloc(0);
    const fail = (err) => { socket.destroy(); reject(new Error(`Redis on ${REDIS.host}:${REDIS.port}: ${err.message || err}`)); };
    socket.setTimeout(3000, () => fail(new Error('timed out')));
    socket.on('error', fail);
    socket.on('connect', () => {
      socket.write(`*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join(''));
    });
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const parsed = parseResp(buf, 0);
      if (!parsed) return; // incomplete: wait for more
      socket.end();
      if (parsed.value instanceof Error) reject(parsed.value);
      else resolvePromise(parsed.value);
    });
  });
}

function parseResp(buf, at) {
  const end = buf.indexOf('\r\n', at);
  if (end < 0) return null;
  const head = buf.toString('utf8', at + 1, end);
  const next = end + 2;
  switch (String.fromCharCode(buf[at])) {
    case '+': return { value: head, next };
    case '-': return { value: new Error(head), next };
    case ':': return { value: Number(head), next };
    case '$': {
      const len = Number(head);
      if (len < 0) return { value: null, next };
      if (buf.length < next + len + 2) return null;
      return { value: buf.toString('utf8', next, next + len), next: next + len + 2 };
    }
    case '*': {
      const n = Number(head);
      const items = [];
      let pos = next;
      for (let i = 0; i < n; i++) {
        const item = parseResp(buf, pos);
        if (!item) return null;
        items.push(item.value);
        pos = item.next;
      }
      return { value: items, next: pos };
    }
    default: return { value: new Error(`unexpected RESP reply ${head}`), next };
  }
}

/** Fails loudly, before any test, when a prerequisite is missing. */
export async function checkPrerequisites() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install -y chromium chromium-driver (or set CHROMIUM_BIN)`);
  }
  const bin = leadchatBinary();
  if (!existsSync(bin)) throw new Error(`leadchat binary not found at ${bin}: cargo build --bin leadchat (or set LEADCHAT_BIN)`);
  const pong = await redis('PING');
  if (pong !== 'PONG') throw new Error(`Redis answered ${pong} to PING`);
  mkdirSync(SCREENSHOTS, { recursive: true });
}

/**
 * The real server. `listen` defaults to port 0; a restart passes the old
 * address so the widget finds it again. Resolves once it logs
 * `listening on ADDR`.
 */
export function startServer({ prefix, allowedOrigins = [], listen = '127.0.0.1:0', dataDir }) {
  const env = {
    ...process.env,
    LEADCHAT_LISTEN: listen,
    LEADCHAT_REDIS_URL: `redis://${REDIS.host}:${REDIS.port}`,
    LEADCHAT_REDIS_PREFIX: prefix,
    LEADCHAT_ALLOWED_ORIGINS: allowedOrigins.join(','),
    LEADCHAT_DATABASE_URL: `sqlite://${join(dataDir, 'leadchat.db')}`,
    LEADCHAT_REPORT_DIR: join(dataDir, 'reports'),
    LEADCHAT_OUTBOX_DIR: join(dataDir, 'outbox'),
    LEADCHAT_SHUTDOWN_GRACE: '2s',
    // Every browser here is 127.0.0.1.
    LEADCHAT_LIMITS__SESSIONS_PER_CLIENT: '100000',
    LOG_FORMAT: 'pretty',
    NO_COLOR: '1',
    RUST_LOG: process.env.RUST_LOG || 'info'
  };
  const child = spawn(leadchatBinary(), ['serve'], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`leadchat did not start within 30 s:\n${log}`)); }, 30000);
    const onData = (chunk) => {
      log += chunk;
      // Strip colour codes: the address follows "listening on".
      const m = /listening on (\S+:\d+)/.exec(log.replace(/\x1b\[[0-9;]*m/g, ''));
      if (m) {
        clearTimeout(timer);
        const served = {
          addr: m[1],
          url: `http://${m[1]}`,
          log: () => log,
          stop: () => stopProcess(child)
        };
        checkServesThisWidget(served).then(() => resolvePromise(served), async (err) => {
          await served.stop();
          reject(err);
        });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`leadchat exited with ${code} before listening:\n${log}`)); });
  });
}

/**
 * The target directory is shared between worktrees, so `debug/leadchat` may
 * be another branch's build: insist that it serves this checkout's widget.
 */
async function checkServesThisWidget(server) {
  const served = await (await fetch(`${server.url}/widget.js`)).text();
  const ours = readFileSync(join(REPO, 'assets/widget/widget.js'), 'utf8');
  if (served !== ours) {
    throw new Error(`${leadchatBinary()} does not serve this checkout's assets/widget/widget.js: rebuild it (scripts/browser-test does) or set LEADCHAT_BIN`);
  }
}

function stopProcess(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolvePromise) => {
    const hard = setTimeout(() => child.kill('SIGKILL'), 8000);
    child.once('exit', () => { clearTimeout(hard); resolvePromise(); });
    child.kill('SIGTERM');
  });
}

/**
 * A customer's site on another origin: `/` is a page embedding the widget
 * from `server` (or, with `?local=1`, a self-hosted copy of widget.js, so the
 * page still loads while the chat server is down).
 */
export function startSite() {
  const widget = readFileSync(join(REPO, 'assets/widget/widget.js'));
  let server = '';
  const http = createServer((req, res) => {
    const url = new URL(req.url, 'http://site');
    if (url.pathname === '/widget.js') {
      res.writeHead(200, { 'content-type': 'application/javascript; charset=utf-8' });
      return res.end(widget);
    }
    if (url.pathname !== '/') { res.writeHead(404); return res.end(); }
    const src = url.searchParams.get('local') ? '/widget.js' : `${server}/widget.js`;
    const lang = url.searchParams.get('lang') || 'en';
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Partner site</title>
<style>body{font:18px/1.5 serif;margin:2rem}button{all:unset;color:red}div{border:3px dashed red!important}</style></head>
<body><h1>A partner's shop</h1><p>Hostile page CSS must not reach the widget.</p>
<script src="${src}" data-server="${server}" data-brand="GreenCycle EPR" data-color="#1a7f37"
 data-lang="${lang}" data-required="name,email"></script></body></html>`);
  });
  return new Promise((resolvePromise) => {
    http.listen(0, '127.0.0.1', () => {
      const { port } = http.address();
      resolvePromise({
        origin: `http://127.0.0.1:${port}`,
        setServer: (url) => { server = url; },
        close: () => new Promise((r) => { http.closeAllConnections(); http.close(r); })
      });
    });
  });
}

/**
 * Chromium with the flags of a quiet CI run. Playwright gives every launch a
 * fresh temporary profile (it refuses --user-data-dir in `args`), and every
 * test opens its own context, so no localStorage leaks between tests.
 */
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'
    ]
  });
}

export function tempDir() {
  return mkdtempSync(join(tmpdir(), 'leadchat-e2e-'));
}

/** Polls `fn` until it returns a truthy value. */
export async function eventually(fn, { timeout = 15000, interval = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, interval));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}
