// The whole path, nothing scripted: a visitor chats with the real server
// over the widget protocol while the dashboard, on the real admin feed,
// shows the session appear, its priority climb and its transcript grow; the
// session ends, lands in the archive, and its PDF downloads.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import {
  PHONE, TOKEN, checkPrerequisites, eventually, launchBrowser, openDashboard, shot, startServer, visitor,
} from './harness.mjs';

const RANK = { low: 0, medium: 1, high: 2, critical: 3 };

// Counted as a failure of its own when Chromium or the binary is missing
// (a failing `before` hook only cancels the tests it guards).
test('Chromium and the leadchat binary are there', () => checkPrerequisites());

describe('dashboard on the real admin feed', () => {
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

  test('a visitor chat appears, climbs, is watched live, ends into the archive with its PDF', async () => {
    const { page, context, errors } = await openDashboard(browser, server, { signedIn: false });
    let guest;
    try {
      await page.getByLabel('Admin token').fill(TOKEN);
      await page.getByRole('button', { name: 'Open dashboard' }).click();
      await page.locator('#conn[data-state="live"]').waitFor({ timeout: 10000 });
      await page.getByText('No live chats right now.').waitFor();

      guest = await visitor(server);
      await guest.say('What is your pricing?');
      const row = page.locator(`#live-body tr[data-id="${guest.id}"]`);
      await row.waitFor({ timeout: 5000 });
      const first = await row.getAttribute('data-priority');

      // Watch it: the transcript so far, then every new line as it is said.
      await row.focus();
      await page.keyboard.press('Enter');
      const transcript = page.locator('#detail-transcript');
      await transcript.getByText('What is your pricing?').waitFor({ timeout: 5000 });
      const linesBefore = await transcript.locator('li.line').count();

      guest.send({ type: 'contact', name: 'Anil', email: 'anil@mehta-polymers.com', organization: 'Mehta Polymers' });
      await guest.next((f) => f.type === 'contact_ok', 'contact_ok');
      await row.getByText('Anil', { exact: true }).waitFor({ timeout: 5000 });
      await row.getByText('Mehta Polymers').waitFor();
      await page.locator('#detail-title').getByText('Anil', { exact: true }).waitFor();

      await guest.say('Can we book a demo next week?');
      await transcript.getByText('Can we book a demo next week?').waitFor({ timeout: 5000 });
      await eventually(async () => (await transcript.locator('li.line').count()) >= linesBefore + 2, { what: 'the bot answer in the transcript' });
      const last = await eventually(async () => {
        const p = await row.getAttribute('data-priority');
        return RANK[p] > RANK[first] ? p : null;
      }, { what: `a priority above ${first}`, timeout: 5000 });
      assert.ok(await page.locator('#detail-signals li').count() >= 2, 'the signals behind the score');
      if (RANK[last] >= RANK.high) {
        await eventually(async () => /New (high|critical) lead: Anil \(Mehta Polymers\)/.test(await page.locator('#announcer').textContent()), { what: 'the hot-lead announcement' });
      }
      await shot(page, 'live-desktop-watching');

      const phone = await openDashboard(browser, server, { viewport: PHONE });
      await phone.page.locator(`#live-body tr[data-id="${guest.id}"]`).waitFor();
      await shot(phone.page, 'live-phone-list');
      await phone.context.close();

      // The end: out of the live list, into the archive, with its report.
      guest.send({ type: 'end' });
      await guest.next((f) => f.type === 'ended', 'ended');
      await row.waitFor({ state: 'detached', timeout: 5000 });
      await page.locator('#detail-report .pdf-link').waitFor({ timeout: 20000 });
      await page.locator('#tab-archive').click();
      const archived = page.locator(`#archive-body tr[data-id="${guest.id}"]`);
      await archived.waitFor({ timeout: 10000 });
      // The score may climb again after the climb seen above (the bot's
      // answer to the demo request is scored too): archived is the final one.
      const archivedPriority = await archived.getAttribute('data-priority');
      assert.ok(RANK[archivedPriority] >= RANK[last], `archived as ${archivedPriority}, live reached ${last}`);
      await archived.getByText('visitor').waitFor();

      // The filters reach the API: a search that misses, then one that hits.
      await page.getByLabel('Search name, e-mail, organization').fill('nobody-by-this-name');
      await archived.waitFor({ state: 'detached' });
      await page.getByText('No archived session matches these filters.').waitFor();
      await page.getByLabel('Search name, e-mail, organization').fill('Mehta');
      await archived.waitFor();
      await page.locator('#f-priority').selectOption(archivedPriority);
      await archived.waitFor();
      await page.locator('#f-status').selectOption('inactivity');
      await archived.waitFor({ state: 'detached' });
      await page.getByRole('button', { name: 'Clear' }).click();
      await archived.waitFor();

      // Today's bar of the chart counts it.
      await page.locator('#chart svg').waitFor({ timeout: 5000 });
      const today = new Date().toISOString().slice(0, 10);
      assert.equal(await page.locator(`#chart g.bar[data-day="${today}"] text.total`).textContent(), '1');
      await shot(page, 'live-desktop-archive');

      const [response, download] = await Promise.all([
        page.waitForResponse((r) => r.url().endsWith(`/api/sessions/${guest.id}/report.pdf`)),
        page.waitForEvent('download'),
        archived.locator('.pdf-link').click(),
      ]);
      assert.equal(response.status(), 200);
      assert.equal(response.headers()['content-type'], 'application/pdf');
      assert.equal(download.suggestedFilename(), `session_${guest.id}.pdf`);
      const pdf = readFileSync(await download.path());
      assert.equal(pdf.subarray(0, 5).toString(), '%PDF-');

      // A second chat, ended from the dashboard: the visitor is told `admin`.
      const other = await visitor(server);
      await other.say('Do you handle e-waste registration?');
      await page.locator('#tab-live').click();
      const otherRow = page.locator(`#live-body tr[data-id="${other.id}"]`);
      await otherRow.click();
      page.once('dialog', (dialog) => dialog.accept());
      await page.getByRole('button', { name: 'End this chat' }).click();
      assert.equal((await other.next((f) => f.type === 'ended', 'ended')).reason, 'admin');
      await otherRow.waitFor({ state: 'detached', timeout: 5000 });
      await page.locator('#detail-report .pdf-link').waitFor({ timeout: 20000 });
      other.close();
      assert.deepEqual(errors, []);
    } finally {
      guest?.close();
      await context.close();
    }
  });
});
