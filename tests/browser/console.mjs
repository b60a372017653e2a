// The web console's browser tests: Debian's chromium driven by
// playwright-core against the real stack that tests/tests/console.rs
// starts. That test gives the URLs and tokens in the environment, answers
// what only it can do (run the CLI, cut the page's connections) on
// request, and asserts on the observations this script prints last.
//
// Protocol on stdio, one JSON object a line:
//   stdout `ask {"id":N,"do":...}`  -> stdin `{"id":N,...}`
//   stdout `result {...}`           the observations, once, at the end.
// Everything else (logs) goes to stderr.
//
// Every wait here has a deadline (Playwright's timeouts); none sleeps.

import { chromium } from 'playwright-core';
import readline from 'node:readline';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run me from tests/tests/console.rs`);
  return value;
};
const CONSOLE_URL = env('CONSOLE_URL');
const OUT_DIR = env('OUT_DIR');
const TOKENS = { admin: env('ADMIN_TOKEN'), read: env('READ_TOKEN'), bound: env('BOUND_TOKEN') };
const OTHER_APP = env('OTHER_APP');
const OTHER_JOB = env('OTHER_JOB');
const WAIT_MS = 30_000;
const LONG_WAIT_MS = 60_000;

const log = (...args) => console.error('[console.mjs]', ...args);
mkdirSync(OUT_DIR, { recursive: true });

// --- asking the Rust test ---------------------------------------------------
const replies = new Map();
let nextAsk = 1;
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const message = JSON.parse(line);
  const resolve = replies.get(message.id);
  replies.delete(message.id);
  resolve?.(message);
});
function ask(what) {
  const id = nextAsk++;
  return new Promise((resolve) => {
    replies.set(id, resolve);
    process.stdout.write(`ask ${JSON.stringify({ id, ...what })}\n`);
  });
}
const cliRun = async (...args) => (await ask({ do: 'run_detached', args })).job;
// `jobs run -d --tasks N ARGS`; with `wait`, after `jobs wait GROUP` too.
const cliGroup = (args, { wait = false } = {}) => ask({ do: 'run_group', args, wait });

// --- the browser ---------------------------------------------------------------
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--disable-quic', '--no-first-run'],
});
const pageErrors = [];
let lastPage = null;
const requestUrls = [];
const dialogs = [];
const cspViolations = [];

async function signedIn(token, viewport = { width: 1280, height: 1500 }) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  lastPage = page;
  page.setDefaultTimeout(WAIT_MS);
  page.on('request', (request) => requestUrls.push(request.url()));
  page.on('pageerror', (error) => { pageErrors.push(String(error)); log('page error:', String(error)); });
  page.on('console', (message) => {
    if (message.text().includes('Content Security Policy')) cspViolations.push(message.text());
    log(`console.${message.type()}:`, message.text());
  });
  page.on('websocket', (socket) => {
    log('websocket', socket.url());
    socket.on('close', () => log('websocket closed', socket.url()));
    if (process.env.CONSOLE_DEBUG) {
      const show = (payload) => (typeof payload === 'string' ? payload : Buffer.from(payload).toString('hex').slice(0, 80));
      socket.on('framereceived', (frame) => log('ws <', show(frame.payload)));
      socket.on('framesent', (frame) => log('ws >', show(frame.payload)));
    }
  });
  page.on('dialog', async (dialog) => { dialogs.push(dialog.message()); await dialog.dismiss(); });
  await page.goto(`${CONSOLE_URL}/`);
  // By keyboard alone: the focus starts in the labelled token field, and
  // Enter signs in.
  await page.getByLabel('API token').waitFor();
  await page.keyboard.type(token);
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/apps/);
  await page.waitForSelector('h1');
  return page;
}

const logRows = (page) => page.$$eval('.log-row', (rows) => rows.map((row) => ({
  line: Number(row.dataset.line), stream: row.dataset.stream,
  text: row.querySelector('.line-text').textContent,
})));
const text = (page, selector) => page.$eval(selector, (element) => element.textContent.trim());
const waitEnded = (page, timeout = LONG_WAIT_MS) => page.waitForSelector('#connection[data-state="ended"]', { timeout });

const results = {};
// CONSOLE_ONLY=name,name runs only those checks, while debugging one.
const only = process.env.CONSOLE_ONLY ? process.env.CONSOLE_ONLY.split(',') : null;
async function check(name, body) {
  if (only && !only.includes(name)) return;
  const started = Date.now();
  try {
    results[name] = await body();
  } catch (error) {
    log(`${name} failed:`, error);
    results[name] = { error: String(error.stack || error) };
    // What the page showed, for the person reading the failure.
    try {
      await lastPage.screenshot({ path: join(OUT_DIR, `failed-${name}.png`) });
      writeFileSync(join(OUT_DIR, `failed-${name}.html`), await lastPage.content());
    } catch { /* the page is gone */ }
  }
  results[name].ms = Date.now() - started;
  log(`${name}: ${results[name].ms} ms`);
}

// 1. Sign in; the runs list shows a run started from the CLI, and its state
//    changes without a reload.
await check('runs_list', async () => {
  const page = await signedIn(TOKENS.admin);
  const signedInUrl = page.url();
  const sessionKeys = await page.evaluate(() => Object.keys(sessionStorage));
  const localKeys = await page.evaluate(() => Object.keys(localStorage));
  await page.getByRole('link', { name: 'demo' }).click();
  await page.waitForURL(/\/apps\/demo$/);
  await page.evaluate(() => { window.__sameDocument = 'still here'; });
  const job = await cliRun('--', 'sh', '-c', 'sleep 3; echo done');
  const row = page.locator(`tr[data-job-id="${job}"]`);
  await row.waitFor();
  const states = [await row.locator('.job-state').textContent()];
  await page.waitForFunction(({ job, seen }) => {
    const cell = document.querySelector(`tr[data-job-id="${job}"] .job-state`);
    return cell && cell.textContent !== seen;
  }, { job, seen: states[0] }, { timeout: LONG_WAIT_MS });
  states.push(await row.locator('.job-state').textContent());
  await page.waitForFunction((job) => document.querySelector(`tr[data-job-id="${job}"] .job-state`)?.textContent === 'succeeded', job, { timeout: LONG_WAIT_MS });
  states.push(await row.locator('.job-state').textContent());
  const exit = await row.locator('.job-exit').textContent();
  const command = await row.locator('.job-command').textContent();
  const createdBy = await row.locator('.job-created-by').textContent();
  const sameDocument = await page.evaluate(() => window.__sameDocument);
  await page.screenshot({ path: join(OUT_DIR, 'runs-list.png'), fullPage: false });
  // The same list on a phone-sized screen: nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => resolve())));
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await page.screenshot({ path: join(OUT_DIR, 'runs-list-phone.png') });
  await page.context().close();
  return { job, states, exit, command, createdBy, sameDocument, signedInUrl, sessionKeys, localKeys, overflow };
});

// 2. A run's page: output that arrives while it is open, in order, coloured,
//    its exit code; the connection cut mid-run, and the whole log after.
await check('run_page', async () => {
  const page = await signedIn(TOKENS.admin);
  const script = 'sleep 2; for i in $(seq -w 1 40); do printf "line %s \\033[31mred\\033[0m\\n" $i; sleep 0.15; done; sleep 0.5; echo to-stderr >&2; exit 5';
  const job = await cliRun('--', 'sh', '-c', script);
  await page.goto(`${CONSOLE_URL}/jobs/${job}`);
  await page.waitForSelector('#connection[data-state="live"]');
  const rowsWhenOpened = (await logRows(page)).length;
  await page.waitForFunction(() => [...document.querySelectorAll('.log-row .line-text')].some((t) => t.textContent === 'line 10 red'));
  const rowsBeforeCut = (await logRows(page)).length;
  const cut = await ask({ do: 'cut' });
  await page.waitForSelector('#connection[data-state="reconnecting"], #connection[data-state="live"]');
  const states = [];
  const recorder = setInterval(async () => {
    try { states.push(await page.$eval('#connection', (e) => e.dataset.state)); } catch { /* closed */ }
  }, 50);
  await waitEnded(page);
  clearInterval(recorder);
  const rows = await logRows(page);
  const red = await page.$eval('.log-row .line-text span', (span) => ({ text: span.textContent, className: span.className, color: getComputedStyle(span).color }));
  const exit = await text(page, '#job-exit');
  const state = await text(page, '#job-state');
  const reason = await text(page, '#job-reason');
  await page.screenshot({ path: join(OUT_DIR, 'run-page.png') });
  // The raw log, byte for byte, through the page's download button.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-log')]);
  const downloadPath = join(OUT_DIR, 'downloaded.log');
  await download.saveAs(downloadPath);
  // Search and the jump to the start.
  await page.fill('#log-search', 'line 33');
  await page.press('#log-search', 'Enter');
  const found = await text(page, '#search-result');
  await page.context().close();
  return { job, rowsWhenOpened, rowsBeforeCut, cut: cut.cut, states, rows, red, exit, state, reason, downloadPath, found };
});

// 3. Output is text: a job printing HTML runs no script.
await check('xss', async () => {
  const page = await signedIn(TOKENS.admin);
  const job = await cliRun('--', 'sh', '-c', `echo '<script>alert(1)</script>'; echo '<img src=x onerror=alert(2)>'`);
  const response = await page.goto(`${CONSOLE_URL}/jobs/${job}`);
  const csp = response.headers()['content-security-policy'];
  await waitEnded(page);
  const rows = await logRows(page);
  const injected = await page.evaluate(() => ({
    scripts: [...document.scripts].map((s) => s.src),
    images: document.querySelectorAll('main img').length,
  }));
  await page.context().close();
  return { job, rows, injected, csp, dialogs: [...dialogs] };
});

// 4. A read token sees no cancel and no start button, and the API refuses
//    those requests if forged; a token that may cancels from the page.
await check('read_token', async () => {
  const job = await cliRun('--', 'sh', '-c', 'echo started; sleep 60');
  const page = await signedIn(TOKENS.read);
  const landing = page.url();
  await page.goto(`${CONSOLE_URL}/apps/demo`);
  await page.locator(`tr[data-job-id="${job}"]`).waitFor();
  const startButtons = await page.locator('#start-run').count();
  await page.goto(`${CONSOLE_URL}/jobs/${job}`);
  await page.waitForFunction(() => [...document.querySelectorAll('.log-row .line-text')].some((t) => t.textContent === 'started'));
  const cancelButtons = await page.locator('#cancel').count();
  await page.goto(`${CONSOLE_URL}/apps/demo/new`);
  const newRunPage = await text(page, 'main');
  const forged = await page.evaluate(async (job) => {
    const headers = { Authorization: `Bearer ${sessionStorage.getItem('jobs.console.token')}`, 'Content-Type': 'application/json' };
    const cancel = await fetch(`/v1/jobs/${job}/cancel`, { method: 'POST', headers });
    const create = await fetch('/v1/apps/demo/jobs', { method: 'POST', headers, body: JSON.stringify({ command: ['true'] }) });
    return { cancel: { status: cancel.status, body: await cancel.json() }, create: { status: create.status, body: await create.json() } };
  }, job);
  await page.context().close();
  const stateAfterForgery = (await ask({ do: 'status', job })).status.state;
  // The admin's page has the button, and it works.
  const admin = await signedIn(TOKENS.admin);
  await admin.goto(`${CONSOLE_URL}/jobs/${job}`);
  await admin.click('#cancel');
  await admin.waitForFunction(() => document.querySelector('#job-state')?.textContent === 'canceled', null, { timeout: LONG_WAIT_MS });
  const cancelButtonsAfter = await admin.locator('#cancel').count();
  await admin.context().close();
  return { job, landing, startButtons, cancelButtons, newRunPage, forged, stateAfterForgery, cancelButtonsAfter };
});

// 5. A token bound to app A cannot reach app B's runs by URL.
await check('bound_token', async () => {
  const page = await signedIn(TOKENS.bound);
  const landing = new URL(page.url()).pathname;
  const nav = await text(page, '#nav');
  await page.goto(`${CONSOLE_URL}/jobs/${OTHER_JOB}`);
  await page.waitForSelector('main .error');
  const jobPage = await text(page, 'main');
  await page.goto(`${CONSOLE_URL}/apps/${OTHER_APP}`);
  await page.waitForSelector('main .error');
  const appPage = await text(page, 'main');
  await page.goto(`${CONSOLE_URL}/apps`);
  await page.waitForSelector('main table, main .error');
  const appsPage = await text(page, 'main');
  await page.context().close();
  return { landing, nav, jobPage, appPage, appsPage };
});

// 6. Start a run with an uploaded file from the page; it sees the file.
await check('upload', async () => {
  const page = await signedIn(TOKENS.bound);
  await page.goto(`${CONSOLE_URL}/apps/demo/new`);
  const content = `hello from the browser\n${'x'.repeat(300_000)}\n`;
  await page.getByLabel('Command').fill('head -n 1 /tmp/uploads/hello.txt; wc -c < /tmp/uploads/hello.txt');
  await page.getByLabel('Environment').fill('GREETING=hi there');
  await page.getByLabel('Files').setInputFiles({ name: 'hello.txt', mimeType: 'text/plain', buffer: Buffer.from(content) });
  const unlabelled = await page.$$eval('input, select, textarea', (fields) => fields
    .filter((field) => field.type !== 'hidden' && !field.labels?.length && !field.getAttribute('aria-label'))
    .map((field) => field.id || field.name));
  // The progress bar's values as the upload goes (the page is the same
  // document after it moves on to the run, so the record stays).
  await page.evaluate(() => {
    window.__progress = [];
    new MutationObserver(() => {
      const bar = document.querySelector('.uploads progress');
      if (bar) window.__progress.push([Number(bar.value), Number(bar.max)]);
    }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['value'] });
  });
  await page.getByRole('button', { name: 'Start' }).click();
  await page.waitForURL(/\/jobs\//);
  const progress = await page.evaluate(() => window.__progress);
  const job = page.url().split('/jobs/')[1];
  await waitEnded(page);
  const rows = await logRows(page);
  const exit = await text(page, '#job-exit');
  await page.context().close();
  return { job, rows, exit, bytes: Buffer.byteLength(content), unlabelled, progress };
});

// 7. The browser terminal: 42, a resize, Ctrl-C, a cut connection (keys
//    typed across it arrive once), exit 3.
await check('terminal', async () => {
  const page = await signedIn(TOKENS.admin, { width: 1200, height: 900 });
  await page.goto(`${CONSOLE_URL}/apps/demo/new`);
  await page.getByLabel('Command').fill('sh');
  await page.getByLabel(/Open a terminal/).check();
  await page.getByRole('button', { name: 'Start' }).click();
  await page.waitForURL(/\/jobs\//);
  const job = page.url().split('/jobs/')[1];
  await page.waitForSelector('.xterm-rows');
  const screen = () => page.$$eval('.xterm-rows > div', (rows) => rows.map((row) => row.textContent.replace(/\u00a0/g, ' ').trimEnd()));
  const waitLine = (pattern, timeout = WAIT_MS) => page.waitForFunction((source) => {
    const re = new RegExp(source);
    return [...document.querySelectorAll('.xterm-rows > div')].some((row) => re.test(row.textContent.replace(/\u00a0/g, ' ').trimEnd()));
  }, pattern.source, { timeout });
  const typeLine = async (line) => { await page.locator('.xterm-helper-textarea').focus(); await page.keyboard.type(line); await page.keyboard.press('Enter'); };
  await waitLine(/[#$] ?$/, LONG_WAIT_MS);
  await typeLine('echo $((6*7))');
  await waitLine(/^42$/);
  const sizeBefore = await page.$eval('#terminal-size', (e) => ({ rows: Number(e.dataset.rows), cols: Number(e.dataset.cols) }));
  await page.setViewportSize({ width: 700, height: 600 });
  await page.waitForFunction((before) => Number(document.querySelector('#terminal-size').dataset.cols) !== before.cols, sizeBefore);
  const sizeAfter = await page.$eval('#terminal-size', (e) => ({ rows: Number(e.dataset.rows), cols: Number(e.dataset.cols) }));
  await typeLine('stty size');
  await waitLine(new RegExp(`^${sizeAfter.rows} ${sizeAfter.cols}$`));
  // Ctrl-C reaches the container: the sleep ends long before its 60 s.
  // A Ctrl-C may race the start of the sleep, so it is repeated until the
  // prompt is back (as tests/tests/interactive.rs does), within a deadline.
  await typeLine('echo sleep-started; sleep 60; echo sleep-not-interrupted');
  await waitLine(/^sleep-started$/);
  const promptBack = () => page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('.xterm-rows > div')].map((row) => row.textContent.replace(/\u00a0/g, ' ').trimEnd()).filter(Boolean);
    return rows.at(-1) === '/ #' && rows.at(-2) !== 'sleep-started';
  }, null, { timeout: 2000 }).then(() => true, () => false);
  let interrupts = 0;
  do { await page.keyboard.press('Control+C'); interrupts++; } while (!(await promptBack()) && interrupts < 10);
  await typeLine('echo after-ctrl-c');
  await waitLine(/^after-ctrl-c$/);
  // A dropped connection reconnects, and the shell is still there. Keys
  // typed at once after the cut (in flight on the dying socket, or held
  // while it reconnects) reach the shell exactly once.
  const cut = await ask({ do: 'cut' });
  await typeLine('echo typed-in-the-gap');
  await page.waitForSelector('#connection[data-state="live"]');
  await waitLine(/^typed-in-the-gap$/);
  await typeLine('echo back-after-cut');
  await waitLine(/^back-after-cut$/);
  const lines = await screen();
  await page.screenshot({ path: join(OUT_DIR, 'terminal.png') });
  await typeLine('exit 3');
  await page.waitForFunction(() => document.querySelector('#job-exit')?.textContent === '3', null, { timeout: LONG_WAIT_MS });
  const exit = await text(page, '#job-exit');
  const state = await text(page, '#job-state');
  await page.context().close();
  return { job, sizeBefore, sizeAfter, lines, cut: cut.cut, exit, state, interrupts };
});

// 8. A long log: only what is in sight is in the page; the end and search.
await check('long_log', async () => {
  const page = await signedIn(TOKENS.admin);
  const job = await cliRun('--', 'seq', '1', '100000');
  await page.goto(`${CONSOLE_URL}/jobs/${job}`);
  await waitEnded(page, LONG_WAIT_MS);
  const inPage = await page.locator('.log-row').count();
  const lastRows = (await logRows(page)).slice(-3).map((row) => row.text);
  await page.fill('#log-search', '77777');
  await page.press('#log-search', 'Enter');
  const found = await text(page, '#search-result');
  await page.waitForFunction(() => [...document.querySelectorAll('.log-row')].some((row) => row.classList.contains('match') && row.querySelector('.line-text').textContent === '77777'));
  await page.click('#jump-end');
  const afterJump = (await logRows(page)).slice(-1).map((row) => row.text);
  await page.context().close();
  return { job, inPage, lastRows, found, afterJump };
});

// 9. The admin's views: apps and workers.
await check('admin_views', async () => {
  const page = await signedIn(TOKENS.admin);
  await page.click('#nav >> text=Workers');
  await page.waitForSelector('tr[data-worker]');
  const workers = await page.$$eval('tr[data-worker]', (rows) => rows.map((row) => [...row.children].map((cell) => cell.textContent)));
  await page.click('#nav >> text=Apps');
  await page.waitForSelector('tr[data-app]');
  const apps = await page.$$eval('tr[data-app]', (rows) => rows.map((row) => row.dataset.app));
  await page.context().close();
  const reader = await signedIn(TOKENS.read);
  const readerNav = await text(reader, '#nav');
  await reader.goto(`${CONSOLE_URL}/workers`);
  await reader.waitForSelector('main .error');
  const readerWorkers = await text(reader, 'main .error');
  await reader.context().close();
  return { workers, apps, readerNav, readerWorkers };
});

// 10. A group's page: a row per task, the counts, each task's run and back.
await check('group_page', async () => {
  const { group, wait_code: waitCode } = await cliGroup(['--tasks', '3', '--', 'sh', '-c', 'exit $JOBS_TASK_INDEX'], { wait: true });
  const page = await signedIn(TOKENS.admin);
  await page.goto(`${CONSOLE_URL}/groups/${group}`);
  await page.waitForSelector('#group-counts');
  await page.evaluate(() => { window.__sameDocument = 'still here'; });
  const heading = await text(page, 'h1');
  const counts = await text(page, '#group-counts');
  const app = await page.$eval('#group-app a', (a) => ({ text: a.textContent, href: a.getAttribute('href') }));
  const command = await text(page, '#group-command');
  const parallelism = await text(page, '#group-parallelism');
  const priority = await text(page, '#group-priority');
  const rows = await page.$$eval('tr[data-task-index]', (rows) => rows.map((row) => ({
    index: row.querySelector('.task-index').textContent,
    job: row.querySelector('.task-job a').textContent,
    href: row.querySelector('.task-job a').getAttribute('href'),
    state: row.querySelector('.task-state').textContent,
    exit: row.querySelector('.task-exit').textContent,
    reason: row.querySelector('.task-reason').textContent,
  })));
  const cancelButtons = await page.locator('#cancel-group').count();
  await page.screenshot({ path: join(OUT_DIR, 'group-page.png') });
  // Task 1's run, by its link, and back to the group by the run's.
  await page.click('tr[data-task-index="1"] .task-job a');
  await page.waitForURL(/\/jobs\//);
  const taskUrl = new URL(page.url()).pathname;
  await page.waitForSelector('#job-group a');
  const taskLine = await text(page, '#job-group');
  const taskState = await text(page, '#job-state');
  await page.click('#job-group a');
  await page.waitForURL(/\/groups\//);
  await page.waitForSelector('#group-counts');
  const backUrl = new URL(page.url()).pathname;
  const sameDocument = await page.evaluate(() => window.__sameDocument);
  // No such group: the API's answer, as the other pages show theirs.
  await page.goto(`${CONSOLE_URL}/groups/grp_nope`);
  await page.waitForSelector('main .error');
  const missing = await text(page, 'main .error');
  await page.context().close();
  return { group, waitCode, heading, counts, app, command, parallelism, priority, rows, cancelButtons, taskUrl, taskLine, taskState, backUrl, sameDocument, missing };
});

// 11. A running group: its states change without a reload; a read token
//     has no cancel button; "Cancel every task" ends them all.
await check('group_cancel', async () => {
  const { group } = await cliGroup(['--tasks', '2', '--parallelism', '1', '--', 'sh', '-c', 'echo started; sleep 60']);
  const reader = await signedIn(TOKENS.read);
  await reader.goto(`${CONSOLE_URL}/groups/${group}`);
  await reader.waitForSelector('tr[data-task-index="1"]');
  const readerCancelButtons = await reader.locator('#cancel-group').count();
  await reader.context().close();
  const page = await signedIn(TOKENS.admin);
  await page.goto(`${CONSOLE_URL}/groups/${group}`);
  await page.waitForSelector('#group-counts');
  const countsWhenOpened = await text(page, '#group-counts');
  await page.waitForFunction(() => document.querySelector('tr[data-task-index="0"] .task-state')?.textContent === 'running', null, { timeout: LONG_WAIT_MS });
  const countsRunning = await text(page, '#group-counts');
  const parallelism = await text(page, '#group-parallelism');
  const button = await text(page, '#cancel-group');
  await page.click('#cancel-group');
  // The cancel's answer at once: the queued task ended, the running one
  // stopping; its end comes with a later refresh.
  // Counts and button are read in one go, the first time the page shows a
  // canceled task.
  const afterClick = await (await page.waitForFunction(() => {
    const counts = document.querySelector('#group-counts')?.textContent;
    if (!counts?.includes('canceled')) return null;
    const button = document.querySelector('#cancel-group');
    return { counts, button: button && { text: button.textContent, disabled: button.disabled } };
  })).jsonValue();
  const countsAfterClick = afterClick.counts;
  const buttonAfterClick = afterClick.button;
  await page.waitForFunction(() => document.querySelector('#group-counts')?.textContent === '2 tasks: 2 canceled', null, { timeout: LONG_WAIT_MS });
  const counts = await text(page, '#group-counts');
  const states = await page.$$eval('tr[data-task-index] .task-state', (cells) => cells.map((cell) => cell.textContent));
  const cancelButtonsAfter = await page.locator('#cancel-group').count();
  const reasons = await page.$$eval('tr[data-task-index] .task-reason', (cells) => cells.map((cell) => cell.textContent));
  await page.context().close();
  return { group, readerCancelButtons, countsWhenOpened, countsRunning, parallelism, button, countsAfterClick, buttonAfterClick, counts, states, reasons, cancelButtonsAfter };
});

await browser.close();
results.page_errors = pageErrors;
results.request_urls = requestUrls;
results.csp_violations = cspViolations;
results.dialogs = dialogs;
writeFileSync(join(OUT_DIR, 'results.json'), JSON.stringify(results, null, 2));
process.stdout.write(`result ${JSON.stringify(results)}\n`);
process.exit(0);
