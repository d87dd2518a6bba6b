// The dashboard against a scripted admin feed: the page, its REST calls and
// its sign-in are the real server's, only /admin/ws is played by the test so
// that it can drop the feed, turn a lead critical or grow a transcript at
// the moment the assertion needs.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  DESKTOP, PHONE, TOKEN, checkPrerequisites, eventually, fakeSession, launchBrowser,
  openDashboard, shot, startServer, visitor,
} from './harness.mjs';

const ago = (s) => new Date(Date.now() - s * 1000).toISOString();

const SESSIONS = [
  fakeSession({
    session_id: '01JADMINLOW0000000000000001', name: 'Priya Nair', email: 'priya@example.org',
    lead_score: 8, priority: 'low', total_queries: 1, last_interaction: ago(20),
  }),
  fakeSession({
    session_id: '01JADMINHIGH000000000000002', name: 'Ravi Kumar', organization: 'Kumar Plastics Pvt Ltd',
    email: 'ravi@kumarplastics.in', lead_score: 48, priority: 'high', engagement_score: 30, total_queries: 4,
    last_interaction: ago(90),
    signals: [
      { name: 'pricing_interest', points: 15, evidence: 'What is your pricing?' },
      { name: 'contact_shared', points: 20, evidence: 'email, organization' },
    ],
  }),
  fakeSession({
    session_id: '01JADMINMED0000000000000003', name: 'Sara Thomas', organization: 'Thomas Recycling',
    lead_score: 25, priority: 'medium', total_queries: 2, last_interaction: ago(300),
  }),
  fakeSession({
    session_id: '01JADMINMED0000000000000004', lead_score: 25, priority: 'medium', total_queries: 3,
    last_interaction: ago(5),
  }),
];

const TRANSCRIPT = [
  { seq: 1, role: 'bot', text: 'Hello! How can I help with EPR compliance today?', at: ago(120) },
  { seq: 2, role: 'user', text: 'What is your pricing?', at: ago(100) },
  { seq: 3, role: 'bot', text: 'Plans start at ₹25,000 a year; a consultant can tailor one.', at: ago(99) },
];

/** Every admin socket the page opens, with what it sent; `onOpen` scripts the server side. */
function scriptedFeed(onOpen) {
  const conns = [];
  return {
    conns,
    async install(page) {
      await page.routeWebSocket(/\/admin\/ws/, (ws) => {
        const conn = { ws, url: ws.url(), received: [] };
        ws.onMessage((m) => conn.received.push(JSON.parse(String(m))));
        conns.push(conn);
        onOpen(conn, conns.length);
      });
      // The 14-day chart, with figures worth drawing.
      await page.route(/\/api\/stats\/daily/, (route) => {
        const days = [];
        for (let i = 13; i >= 0; i--) {
          const d = new Date(Date.now() - i * 86400000).toISOString().slice(0, 10);
          days.push({ day: d, low: (i * 7) % 5, medium: (i * 3) % 4, high: i % 3, critical: i % 5 === 0 ? 1 : 0 });
        }
        route.fulfill({ json: { days } });
      });
    },
    send(conn, frame) { conn.ws.send(JSON.stringify(frame)); },
  };
}

const rowIds = (page) => page.$$eval('#live-body tr', (trs) => trs.map((tr) => tr.dataset.id));

// Counted as a failure of its own when Chromium or the binary is missing
// (a failing `before` hook only cancels the tests it guards).
test('Chromium and the leadchat binary are there', () => checkPrerequisites());

describe('dashboard on a scripted feed', () => {
  let server;
  let browser;

  before(async () => {
    checkPrerequisites();
    server = await startServer();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('signing in asks for the token and refuses a wrong one', async () => {
    const feed = scriptedFeed((conn) => feed.send(conn, { type: 'snapshot', sessions: [] }));
    const { page, context, errors } = await openDashboard(browser, server, { signedIn: false, setup: (p) => feed.install(p) });
    try {
      await page.getByLabel('Admin token').fill('wrong-token-0000000000');
      await page.getByRole('button', { name: 'Open dashboard' }).click();
      await page.getByText('That token was refused.').waitFor();
      assert.equal(feed.conns.length, 0, 'no feed without a valid token');
      await page.getByLabel('Admin token').fill(TOKEN);
      await page.getByRole('button', { name: 'Open dashboard' }).click();
      await page.locator('#conn[data-state="live"]').waitFor();
      assert.match(feed.conns[0].url, new RegExp(`token=${TOKEN}`));
      assert.equal(await page.evaluate(() => sessionStorage.getItem('leadchat.adminToken')), TOKEN);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  test('keeps the most urgent lead first and flags a lead that turns critical', async () => {
    const feed = scriptedFeed((conn) => feed.send(conn, { type: 'snapshot', sessions: SESSIONS }));
    const { page, context, errors } = await openDashboard(browser, server, { setup: (p) => feed.install(p) });
    try {
      await page.locator('#conn[data-state="live"]').waitFor();
      await eventually(async () => (await rowIds(page)).length === 4, { what: 'four rows' });
      // priority, then lead score, then the most recent activity
      assert.deepEqual(await rowIds(page), [
        '01JADMINHIGH000000000000002', '01JADMINMED0000000000000004',
        '01JADMINMED0000000000000003', '01JADMINLOW0000000000000001',
      ]);
      assert.equal(await page.locator('#live-count').textContent(), '4');
      assert.equal(await page.evaluate(() => window.__notifications.length), 0, 'the first snapshot is not news');

      const hot = { ...SESSIONS[0], lead_score: 72, priority: 'critical', organization: 'Nair Exports', total_queries: 3 };
      feed.send(feed.conns[0], { type: 'session_updated', session: hot });
      const row = page.locator('#live-body tr[data-id="01JADMINLOW0000000000000001"]');
      await eventually(async () => (await rowIds(page))[0] === hot.session_id, { what: 'the critical lead on top' });
      assert.equal(await row.getAttribute('data-priority'), 'critical');
      assert.match(await row.getAttribute('class'), /is-new/);
      assert.match(await row.getAttribute('class'), /flash/);
      await row.getByText('New', { exact: true }).waitFor();
      await eventually(async () => /New critical lead: Priya Nair \(Nair Exports\), score 72/.test(await page.locator('#announcer').textContent()), { what: 'the aria-live announcement' });
      assert.equal(await page.locator('#announcer').getAttribute('aria-live'), 'assertive');
      await page.locator('#hot-banner').getByText('New critical lead').waitFor();
      const notes = await page.evaluate(() => window.__notifications);
      assert.equal(notes.length, 1);
      assert.equal(notes[0].title, 'Critical lead: Priya Nair');
      assert.match(await page.title(), /^\(1\) /);
      await shot(page, 'scripted-desktop-hot-lead');

      // A score change that is no rise in priority is not news again.
      feed.send(feed.conns[0], { type: 'session_updated', session: { ...hot, lead_score: 75 } });
      await eventually(async () => (await row.locator('.score').textContent()) === '75', { what: 'the new score' });
      assert.equal(await page.evaluate(() => window.__notifications.length), 1);

      // Opening it acknowledges it.
      await page.locator('#hot-banner-open').click();
      await page.locator('#detail').waitFor();
      assert.doesNotMatch(await row.getAttribute('class'), /is-new/);
      assert.doesNotMatch(await page.title(), /^\(/);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  test('rows are keyboard-driven: arrows move, Enter watches the transcript grow, Escape returns', async () => {
    const feed = scriptedFeed((conn) => {
      feed.send(conn, { type: 'snapshot', sessions: SESSIONS });
      conn.ws.onMessage((m) => {
        const f = JSON.parse(String(m));
        conn.received.push(f);
        if (f.type === 'watch') feed.send(conn, { type: 'transcript', session_id: f.session_id, history: TRANSCRIPT });
      });
    });
    const { page, context, errors } = await openDashboard(browser, server, { setup: (p) => feed.install(p) });
    try {
      await eventually(async () => (await rowIds(page)).length === 4, { what: 'rows' });
      await page.locator('#live-body tr').first().focus();
      await page.keyboard.press('ArrowDown');
      await page.keyboard.press('ArrowUp');
      assert.equal(await page.evaluate(() => document.activeElement.dataset.id), '01JADMINHIGH000000000000002');
      await page.keyboard.press('Enter');
      await page.locator('#detail').waitFor();
      assert.equal(await page.evaluate(() => document.activeElement.id), 'detail-title');
      await eventually(() => feed.conns[0].received.some((f) => f.type === 'watch' && f.session_id === '01JADMINHIGH000000000000002'), { what: 'a watch frame' });
      const lines = page.locator('#detail-transcript li');
      await eventually(async () => (await lines.count()) === 3, { what: 'the history' });
      await page.locator('#detail-signals').getByText('pricing interest').waitFor();
      assert.match(await page.locator('#detail-signals').textContent(), /\+20.*contact shared/);

      feed.send(feed.conns[0], { type: 'message', session_id: '01JADMINHIGH000000000000002', seq: 4, role: 'user', text: 'Can we book a demo next week?', at: new Date().toISOString() });
      feed.send(feed.conns[0], { type: 'message', session_id: '01JADMINHIGH000000000000002', seq: 4, role: 'user', text: 'duplicate of 4', at: new Date().toISOString() });
      feed.send(feed.conns[0], { type: 'message', session_id: 'SOMEONE-ELSE', seq: 9, role: 'user', text: 'not this one', at: new Date().toISOString() });
      await eventually(async () => (await lines.count()) === 4, { what: 'the new line' });
      assert.equal(await lines.last().locator('p').textContent(), 'Can we book a demo next week?');
      await shot(page, 'scripted-desktop-detail');

      await page.keyboard.press('Escape');
      assert.equal(await page.locator('#detail').isHidden(), true);
      assert.equal(await page.evaluate(() => document.activeElement.dataset.id), '01JADMINHIGH000000000000002');
      await eventually(() => feed.conns[0].received.some((f) => f.type === 'unwatch'), { what: 'an unwatch frame' });
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  test('a dropped feed shows "reconnecting", backs off, then resumes and watches again', async () => {
    const feed = scriptedFeed((conn, n) => {
      const sessions = n === 1 ? SESSIONS : [...SESSIONS.slice(1), { ...SESSIONS[0], priority: 'high', lead_score: 45 }];
      feed.send(conn, { type: 'snapshot', sessions });
      conn.ws.onMessage((m) => {
        const f = JSON.parse(String(m));
        conn.received.push(f);
        if (f.type === 'watch') feed.send(conn, { type: 'transcript', session_id: f.session_id, history: TRANSCRIPT });
      });
    });
    const { page, context, errors } = await openDashboard(browser, server, { setup: (p) => feed.install(p) });
    try {
      await page.locator('#conn[data-state="live"]').waitFor();
      await page.locator('#live-body tr[data-id="01JADMINHIGH000000000000002"]').click();
      await eventually(() => feed.conns[0].received.some((f) => f.type === 'watch'), { what: 'watch' });

      const dropped = Date.now();
      await feed.conns[0].ws.close({ code: 1012, reason: 'restart' });
      await page.locator('#conn[data-state="reconnecting"]').waitFor();
      assert.match(await page.locator('#conn').textContent(), /Reconnecting…\s*in \d+ s \(attempt 1\)/);
      assert.equal(await page.locator('#live-stale').isVisible(), true);
      await shot(page, 'scripted-desktop-reconnecting');

      await page.locator('#conn[data-state="live"]').waitFor({ timeout: 5000 });
      const waited = Date.now() - dropped;
      assert.ok(waited >= 400, `reconnected after ${waited} ms: no backoff`);
      assert.equal(feed.conns.length, 2);
      assert.equal(await page.locator('#live-stale').isVisible(), false);
      // The watched session is watched again on the new socket.
      await eventually(() => feed.conns[1].received.some((f) => f.type === 'watch' && f.session_id === '01JADMINHIGH000000000000002'), { what: 'watch after reconnect' });
      // A lead that turned hot while the feed was down is news.
      await eventually(async () => (await page.evaluate(() => window.__notifications.length)) === 1, { what: 'a notification for the lead that turned hot meanwhile' });
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  test('the chart draws 14 days stacked by priority, and the phone layout fits 390 px', async () => {
    const feed = scriptedFeed((conn) => feed.send(conn, { type: 'snapshot', sessions: SESSIONS }));
    const { page, context, errors } = await openDashboard(browser, server, { setup: (p) => feed.install(p), hash: '#archive' });
    try {
      await page.locator('#chart svg').waitFor();
      assert.equal(await page.locator('#chart svg g.bar').count(), 14);
      assert.ok(await page.locator('#chart svg rect.seg.p-critical').count() >= 2);
      assert.match(await page.locator('#chart svg desc').textContent(), /Last 14 days: \d+ sessions \(\d+ critical/);
      assert.equal(await page.locator('#chart table tbody tr').count(), 14, 'the figures as a table for screen readers');
      await shot(page, 'scripted-desktop-archive');

      await page.setViewportSize(PHONE);
      await page.goto(`${server.url}/admin#live`);
      await eventually(async () => (await rowIds(page)).length === 4, { what: 'rows' });
      const overflow = await page.evaluate(() => document.scrollingElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow} px on a phone`);
      assert.equal(await page.locator('#live-body tr').first().evaluate((tr) => getComputedStyle(tr).display), 'grid', 'rows are cards on a phone');
      await shot(page, 'scripted-phone-live');
      await page.locator('#live-body tr').first().click();
      await page.locator('#detail').waitFor();
      await shot(page, 'scripted-phone-detail');
      await page.setViewportSize(DESKTOP);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  test('the archive filters, opens an archived session and downloads its PDF', async () => {
    // Two real chats, ended: the archive and the PDFs are the real server's.
    const anil = await visitor(server);
    await anil.say('What is your pricing?');
    anil.send({ type: 'contact', name: 'Anil', email: 'anil@mehta-polymers.com', organization: 'Mehta Polymers' });
    await anil.next((f) => f.type === 'contact_ok', 'contact_ok');
    anil.send({ type: 'end' });
    await anil.next((f) => f.type === 'ended', 'ended');
    const anon = await visitor(server);
    await anon.say('hello');
    anon.send({ type: 'end' });
    await anon.next((f) => f.type === 'ended', 'ended');
    anil.close();
    anon.close();

    const feed = scriptedFeed((conn) => feed.send(conn, { type: 'snapshot', sessions: [] }));
    const { page, context, errors } = await openDashboard(browser, server, { setup: (p) => feed.install(p), hash: '#archive' });
    try {
      const rowOf = (v) => page.locator(`#archive-body tr[data-id="${v.id}"]`);
      await rowOf(anil).waitFor({ timeout: 10000 });
      await rowOf(anon).waitFor();
      assert.match(await page.locator('#archive-status').textContent(), /of 2 archived sessions/);
      await rowOf(anil).getByText('Mehta Polymers').waitFor();

      const search = page.getByLabel('Search name, e-mail, organization');
      await search.fill('mehta');
      await rowOf(anon).waitFor({ state: 'detached' });
      await rowOf(anil).waitFor();
      await search.fill('');
      await rowOf(anon).waitFor();
      await page.locator('#f-status').selectOption('inactivity');
      await page.getByText('No archived session matches these filters.').waitFor();
      assert.equal(await page.locator('#archive-table').isHidden(), true);
      await page.locator('#f-status').selectOption('visitor');
      await rowOf(anil).waitFor();
      const today = new Date().toISOString().slice(0, 10);
      await page.getByLabel('From', { exact: true }).fill(today);
      await page.getByLabel('To', { exact: true }).fill(today);
      await page.getByRole('button', { name: 'Apply' }).click();
      await rowOf(anil).waitFor();
      await page.getByLabel('From', { exact: true }).fill('2001-01-01');
      await page.getByLabel('To', { exact: true }).fill('2001-01-02');
      await page.getByRole('button', { name: 'Apply' }).click();
      await rowOf(anil).waitFor({ state: 'detached' });
      await page.getByRole('button', { name: 'Clear' }).click();
      await rowOf(anil).waitFor();

      // Enter on a row opens the archived session: transcript, signals, mail, PDF.
      await rowOf(anil).focus();
      await page.keyboard.press('Enter');
      await page.locator('#detail-status[data-state="archived"]').waitFor();
      await page.locator('#detail-transcript').getByText('What is your pricing?').waitFor();
      await page.locator('#detail-facts').getByText('Report mail').waitFor();
      await shot(page, 'scripted-desktop-archived-detail');

      const [response, download] = await Promise.all([
        page.waitForResponse((r) => r.url().endsWith(`/api/sessions/${anil.id}/report.pdf`)),
        page.waitForEvent('download'),
        page.locator('#detail-report .pdf-link').click(),
      ]);
      assert.equal(response.status(), 200);
      assert.equal(response.headers()['content-type'], 'application/pdf');
      assert.equal(download.suggestedFilename(), `session_${anil.id}.pdf`);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
});
