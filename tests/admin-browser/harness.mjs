// What the dashboard tests stand on: the real leadchat binary on a port of
// its own (embedded memory store, a temporary SQLite archive), a headless
// Chromium, a visitor speaking the widget protocol over a WebSocket, and a
// scripted admin feed for the cases a real server cannot produce on demand
// (a dropped feed, a lead that turns critical at a chosen moment).
// Anything missing (Chromium, the binary) throws: the tests fail, never skip.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const SCREENSHOTS = join(REPO, 'target/admin-screenshots');
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const TOKEN = 'test-admin-token-0123456789';
export const DESKTOP = { width: 1366, height: 860 };
export const PHONE = { width: 390, height: 844 };

function leadchatBinary() {
  if (process.env.LEADCHAT_BIN) return process.env.LEADCHAT_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(REPO, 'target');
  return join(target, 'debug/leadchat');
}

/** Fails loudly, before any test, when a prerequisite is missing. */
export function checkPrerequisites() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install -y chromium chromium-driver (or set CHROMIUM_BIN)`);
  }
  const bin = leadchatBinary();
  if (!existsSync(bin)) throw new Error(`leadchat binary not found at ${bin}: cargo build --bin leadchat (or set LEADCHAT_BIN)`);
  mkdirSync(SCREENSHOTS, { recursive: true });
}

/** The real server; resolves once it logs `listening on ADDR`. */
export function startServer() {
  const dir = mkdtempSync(join(tmpdir(), 'leadchat-admin-e2e-'));
  const env = {
    ...process.env,
    LEADCHAT_LISTEN: '127.0.0.1:0',
    LEADCHAT_ADMIN_TOKEN: TOKEN,
    LEADCHAT_DATABASE_URL: `sqlite://${join(dir, 'a.db')}`,
    LEADCHAT_REPORT_DIR: join(dir, 'reports'),
    LEADCHAT_OUTBOX_DIR: join(dir, 'outbox'),
    LEADCHAT_INACTIVITY_TIMEOUT: '3s',
    LEADCHAT_SHUTDOWN_GRACE: '2s',
    LOG_FORMAT: 'pretty',
    NO_COLOR: '1',
    RUST_LOG: process.env.RUST_LOG || 'info',
  };
  // ADMIN_E2E_STORE=redis runs the same dashboard against the Redis on
  // 127.0.0.1:6379 (a key prefix of its own), as production runs; else the
  // embedded store.
  if (process.env.ADMIN_E2E_STORE === 'redis') {
    env.LEADCHAT_REDIS_URL = process.env.ADMIN_E2E_REDIS_URL || 'redis://127.0.0.1:6379';
    env.LEADCHAT_REDIS_PREFIX = `e2e:${process.pid}:${Date.now()}:`;
  } else {
    delete env.LEADCHAT_REDIS_URL;
  }
  const child = spawn(leadchatBinary(), ['serve'], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`leadchat did not start within 30 s:\n${log}`)); }, 30000);
    const onData = (chunk) => {
      log += chunk;
      const m = /listening on (\S+:\d+)/.exec(log.replace(/\x1b\[[0-9;]*m/g, ''));
      if (!m || timer.done) return;
      timer.done = true;
      clearTimeout(timer);
      const served = { addr: m[1], url: `http://${m[1]}`, dir, log: () => log, stop: () => stopProcess(child) };
      checkServesThisDashboard(served).then(() => resolvePromise(served), async (err) => {
        await served.stop();
        reject(err);
      });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => {
      if (timer.done) return; // stopped after listening: the check above says why
      clearTimeout(timer);
      reject(new Error(`leadchat exited with ${code} before listening:\n${log}`));
    });
  });
}

/**
 * The target directory is shared between worktrees, so `debug/leadchat` may
 * be another branch's build: insist that it serves this checkout's files.
 */
async function checkServesThisDashboard(server) {
  for (const file of ['index.html', 'app.js', 'app.css']) {
    const path = file === 'index.html' ? '/admin' : `/admin/${file}`;
    const res = await fetch(`${server.url}${path}`);
    const served = await res.text();
    const ours = readFileSync(join(REPO, 'assets/admin', file), 'utf8');
    if (res.status !== 200 || served !== ours) {
      throw new Error(`${leadchatBinary()} does not serve this checkout's assets/admin/${file} at ${path} (HTTP ${res.status}): rebuild it (scripts/admin-browser-test does) or set LEADCHAT_BIN`);
    }
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

/** Chromium with the flags of a quiet CI run; Playwright gives it a fresh profile. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
    ],
  });
}

/**
 * A page of the dashboard, already signed in (the token in sessionStorage, as
 * the sign-in form leaves it), with `window.__notifications` recording every
 * desktop notification the page raises.
 */
export async function openDashboard(browser, server, { viewport = DESKTOP, signedIn = true, hash = '', setup } = {}) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  await context.addInitScript(({ token, signedIn: si }) => {
    if (si) sessionStorage.setItem('leadchat.adminToken', token);
    window.__notifications = [];
    class FakeNotification {
      static permission = 'granted';
      static requestPermission() { return Promise.resolve('granted'); }
      constructor(title, opts) { window.__notifications.push({ title, ...opts }); }
      close() {}
    }
    window.Notification = FakeNotification;
  }, { token: TOKEN, signedIn });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err));
  page.on('console', (msg) => { if (msg.type() === 'error' && !/WebSocket|Failed to load resource/.test(msg.text())) errors.push(new Error(msg.text())); });
  if (setup) await setup(page);
  await page.goto(`${server.url}/admin${hash}`);
  return { context, page, errors };
}

/** A visitor on the widget protocol (PROTOCOL §2), frames queued for `next`. */
export async function visitor(server) {
  const ws = new WebSocket(`ws://${server.addr}/ws`);
  const frames = [];
  const waiters = [];
  ws.on('message', (data) => {
    const f = JSON.parse(String(data));
    frames.push(f);
    for (const w of [...waiters]) if (w.match(f)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(f); }
  });
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
  const next = (match, what) => {
    const seen = frames.find(match);
    if (seen) { frames.splice(frames.indexOf(seen), 1); return Promise.resolve(seen); }
    return new Promise((r, j) => {
      const w = { match: (f) => match(f) && (frames.splice(frames.indexOf(f), 1), true), resolve: r };
      waiters.push(w);
      setTimeout(() => j(new Error(`visitor: no ${what} frame within 10 s; got ${JSON.stringify(frames)}`)), 10000);
    });
  };
  const session = await next((f) => f.type === 'session', 'session');
  let n = 0;
  return {
    id: session.session_id,
    send: (frame) => ws.send(JSON.stringify(frame)),
    next,
    /** Sends a message and waits for the bot's answer. */
    async say(text) {
      const id = `m${++n}`;
      ws.send(JSON.stringify({ type: 'message', text, client_msg_id: id }));
      const ack = await next((f) => f.type === 'ack' && f.client_msg_id === id, 'ack');
      await next((f) => f.type === 'message' && f.role === 'bot' && f.seq > ack.seq, 'bot answer');
      return ack;
    },
    close: () => ws.close(),
  };
}

/** A SESSION of PROTOCOL §4 with sensible defaults. */
export function fakeSession(over) {
  const now = new Date().toISOString();
  return {
    session_id: over.session_id,
    name: null, email: null, phone: null, organization: null,
    lead_score: 0, priority: 'low', engagement_score: 0, total_queries: 0,
    first_interaction: now, last_interaction: now,
    state: 'active', node: 'node-a', signals: [],
    ...over,
  };
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

export const shot = (page, name) => page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: false });
