// Drives the web console in headless Chromium (the system's /usr/bin/chromium, through
// playwright-core) against a running Herald, as a compliance officer, an admin and a marketer
// would use it. Run by tests/api/console.rs, which starts the gateway, seeds it and asserts on
// the one JSON object this prints. Screenshots of each page go to $SCREENSHOT_DIR.
//
// Environment: HERALD_URL, COMPLIANCE_TOKEN, ADMIN_TOKEN, MARKETER_TOKEN, AUDIT_PSID (a
// recipient with decisions on record), ERASE_PSID, SUBSCRIBERS (comma-separated PSIDs opted in
// to marketing), FAILING_ENDPOINT (an event endpoint with failed attempts), ENDPOINT_URL (a URL
// to add an endpoint for), SCREENSHOT_DIR, CHROMIUM (default /usr/bin/chromium).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error('missing environment variable ' + name);
  return v;
};
const HERALD = env('HERALD_URL');
const SHOTS = env('SCREENSHOT_DIR');
const STEP_TIMEOUT = 15000;

const result = { errors: [] };

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-console-chromium-'));
  // A persistent context on a fresh profile directory: nothing from another run, no network
  // but the gateway's.
  const browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1366, height: 900 },
    acceptDownloads: true,
    // A viewer away from UTC, at a half hour: times must be shown in their zone.
    timezoneId: 'Asia/Kolkata',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  result.browser = browser.browser() ? browser.browser().version() : 'chromium';
  try {
    await compliance(browser);
    await admin(browser);
    await marketer(browser);
  } finally {
    await browser.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

// Console errors and failed scripts (a CSP violation is one) are collected and reported.
async function newPage(context, who) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  page.on('pageerror', (e) => result.errors.push(who + ': ' + e.message));
  page.on('console', (m) => {
    // The API's 400, 401 and 403 answers that a scenario provokes on purpose are logged by Chromium as
    // failed resources; anything else is a real error.
    if (m.type() === 'error' && !/status of 40[013]/.test(m.text())) result.errors.push(who + ': ' + m.text());
  });
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, name + '.png'), fullPage: true });
  // A value the page forgot to format shows as one of these words.
  const shown = await page.evaluate(() => document.body.innerText);
  const slip = shown.match(/\b(null|undefined|NaN)\b|\[object Object\]/);
  if (slip) result.errors.push(name + ': the page shows "' + slip[0] + '"');
}

async function signInByPasting(page, token) {
  await page.goto(HERALD + '/console');
  await page.getByLabel('Herald token (JWT)').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#nav:not([hidden])').waitFor();
}

async function problemText(page) {
  const box = page.locator('.problem').first();
  await box.filter({ hasText: /\S/ }).waitFor();
  return (await box.textContent()).trim();
}

async function compliance(context) {
  const page = await newPage(context, 'compliance');
  // The sandbox's link: the token in the fragment, read once and taken out of the address.
  await page.goto(HERALD + '/console#token=' + encodeURIComponent(env('COMPLIANCE_TOKEN')));
  await page.locator('#nav:not([hidden])').waitFor();
  await page.getByRole('heading', { name: 'Audit log' }).waitFor();
  result.signed_in = {
    who: (await page.locator('#who-name').textContent()).trim(),
    url: page.url().replace(HERALD, ''),
    token_kept: await page.evaluate(() => Boolean(sessionStorage.getItem('herald.token'))),
  };

  // Before any search, the page shows the latest entries, newest first; each time to the
  // second in the viewer's zone, the exact value on hover.
  await page.locator('[data-latest]').waitFor();
  const opened = page.locator('table[data-table=audit] tbody tr');
  const seqs = (await opened.locator('td:nth-child(1)').allTextContents()).map(Number);
  const at = opened.first().locator('td:nth-child(2) time');
  const raw = await at.getAttribute('title');
  result.audit_on_open = {
    rows: seqs.length,
    seqs,
    at_shown: (await at.textContent()).trim(),
    at_title: raw,
    // Asia/Kolkata is UTC+5:30, all year.
    at_expected: new Date(Date.parse(raw.replace(/(\.\d{3})\d+/, '$1')) + 5.5 * 3600e3)
      .toISOString().slice(0, 19).replace('T', ' '),
  };
  await shot(page, '00-audit-latest');

  // Audit search with a filter, two entries a page, then the next page.
  await page.getByRole('heading', { name: 'Audit log' }).waitFor();
  await page.getByLabel('Recipient (PSID)').fill(env('AUDIT_PSID'));
  await page.getByLabel('Entries per page').fill('2');
  await page.getByRole('button', { name: 'Search' }).click();
  const rows = page.locator('table[data-table=audit] tbody tr');
  await rows.first().waitFor();
  const firstPage = await rows.count();
  await shot(page, '01-audit-search');
  await page.getByRole('button', { name: 'Next page' }).click();
  await page.getByText('Page 2:').waitFor();
  const secondPage = await rows.count();
  await page.getByRole('button', { name: 'Previous page' }).click();
  await page.getByText('Page 1:').waitFor();

  // Only decisions: open one, with its trace.
  await page.getByLabel('Kind').selectOption('decision');
  await page.getByLabel('Entries per page').fill('50');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByText(/Page 1: \d+ entr/).waitFor();
  const decisions = await rows.count();
  const kinds = await page.locator('table[data-table=audit] tbody tr td:nth-child(3)').allTextContents();
  await rows.first().locator('td a').first().click();
  await page.getByRole('heading', { name: 'Decision trace' }).waitFor();
  const trace = page.locator('table[data-table=trace] tbody tr');
  await trace.first().waitFor();
  result.audit = {
    first_page: firstPage,
    second_page: secondPage,
    decisions,
    kinds: [...new Set(kinds)],
    entry_title: (await page.locator('h1').textContent()).trim(),
    trace_steps: await trace.count(),
    trace_first_rule: (await trace.first().locator('td').nth(1).textContent()).trim(),
    attempts: await page.locator('table[data-table=attempts] tbody tr').count(),
    message_status: await page.locator('[data-status]').first().getAttribute('data-status'),
    message_channel: await page.locator('[data-channel]').first().getAttribute('data-channel'),
    attempt_channels: await page.locator('table[data-table=attempts] tbody tr td:nth-child(2)').allTextContents(),
  };
  await shot(page, '02-audit-entry');

  // Export: the file comes through fetch + Blob with the bearer header.
  await page.goto(HERALD + '/console#/audit');
  await page.getByRole('button', { name: 'Search' }).waitFor();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Export CSV' }).click(),
  ]);
  const csv = fs.readFileSync(await download.path(), 'utf8');
  const [downloadJsonl] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Export JSONL' }).click(),
  ]);
  const jsonl = fs.readFileSync(await downloadJsonl.path(), 'utf8').trim().split('\n');
  result.export = {
    csv_name: download.suggestedFilename(),
    csv_header: csv.split(/\r?\n/)[0],
    csv_lines: csv.trim().split(/\r?\n/).length,
    jsonl_lines: jsonl.length,
    jsonl_kinds: [...new Set(jsonl.map((l) => JSON.parse(l).kind))],
  };

  // A recipient's page.
  await page.goto(HERALD + '/console#/recipient/' + env('AUDIT_PSID'));
  await page.locator('table[data-table=consents] tbody tr').first().waitFor();
  result.recipient = {
    consents: await page.locator('table[data-table=consents] tbody tr').count(),
    messages: await page.locator('table[data-table=messages] tbody tr').count(),
    decisions: await page.locator('table[data-table=decisions] tbody tr').count(),
  };
  await shot(page, '03-recipient');

  // Compliance may not erase: the API says so, and the console shows its detail.
  await page.getByRole('button', { name: /Erase this person/ }).click();
  await page.getByLabel('Type ' + env('AUDIT_PSID') + ' to confirm').fill(env('AUDIT_PSID'));
  await page.getByRole('button', { name: 'Erase', exact: true }).click();
  result.compliance_erase = await problemText(page);

  // Verify the chain, take a checkpoint, verify against it.
  await page.goto(HERALD + '/console#/verify');
  await page.getByRole('button', { name: 'Verify the chain' }).click();
  await page.locator('[data-verified]').waitFor();
  const verified = await page.locator('[data-verified]').getAttribute('data-verified');
  await page.getByRole('button', { name: 'Take a signed checkpoint' }).click();
  await page.getByRole('heading', { name: 'Signed checkpoint' }).waitFor();
  await shot(page, '04-checkpoint');
  await page.getByRole('button', { name: 'Verify against it' }).click();
  await page.getByText(/matches at seq/).waitFor();
  result.verify = {
    ok: verified,
    with_checkpoint: (await page.getByText(/matches at seq/).textContent()).trim(),
  };
  await shot(page, '05-verify');

  // The operator's status page.
  await page.goto(HERALD + '/console#/status');
  await page.locator('[data-count=outbox]').waitFor();
  result.status = {
    ready: (await page.locator('[data-count=ready]').textContent()).trim(),
    outbox: Number(await page.locator('[data-count=outbox]').textContent()),
    sent_last_hour: Number(await page.locator('[data-count=result-sent]').textContent()),
    bars: await page.locator('svg.chart rect.bar').count(),
  };
  await shot(page, '06-status');
  await page.close();
}

async function admin(context) {
  // A fresh context: sessionStorage is per tab, but cookies and storage should not leak.
  const page = await newPage(context, 'admin');
  await page.goto(HERALD + '/console');
  await page.evaluate(() => sessionStorage.clear());
  await signInByPasting(page, env('ADMIN_TOKEN'));
  const psid = env('ERASE_PSID');
  await page.goto(HERALD + '/console#/recipient/' + psid);
  await page.getByRole('button', { name: /Erase this person/ }).click();
  // The confirmation: the button stays disabled until the PSID is typed; Escape keeps it.
  const confirm = page.getByRole('button', { name: 'Erase', exact: true });
  const disabledBefore = await confirm.isDisabled();
  await shot(page, '07-erase-confirmation');
  await page.keyboard.press('Escape');
  await page.locator('dialog').waitFor({ state: 'detached' });
  await page.getByRole('button', { name: /Erase this person/ }).click();
  await page.getByLabel('Type ' + psid + ' to confirm').fill(psid);
  await confirm.click();
  await page.getByText(/^Erased at /).waitFor();
  result.erase = {
    disabled_before_typing: disabledBefore,
    notice: (await page.getByText(/^Erased at /).textContent()).trim(),
  };

  // Event endpoints: the list with each one's health, a failing one's attempts, a replay, and a
  // new endpoint whose secret is shown once.
  await page.goto(HERALD + '/console#/endpoints');
  await page.locator('table[data-table=endpoints] tbody tr').first().waitFor();
  await shot(page, '07b-endpoints');
  const healths = await page.locator('table[data-table=endpoints] [data-health]').evaluateAll(
    (els) => els.map((e) => e.dataset.health));
  await page.goto(HERALD + '/console#/endpoint/' + env('FAILING_ENDPOINT'));
  await page.locator('table[data-table=failed-attempts] tbody tr').first().waitFor();
  const failedRows = await page.locator('table[data-table=failed-attempts] tbody tr').count();
  await page.getByLabel('Replay every event since (RFC 3339)').fill('2000-01-01T00:00:00Z');
  await page.getByRole('button', { name: 'Replay' }).click();
  await page.getByText(/^Replaying \d+ events\.$/).waitFor();
  const replayed = (await page.getByText(/^Replaying \d+ events\.$/).textContent()).trim();
  await shot(page, '07c-endpoint-failing');
  await page.goto(HERALD + '/console#/endpoints/new');
  await page.getByLabel('URL').fill(env('ENDPOINT_URL'));
  await page.getByLabel('Events', { exact: true }).fill('message.*, consent.opted_out');
  await page.getByRole('button', { name: 'Add the endpoint' }).click();
  await page.locator('#endpoint-secret').waitFor();
  const secret = (await page.locator('#endpoint-secret').textContent()).trim();
  await shot(page, '07d-endpoint-added');
  result.endpoints = { healths, failed_rows: failedRows, replayed, secret_shown: secret.startsWith('whsec_') };
  await page.evaluate(() => sessionStorage.clear());
  await page.close();
}

async function waitForStatus(page, wanted, timeout) {
  await page.locator('#campaign-status[data-status=' + wanted + ']').waitFor({ timeout: timeout || STEP_TIMEOUT });
}

async function marketer(context) {
  const page = await newPage(context, 'marketer');
  await page.goto(HERALD + '/console');
  await page.evaluate(() => sessionStorage.clear());
  await signInByPasting(page, env('MARKETER_TOKEN'));
  result.marketer_landing = page.url().replace(HERALD, '');

  // Audit data is the API's to refuse: the console shows its problem detail.
  await page.goto(HERALD + '/console#/audit');
  await page.getByRole('button', { name: 'Search' }).click();
  const audit403 = await problemText(page);
  await shot(page, '08-marketer-audit-403');
  await page.goto(HERALD + '/console#/status');
  await page.getByRole('heading', { name: 'Status' }).waitFor();
  const status403 = await problemText(page);
  result.marketer = {
    audit: audit403,
    status: status403,
    audit_nav_hidden: await page.locator('#nav a[href="#/audit"]').isHidden(),
    rows_shown: await page.locator('table[data-table=audit] tbody tr').count(),
  };

  // Create a campaign to the subscribers and watch it complete.
  await page.goto(HERALD + '/console#/campaigns/new');
  await page.getByLabel('Name').fill('Winter teas');
  await page.getByLabel('Message text').fill('20% off winter teas');
  await page.getByLabel('PSIDs, one per line (or separated by commas)').fill(env('SUBSCRIBERS').split(',').join('\n'));
  await page.getByLabel('Rate per second').fill('50');
  await shot(page, '09-campaign-new');
  await page.getByRole('button', { name: 'Create campaign' }).click();
  await page.waitForURL(/#\/campaign\/cmp_/);
  const id = page.url().split('#/campaign/')[1];
  await waitForStatus(page, 'completed', 30000);
  // One more poll after completion is not made; the last render holds the final counts.
  result.campaign = {
    id,
    status: await page.locator('#campaign-status').getAttribute('data-status'),
    audience: Number(await page.locator('[data-count=audience]').textContent()),
    sent: Number(await page.locator('[data-count=sent]').textContent()),
    chart_points: Number(await page.locator('svg.chart path.line').getAttribute('data-points')),
    pause_disabled: await page.getByRole('button', { name: 'Pause' }).isDisabled(),
  };
  await shot(page, '10-campaign-completed');

  // A bad campaign: the API names the field, and the console shows it.
  await page.goto(HERALD + '/console#/campaigns/new');
  await page.getByLabel('Name').fill('Empty');
  await page.getByLabel('Message text').fill('hello');
  await page.getByRole('button', { name: 'Create campaign' }).click();
  result.invalid_campaign = await problemText(page);

  // A slow one (one recipient a second): pause it, resume it, then cancel it.
  await page.goto(HERALD + '/console#/campaigns/new');
  await page.getByLabel('Name').fill('Slow drip');
  await page.getByLabel('Message text').fill('A slow one');
  const slow = Array.from({ length: 60 }, (_, i) => 'slow' + i);
  await page.getByLabel('PSIDs, one per line (or separated by commas)').fill(slow.join(','));
  await page.getByLabel('Rate per second').fill('1');
  await page.getByRole('button', { name: 'Create campaign' }).click();
  await page.waitForURL(/#\/campaign\/cmp_/);
  const slowId = page.url().split('#/campaign/')[1];
  await waitForStatus(page, 'running');
  const seen = ['running'];
  await page.getByRole('button', { name: 'Pause' }).click();
  await waitForStatus(page, 'paused');
  seen.push('paused');
  await shot(page, '11-campaign-paused');
  await page.getByRole('button', { name: 'Resume' }).click();
  await waitForStatus(page, 'running');
  seen.push('running');
  await page.getByRole('button', { name: 'Cancel campaign' }).click();
  await page.getByLabel('Type cancel to confirm').fill('cancel');
  await page.getByRole('button', { name: 'Cancel campaign' }).last().click();
  await waitForStatus(page, 'cancelled');
  seen.push('cancelled');
  result.slow = { id: slowId, statuses: seen };

  await page.goto(HERALD + '/console#/campaigns');
  await page.locator('table[data-table=campaigns] tbody tr').first().waitFor();
  result.campaigns_listed = await page.locator('table[data-table=campaigns] tbody tr').count();
  await shot(page, '12-campaigns');
  await page.close();
}

main()
  .then(() => { console.log(JSON.stringify(result)); })
  .catch((e) => {
    result.failure = String(e && e.stack ? e.stack : e);
    console.log(JSON.stringify(result));
    process.exit(1);
  });
