// The console in a real browser: Debian's Chromium, driven by Playwright, against `outdial dev`
// (the whole local stack and its PSTN simulator). An operator's session from start to end:
// start a campaign from the upload page, pause and resume it, watch it complete, open a failed
// call's timeline, add and remove a do-not-call number. A screenshot of each page is kept in
// SCREENSHOTS (target/console-screenshots by default).
//
// Nothing here waits a fixed time: every step waits for what the page shows.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openBrowser, startStack } from './harness.mjs';

const shots = process.env.SCREENSHOTS || resolve(import.meta.dirname, '..', '..', 'target', 'console-screenshots');
mkdirSync(shots, { recursive: true });

// The simulator's callees: one number that does not exist, one busy line, one that never
// answers, one who cancels; everyone else confirms (the demo's mix is left out).
const FAILS = '+15555550107';
const callees = {
  [FAILS]: 'fails',
  '+15555550108': 'busy',
  '+15555550109': 'no-answer',
  '+15555550110': 'declines',
};
const names = ['Ada', 'Grace', 'Alan', 'Barbara', 'Edsger', 'Frances', 'Donald', 'Ken', 'Radia', 'Hedy', 'Tim', 'Ida'];
const CSV = [
  'to,name,date',
  ...names.map((n, i) => `+1555555${String(100 + i).padStart(4, '0')},${n},Tuesday at ${9 + (i % 8)}`),
  'not a number,Nobody,Monday',
].join('\n');
const SPEC = {
  name: 'Flu clinic reminders',
  from: '+15555550199',
  // Slow enough that the campaign is still dialing when the test pauses it (12 s at least;
  // the pause comes within a second or two of the start).
  pacing: { calls_per_second: 1, max_concurrent: 4 },
  // Retries wait real seconds (the simulator speeds up only the calls themselves).
  retry: { max_attempts: 2, busy_after_s: 2, no_answer_after_s: 2 },
  script: {
    caller_name: 'Riverside Clinic',
    start: 'greet',
    steps: {
      greet: { say: 'Hello {{name}}, this is Riverside Clinic about your flu shot on {{date}}.', next: 'menu' },
      menu: {
        gather: { say: 'Press 1 to confirm or 2 to cancel.', min_digits: 1, max_digits: 1, timeout_ms: 5000, repeat: 2 },
        branches: { 1: 'confirm', 2: 'decline' },
        no_input: 'goodbye',
      },
      confirm: { say: 'Thank you, see you then.', outcome: 'confirmed' },
      decline: { say: 'Your appointment is cancelled.', outcome: 'declined' },
      goodbye: { say: 'We will call again. Goodbye.', outcome: 'no_input' },
    },
  },
};

let stack;
let browser;
let page;
let campaignUrl;
// Errors the page threw: none is expected (checked after each test).
const errors = [];

const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
const badge = () => page.locator('h1 .badge');

describe('the console', { timeout: 600_000 }, () => {
  before(async () => {
    stack = await startStack({ callees });
    ({ browser, page } = await openBrowser());
    page.setDefaultTimeout(30_000);
    page.on('pageerror', (e) => errors.push(e));
  });

  afterEach(() => {
    assert.deepEqual(errors.map(String), [], 'the page threw');
  });

  after(async () => {
    if (browser) await browser.close();
    if (stack) await stack.stop();
  });

  it('loads in under 200 KB, all from its own server', async (t) => {
    const sizes = [];
    const origin = new URL(stack.console).origin;
    const recorded = (r) => sizes.push(r.body().then((b) => ({ url: r.url(), bytes: b.length })));
    page.on('response', recorded);
    await page.goto(stack.console);
    await page.locator('#campaigns').waitFor();
    page.off('response', recorded);
    const loaded = await Promise.all(sizes);
    const total = loaded.reduce((s, r) => s + r.bytes, 0);
    assert.ok(loaded.every((r) => r.url.startsWith(origin)), JSON.stringify(loaded));
    assert.ok(total < 200_000, `first load ${total} bytes: ${JSON.stringify(loaded)}`);
    t.diagnostic(`first load: ${total} bytes in ${loaded.length} responses`);
    // The status filter offers the API's own campaign statuses (docs/openapi.json).
    const options = await page.locator('#filter-status option').allTextContents();
    assert.deepEqual(options, ['Any status', 'ACTIVE', 'PAUSED', 'CANCELLED', 'COMPLETED']);
  });

  it('checks a contact list row by row, then starts the campaign', async () => {
    await page.getByRole('link', { name: 'Start a campaign' }).click();
    await page.getByLabel('Or edit it here').fill(JSON.stringify(SPEC, null, 2));
    await page.getByLabel('Read a CSV file').setInputFiles({ name: 'contacts.csv', mimeType: 'text/csv', buffer: Buffer.from(CSV) });
    await page.getByRole('button', { name: 'Check' }).click();
    const summary = page.locator('#preview-summary', { hasText: 'rows:' });
    await summary.waitFor();
    assert.match(await summary.textContent(), /^13 rows: 12 will be called, 1 rejected/);
    const firstRow = page.locator('#preview-rows tbody tr').first();
    assert.match(await firstRow.textContent(), /^14not a numberrejectedto/);
    // Numbers are masked in the list.
    assert.ok(!(await page.locator('#preview-rows').textContent()).includes('+15555550100'));
    await shot('start');
    await page.getByRole('button', { name: 'Start the campaign' }).click();
    await page.waitForURL(/#\/campaigns\/cmp_/);
    campaignUrl = page.url();
    await page.locator('h1', { hasText: 'Flu clinic reminders' }).waitFor();
  });

  it('pauses and resumes the campaign, with a confirmation', async () => {
    await page.getByRole('button', { name: 'Pause' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Pause' }).click();
    await badge().filter({ hasText: 'PAUSED' }).waitFor();
    assert.ok(await page.getByRole('button', { name: 'Pause' }).isDisabled());
    await shot('campaign-paused');
    await page.getByRole('button', { name: 'Resume' }).click();
    await badge().filter({ hasText: 'ACTIVE' }).or(badge().filter({ hasText: 'COMPLETED' })).waitFor();
  });

  it('updates live until the campaign completes', async () => {
    const before = Number(await page.locator('#view').getAttribute('data-updates'));
    await badge().filter({ hasText: 'COMPLETED' }).waitFor({ timeout: 300_000 });
    await page.waitForFunction((n) => Number(document.getElementById('view').dataset.updates) >= n + 3, before);
    assert.equal(await page.locator('#tile-done').textContent(), '100.0 %');
    assert.equal(await page.locator('#tile-contacts').textContent(), '12');
    const outcomes = await page.locator('table.counts', { hasText: 'Script outcomes' }).textContent();
    assert.match(outcomes, /confirmed/);
    // The chart is drawn by uPlot, with both series.
    assert.equal(await page.locator('.chart .uplot canvas').count(), 1);
    assert.match(await page.locator('.chart .u-legend').textContent(), /Dials per second.*Live calls/s);
    await page.locator('#call-list').waitFor();
    await shot('campaign');
  });

  it("opens a failed call's event timeline", async () => {
    await page.getByLabel('Status', { exact: true }).selectOption('INVALID_NUMBER');
    const row = page.locator('#call-list tbody tr', { hasText: 'INVALID_NUMBER' }).first();
    await row.waitFor();
    assert.match(await row.textContent(), /\+15•+07/);
    await row.getByRole('link').click();
    await page.locator('#timeline').waitFor();
    const record = await page.locator('#call-record').textContent();
    assert.ok(record.includes(FAILS), 'the call page shows the whole number');
    assert.match(record, /FinalINVALID_NUMBER/);
    const events = await page.locator('#timeline tbody tr').allTextContents();
    assert.ok(events.length >= 2, events.join('\n'));
    assert.match(events.join('\n'), /NEW_OUTBOUND_CALL/);
    assert.match(events.at(-1), /HANGUP/);
    await shot('call');
  });

  it('opens an answered call with the digits pressed and the actions answered', async () => {
    await page.goto(campaignUrl);
    await page.getByLabel('Status', { exact: true }).selectOption('COMPLETED');
    const row = page.locator('#call-list tbody tr', { hasText: 'confirmed' }).first();
    await row.waitFor();
    await row.getByRole('link').click();
    await page.locator('#timeline').waitFor();
    assert.match(await page.locator('#call-record').textContent(), /Digits pressed1/);
    assert.match(await page.locator('#timeline').textContent(), /CALL_ANSWERED/);
    await shot('call-answered');
  });

  it('adds a number to the do-not-call list and removes it', async () => {
    await page.getByRole('link', { name: 'Do-not-call list' }).click();
    const number = '+15555550150';
    await page.getByLabel('Phone number (E.164)').fill(number);
    await page.getByRole('button', { name: 'Look up' }).click();
    await page.locator('#dnc-result .clear').waitFor();
    await page.getByRole('button', { name: 'Add' }).click();
    await page.locator('#dnc-result .listed', { hasText: number }).waitFor();
    await shot('dnc');
    await page.getByRole('button', { name: 'Remove' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Remove' }).click();
    await page.locator('#dnc-result .clear', { hasText: number }).waitFor();
  });

  it('refuses an address whose id would reach another API path', async () => {
    await page.goto(`${new URL(stack.console).origin}/#/campaigns/cmp_V%2Fcancel%3F`);
    await page.locator('#view .error', { hasText: 'is not a campaign or call id' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Pause' }).count(), 0);
  });

  it('lists the campaign, completed, with filters', async () => {
    await page.getByRole('link', { name: 'Campaigns' }).click();
    const row = page.locator('#campaigns tbody tr', { hasText: 'Flu clinic reminders' });
    await row.waitFor();
    assert.match(await row.textContent(), /COMPLETED/);
    await page.getByLabel('Status').selectOption('PAUSED');
    await page.waitForURL(/status=PAUSED/);
    await page.locator('#campaigns td.none').waitFor();
    await page.getByLabel('Status').selectOption('COMPLETED');
    await page.locator('#campaigns tbody tr', { hasText: 'Flu clinic reminders' }).waitFor();
    await shot('campaigns');
  });
});
