// The widget in a real headless Chromium against the real server binary:
// what a visitor does on a customer's site, end to end. Run with
// scripts/browser-test (or `npm test --prefix tests/browser` after a build).

import assert from 'node:assert/strict';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import {
  SCREENSHOTS, checkPrerequisites, eventually, launchBrowser, redis, startServer, startSite, tempDir
} from './harness.mjs';

const DESKTOP = { viewport: { width: 1280, height: 800 } };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };
const STEP = 20000; // generous per-step waits: a debug binary on two cores

let browser, server, site, evil, dataDir;
const prefix = `test:browser:${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}:`;

before(async () => {
  await checkPrerequisites();
  dataDir = tempDir();
  site = await startSite();
  evil = await startSite();
  server = await startServer({ prefix, allowedOrigins: [site.origin], dataDir });
  site.setServer(server.url);
  evil.setServer(server.url);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await site?.close();
  await evil?.close();
  const keys = await redis('KEYS', `${prefix}*`).catch(() => []);
  for (const key of keys) await redis('DEL', key);
});

async function newPage(options = DESKTOP) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (err) => page.errors.push(err.message));
  return page;
}

/** Every test ends here: a script error on the page fails it. */
async function done(page) {
  assert.deepEqual(page.errors, [], 'no script errors on the page');
  await page.context().close();
}

// Playwright's CSS locators pierce the widget's open shadow root.
const $ = (page, css) => page.locator(`[data-leadchat] ${css}`);

async function openWidget(page) {
  await $(page, '.bubble').click();
  await $(page, '.panel').waitFor({ state: 'visible' });
}

async function fillForm(page, { name = 'Asha Verma', email = 'asha@example.in' } = {}) {
  await $(page, '#lc-name').fill(name);
  await $(page, '#lc-email').fill(email);
  await $(page, '#lc-organization').fill('Verma Plastics');
  await $(page, 'form.ct .pri').click();
}

async function say(page, text) {
  await $(page, '#lc-msg').fill(text);
  await $(page, '#lc-msg').press('Enter');
}

/** The bot's answer to a message, as shown in the log. */
function botLine(page, text) {
  return $(page, '.log .msg.bot').filter({ hasText: text });
}

/** Waits for the bot to say `text`; a timeout shows what the log holds. */
async function waitForBot(page, text, timeout = STEP) {
  try {
    await botLine(page, text).waitFor({ timeout });
  } catch (err) {
    const log = await $(page, '.log').innerText().catch(() => '(no log)');
    throw new Error(`the bot never said ${JSON.stringify(text)}; the chat shows:\n${log}\n${err.message}`);
  }
}

function userLines(page, text) {
  return $(page, '.log .msg.user').filter({ hasText: text });
}

function sessionId(page) {
  return page.evaluate(() => {
    for (const key of Object.keys(localStorage)) if (key.endsWith(':sid')) return JSON.parse(localStorage.getItem(key));
    return null;
  });
}

const chatKey = (id) => `${prefix}session:{${id}}:chat`;

test('a visitor fills the form, chats, sees the history after a reload, and ends the chat', { timeout: 120000 }, async () => {
  const page = await newPage();
  await page.goto(`${site.origin}/`);

  // Keyboard: the bubble opens with Enter, Escape closes and gives focus back.
  await $(page, '.bubble').focus();
  await page.keyboard.press('Enter');
  await $(page, '#lc-name').waitFor({ state: 'visible' });
  await eventually(() => page.evaluate(() => document.querySelector('[data-leadchat]').shadowRoot.activeElement?.id === 'lc-name'),
    { what: 'focus in the name field' });
  await page.keyboard.press('Escape');
  await $(page, '.panel').waitFor({ state: 'hidden' });
  assert.equal(await page.evaluate(() => document.querySelector('[data-leadchat]').shadowRoot.activeElement?.className), 'bubble');
  await page.keyboard.press('Enter');
  await $(page, '.panel').waitFor({ state: 'visible' });
  await page.screenshot({ path: join(SCREENSHOTS, 'desktop-form.png') });

  await fillForm(page);
  await $(page, '#lc-msg').waitFor({ state: 'visible', timeout: STEP });
  await say(page, 'What are your prices and fees?');
  await waitForBot(page, 'detailed quotation', STEP);
  assert.equal(await userLines(page, 'prices and fees').count(), 1);
  assert.equal(await $(page, '.typing').isVisible(), false, 'typing indicator gone once the answer is in');
  await page.screenshot({ path: join(SCREENSHOTS, 'desktop-chat.png') });

  // A reload resumes the same session and shows its history once.
  const id = await sessionId(page);
  assert.ok(id, 'the session id is kept in localStorage');
  await page.reload();
  await waitForBot(page, 'detailed quotation', STEP); // the panel reopens by itself
  await $(page, '.st.on').waitFor({ timeout: STEP });
  assert.equal(await sessionId(page), id);
  assert.equal(await userLines(page, 'prices and fees').count(), 1);
  assert.equal(await botLine(page, 'detailed quotation').count(), 1);

  // End chat goes through POST /end_session, cross-origin (CORS).
  await $(page, 'header .hb:not(.x)').click();
  await $(page, '.done').filter({ hasText: 'This chat has ended' }).waitFor({ timeout: STEP });
  const again = $(page, '.done .pri');
  assert.equal(await again.textContent(), 'Start a new chat');
  assert.equal(await $(page, '.comp').isVisible(), false, 'no composer on an ended chat');
  assert.equal(await sessionId(page), null);
  assert.equal(await redis('GET', `${prefix}session:{${id}}:finalized`), 'true');
  await page.screenshot({ path: join(SCREENSHOTS, 'desktop-ended.png') });

  await again.click();
  await $(page, '#lc-name').waitFor({ state: 'visible' });
  const fresh = await eventually(() => sessionId(page), { what: 'a new session id' });
  assert.notEqual(fresh, id);
  await done(page);
});

test('an invalid e-mail shows the server\'s error inline, on the e-mail field', { timeout: 60000 }, async () => {
  const page = await newPage();
  await page.goto(`${server.url}/`); // the demo site, same origin
  await openWidget(page);
  await $(page, 'form.ct .pri').click();
  assert.equal(await $(page, '#lc-name-err').textContent(), 'Please fill in this field.');

  // Passes the widget's loose check, fails the server's (no `_` in a domain).
  await fillForm(page, { email: 'asha@exa_mple.com' });
  const error = $(page, '#lc-email-err');
  await eventually(async () => (await error.textContent()) !== '', { what: 'the inline error' });
  assert.equal(await error.textContent(), 'Enter a valid e-mail address.');
  assert.equal(await $(page, '#lc-email').getAttribute('aria-invalid'), 'true');
  assert.equal(await $(page, '#lc-email').getAttribute('aria-describedby'), 'lc-email-err');
  assert.equal(await $(page, '#lc-msg').isVisible(), false, 'still on the form');
  await page.screenshot({ path: join(SCREENSHOTS, 'desktop-invalid-email.png') });

  await $(page, '#lc-email').fill('asha@example.in');
  await $(page, 'form.ct .pri').click();
  await $(page, '#lc-msg').waitFor({ state: 'visible', timeout: STEP });
  await done(page);
});

test('a message typed while the server is down is queued, survives a reload and is delivered exactly once', { timeout: 120000 }, async () => {
  const page = await newPage();
  // The site hosts its own copy of widget.js, so it reloads while we are down.
  await page.goto(`${site.origin}/?local=1`);
  await openWidget(page);
  await fillForm(page);
  await say(page, 'Hello, we import electronics.');
  await $(page, '.log .msg.bot').nth(1).waitFor({ timeout: STEP });
  const id = await sessionId(page);

  await server.stop();
  await $(page, '.banner').waitFor({ state: 'visible', timeout: STEP });
  const queued = 'Do you handle battery EPR too?';
  await say(page, queued);
  await userLines(page, queued).filter({ hasText: 'Waiting for connection' }).waitFor({ timeout: STEP });
  await page.screenshot({ path: join(SCREENSHOTS, 'desktop-offline-queued.png') });

  await page.reload();
  await userLines(page, queued).filter({ hasText: 'Waiting for connection' }).waitFor({ timeout: STEP });

  server = await startServer({ prefix, allowedOrigins: [site.origin], dataDir, listen: server.addr });
  await waitForBot(page, 'Battery Waste Management', 30000);
  await eventually(async () => (await $(page, '.pending').count()) === 0, { what: 'the queue to drain' });
  assert.equal(await sessionId(page), id, 'the same session, resumed');
  assert.equal(await userLines(page, queued).count(), 1, 'shown once');

  const chat = await redis('LRANGE', chatKey(id), 0, -1);
  assert.equal(chat.filter((l) => l === `User: ${queued}`).length, 1, `logged once: ${JSON.stringify(chat)}`);
  assert.equal(chat.filter((l) => l === 'User: Hello, we import electronics.').length, 1);
  assert.equal(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.endsWith(':queue'))
    .map((k) => JSON.parse(localStorage.getItem(k)).length).reduce((a, b) => a + b, 0)), 0, 'the stored queue is empty');
  await done(page);
});

test('a page on an origin outside allowed_origins is refused', { timeout: 60000 }, async () => {
  // The server itself: 403 with a JSON body on the upgrade.
  const refused = await new Promise((resolvePromise, reject) => {
    const url = new URL(`${server.url}/ws`);
    const req = request({
      host: url.hostname, port: url.port, path: url.pathname,
      headers: {
        origin: evil.origin, connection: 'Upgrade', upgrade: 'websocket',
        'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ=='
      }
    });
    req.on('upgrade', () => reject(new Error('the upgrade was accepted')));
    req.on('response', (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolvePromise({ status: res.statusCode, body: JSON.parse(body) }));
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(refused.status, 403);
  assert.equal(refused.body.error, 'forbidden');

  // And in the browser: the widget never gets online, CORS says no.
  const page = await newPage();
  await page.goto(`${evil.origin}/`);
  await openWidget(page);
  const outcome = await page.evaluate((server) => Promise.all([
    new Promise((r) => {
      const ws = new WebSocket(server.replace(/^http/, 'ws') + '/ws');
      ws.onopen = () => r('open');
      ws.onclose = () => r('closed');
    }),
    fetch(`${server}/end_session`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"session_id":"x"}'
    }).then(() => 'answered', () => 'blocked')
  ]), server.url);
  assert.deepEqual(outcome, ['closed', 'blocked']);
  assert.equal(await $(page, '.st.on').count(), 0, 'the widget is not online');
  await done(page);
});

test('on a phone-sized viewport the chat fills the screen, in Hindi via Leadchat.init', { timeout: 90000 }, async () => {
  const page = await newPage(PHONE);
  await page.goto(`${server.url}/?lang=hi`);
  const bubble = $(page, '.bubble');
  await eventually(async () => (await bubble.getAttribute('aria-label')) === 'चैट खोलें', { what: 'Hindi strings' });
  await page.screenshot({ path: join(SCREENSHOTS, 'phone-closed.png') });
  await bubble.click();
  const box = await $(page, '.panel').boundingBox();
  assert.deepEqual([box.x, box.y, box.width, box.height], [0, 0, 390, 844]);
  await page.screenshot({ path: join(SCREENSHOTS, 'phone-form.png') });
  await fillForm(page, { name: 'राहुल शर्मा', email: 'rahul@example.in' });
  await $(page, '#lc-msg').waitFor({ state: 'visible', timeout: STEP });
  await say(page, 'battery EPR kitna time lagega?');
  await $(page, '.log .msg.bot').nth(1).waitFor({ timeout: STEP });
  assert.equal(await $(page, 'header .hb:not(.x)').textContent(), 'चैट समाप्त करें');
  await page.screenshot({ path: join(SCREENSHOTS, 'phone-chat.png') });
  await done(page);
});
