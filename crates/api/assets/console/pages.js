// The console's pages. Each draws into `main` from API answers and returns
// a function that stops what it started. Every value from the API goes in
// as text (text nodes, textContent), never as HTML.

import { api, enc, fetchBlob, fetchRawLog, saveBlob, uploadFile, ApiError, base64Bytes } from './api.js';
import { LogView } from './log_view.js';
import { followLog, sleep } from './log_stream.js';

const ROLES = ['read', 'run', 'admin'];
const STATES = ['queued', 'starting', 'running', 'succeeded', 'failed', 'canceled', 'timed_out', 'lost'];
const TERMINAL = new Set(['succeeded', 'failed', 'canceled', 'timed_out', 'lost']);
const SIZES = ['S', 'M', 'L', 'XL'];
const LIST_REFRESH_MS = 2000;
const JOB_REFRESH_MS = 2000;
const GROUP_REFRESH_MS = 2000;

export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === 'class') element.className = value;
    else if (name === 'text') element.textContent = value;
    else if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

export function link(href, label, attributes = {}) { return el('a', { href, ...attributes }, label); }

export function errorBox(error) {
  return el('p', { class: 'error', role: 'alert' }, error instanceof Error ? error.message : String(error));
}

function may(ctx, role) { return ROLES.indexOf(ctx.caller.role) >= ROLES.indexOf(role); }
function isTerminal(state) { return TERMINAL.has(state); }

export function commandText(command) {
  if (command.length === 3 && command[0] === '/bin/sh' && command[1] === '-c') return command[2];
  return command.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`)).join(' ');
}

function duration(job) {
  if (!job.started_at) return '';
  const end = job.finished_at ? Date.parse(job.finished_at) : Date.now();
  let seconds = Math.max(0, Math.round((end - Date.parse(job.started_at)) / 1000));
  const hours = Math.floor(seconds / 3600); seconds -= hours * 3600;
  const minutes = Math.floor(seconds / 60); seconds -= minutes * 60;
  return hours ? `${hours}h${String(minutes).padStart(2, '0')}m` : minutes ? `${minutes}m${String(seconds).padStart(2, '0')}s` : `${seconds}s`;
}

function when(time) { return time ? new Date(time).toLocaleString() : ''; }

function stateBadge(state) { return el('span', { class: `state state-${state}` }, state.replace('_', ' ')); }

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024; let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return `${value.toFixed(1)} ${units[unit]}`;
}

// --- sign in -----------------------------------------------------------------

export function signInPage(main, _ctx, signIn) {
  const input = el('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const message = el('div', { 'aria-live': 'polite' });
  const form = el('form', { class: 'card sign-in', 'aria-labelledby': 'sign-in-title' },
    el('h1', { id: 'sign-in-title' }, 'Sign in'),
    el('p', {}, 'Paste an API token (', el('code', {}, 'jobs tokens create'), '). It is kept for this tab only and sent only to this server.'),
    el('label', { for: 'token' }, 'API token'),
    input,
    el('button', { type: 'submit' }, 'Sign in'),
    message);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    message.replaceChildren();
    try { await signIn(input.value.trim()); } catch (error) { message.replaceChildren(errorBox(error)); input.focus(); }
  });
  main.append(form);
  input.focus();
}

export function home(main, ctx) {
  ctx.navigate(ctx.caller.app ? `/apps/${enc(ctx.caller.app)}` : '/apps', { replace: true });
}

// --- apps ----------------------------------------------------------------------

export function appsPage(main, ctx) {
  const body = el('div', {}, el('p', {}, 'Loading…'));
  main.append(el('h1', {}, 'Apps'), body);
  api('/v1/apps').then(({ apps }) => {
    if (apps.length === 0) { body.replaceChildren(el('p', {}, 'No apps yet: ', el('code', {}, 'jobs apps create NAME --image IMG'), '.')); return; }
    const admin = ctx.caller.role === 'admin';
    const rows = apps.map((app) => el('tr', { 'data-app': app.name },
      el('th', { scope: 'row' }, link(`/apps/${enc(app.name)}`, app.name)),
      el('td', {}, app.image),
      el('td', {}, app.size),
      el('td', {}, `${app.timeout_seconds}s`),
      admin ? el('td', {}, Object.keys(app.env).join(', ')) : null));
    body.replaceChildren(el('div', { class: 'table-wrap' }, el('table', {},
      el('caption', { class: 'sr-only' }, 'Apps'),
      el('thead', {}, el('tr', {}, ['App', 'Image', 'Size', 'Timeout', admin ? 'Config vars' : null].filter(Boolean).map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, rows))));
  }).catch((error) => body.replaceChildren(errorBox(error)));
}

// As `jobs workers` says it: a draining worker takes no new job; a stale
// one was not heard from within the API's freshness window.
function workerState(worker) {
  const draining = worker.draining_since != null;
  if (worker.stale) return draining ? 'stale (draining)' : 'stale';
  return draining ? 'draining' : 'active';
}

export function workersPage(main) {
  const controller = new AbortController();
  const body = el('div', { class: 'table-wrap' }, el('p', {}, 'Loading…'));
  const status = el('p', { class: 'muted', 'aria-live': 'polite' });
  main.append(el('h1', {}, 'Workers'), status, body);
  (async () => {
    while (!controller.signal.aborted) {
      try {
        const { workers } = await api('/v1/workers', { signal: controller.signal });
        body.replaceChildren(workers.length === 0 ? el('p', {}, 'No worker has registered.') : el('table', {},
          el('caption', { class: 'sr-only' }, 'Workers, most recently heard from first'),
          el('thead', {}, el('tr', {}, ['Worker', 'Slots', 'Free', 'Busy', 'Last heard', 'Version', 'State'].map((h) => el('th', { scope: 'col' }, h)))),
          el('tbody', {}, workers.map((worker) => el('tr', { 'data-worker': worker.id },
            el('th', { scope: 'row' }, el('code', {}, worker.id)),
            el('td', {}, worker.slots),
            el('td', {}, worker.free_slots),
            el('td', {}, worker.slots - worker.free_slots),
            el('td', {}, `${Math.max(0, Math.round((Date.now() - Date.parse(worker.heartbeat_at)) / 1000))}s ago`),
            el('td', {}, worker.version ?? '-'),
            el('td', {}, workerState(worker)))))));
        status.textContent = `updated ${new Date().toLocaleTimeString()}`;
      } catch (error) {
        if (controller.signal.aborted) return;
        body.replaceChildren(errorBox(error));
        if (error instanceof ApiError && [401, 403].includes(error.status)) return;
      }
      await sleep(LIST_REFRESH_MS * 2, controller.signal);
    }
  })();
  return () => controller.abort();
}

// --- runs list -----------------------------------------------------------------

export function runsPage(main, ctx, app) {
  const controller = new AbortController();
  const params = new URLSearchParams(location.search);
  const filter = el('select', { id: 'state-filter', name: 'state' },
    el('option', { value: '' }, 'every state'),
    STATES.map((state) => el('option', { value: state, selected: params.get('state') === state }, state.replace('_', ' '))));
  const status = el('p', { class: 'muted', 'aria-live': 'polite' });
  const table = el('div', { class: 'table-wrap' });
  main.append(
    el('div', { class: 'page-head' },
      el('h1', {}, 'Runs of ', el('span', { class: 'app-name' }, app)),
      may(ctx, 'run') ? link(`/apps/${enc(app)}/new`, 'Start a run', { class: 'button', id: 'start-run' }) : null),
    el('div', { class: 'filters' }, el('label', { for: 'state-filter' }, 'State'), filter),
    status, table);
  filter.addEventListener('change', () => {
    const query = filter.value ? `?state=${enc(filter.value)}` : '';
    history.replaceState(null, '', `/apps/${enc(app)}${query}`);
    refresh();
  });
  let failed = false;
  async function refresh() {
    try {
      const query = filter.value ? `&state=${enc(filter.value)}` : '';
      const { jobs } = await api(`/v1/apps/${enc(app)}/jobs?limit=100${query}`, { signal: controller.signal });
      table.replaceChildren(runsTable(jobs));
      status.textContent = `${jobs.length} run${jobs.length === 1 ? '' : 's'}, newest first; updated ${new Date().toLocaleTimeString()}`;
      failed = false;
    } catch (error) {
      if (controller.signal.aborted) return;
      if (error instanceof ApiError && [401, 403, 404].includes(error.status)) { table.replaceChildren(errorBox(error)); failed = true; controller.abort(); return; }
      status.textContent = `could not refresh: ${error.message}; retrying`;
    }
  }
  (async () => {
    while (!controller.signal.aborted) {
      if (!document.hidden) await refresh();
      if (failed) return;
      await sleep(LIST_REFRESH_MS, controller.signal);
    }
  })();
  return () => controller.abort();
}

// A queued run's place and why it waits, as the API gives it (`queue`).
function placeInLine(job) {
  if (!job.queue) return '';
  return el('span', { title: job.queue.waiting_for }, `#${job.queue.position}: ${job.queue.waiting_for}`);
}

function runsTable(jobs) {
  if (jobs.length === 0) return el('p', {}, 'No runs.');
  const head = ['Run', 'State', 'Exit', 'Reason', 'Command', 'Size', 'Priority', 'Kind', 'Started by', 'Created', 'Duration', 'In line'];
  return el('table', { class: 'runs' },
    el('caption', { class: 'sr-only' }, 'Runs, newest first'),
    el('thead', {}, el('tr', {}, head.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, jobs.map((job) => el('tr', { 'data-job-id': job.id },
      el('th', { scope: 'row' }, link(`/jobs/${enc(job.id)}`, job.id.slice(0, 12), { title: job.id })),
      el('td', { class: 'job-state' }, stateBadge(job.state)),
      el('td', { class: 'job-exit' }, job.exit_code ?? ''),
      el('td', { class: 'job-reason' }, job.reason ?? ''),
      el('td', { class: 'job-command' }, el('code', {}, commandText(job.command))),
      el('td', {}, job.size),
      el('td', { class: 'job-priority' }, job.priority ?? 'normal'),
      el('td', {}, job.interactive ? 'terminal' : 'queued run'),
      el('td', { class: 'job-created-by' }, job.created_by ?? ''),
      el('td', {}, when(job.created_at)),
      el('td', {}, duration(job)),
      el('td', { class: 'job-position' }, placeInLine(job))))));
}

// --- start a run -------------------------------------------------------------------

function parseDuration(text) {
  const match = /^(\d+)\s*(s|m|h)?$/.exec(text.trim());
  if (!match) throw new Error(`timeout "${text}" is not a duration such as 90s, 30m or 2h`);
  return Number(match[1]) * { s: 1, m: 60, h: 3600 }[match[2] || 's'];
}

function parseEnv(text) {
  const env = {};
  for (const [index, line] of text.split('\n').entries()) {
    if (!line.trim()) continue;
    const eq = line.indexOf('=');
    const name = eq < 0 ? line.trim() : line.slice(0, eq);
    if (eq < 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new Error(`env line ${index + 1} "${line}" is not K=V with a name matching [A-Za-z_][A-Za-z0-9_]*`);
    }
    env[name] = line.slice(eq + 1);
  }
  return env;
}

export function newRunPage(main, ctx, app) {
  main.append(el('h1', {}, 'Start a run of ', el('span', { class: 'app-name' }, app)));
  if (!may(ctx, 'run')) {
    main.append(errorBox(new Error(`this token's role is ${ctx.caller.role}: starting runs needs run`)));
    return;
  }
  const field = (id, label, input, hint) => el('div', { class: 'field' }, el('label', { for: id }, label), input, hint ? el('p', { class: 'hint', id: `${id}-hint` }, hint) : null);
  const command = el('textarea', { id: 'command', name: 'command', rows: 2, required: true, 'aria-describedby': 'command-hint', spellcheck: 'false' });
  const env = el('textarea', { id: 'env', name: 'env', rows: 3, 'aria-describedby': 'env-hint', spellcheck: 'false' });
  const size = el('select', { id: 'size', name: 'size' }, el('option', { value: '' }, "the app's default"), SIZES.map((s) => el('option', { value: s }, s)));
  const timeout = el('input', { id: 'timeout', name: 'timeout', type: 'text', inputmode: 'text', 'aria-describedby': 'timeout-hint' });
  const files = el('input', { id: 'files', name: 'files', type: 'file', multiple: true, 'aria-describedby': 'files-hint' });
  const artifacts = el('textarea', { id: 'artifacts', name: 'artifacts', rows: 2, 'aria-describedby': 'artifacts-hint', spellcheck: 'false' });
  const interactive = el('input', { id: 'interactive', name: 'interactive', type: 'checkbox' });
  const progress = el('div', { class: 'uploads', 'aria-live': 'polite' });
  const message = el('div', { 'aria-live': 'polite' });
  const submit = el('button', { type: 'submit', id: 'start' }, 'Start');
  const form = el('form', { class: 'card run-form' },
    field('command', 'Command', command, 'One line runs with /bin/sh -c, as `jobs run \'CMD\'` does.'),
    field('env', 'Environment', env, 'K=V, one per line, over the app\'s config vars.'),
    field('size', 'Size', size),
    field('timeout', 'Timeout', timeout, 'Such as 90s, 30m or 2h; empty for the app\'s default.'),
    field('files', 'Files', files, 'Each lands in /tmp/uploads/NAME before the command starts.'),
    field('artifacts', 'Artifacts', artifacts, 'Absolute paths to collect when the command ends, one per line.'),
    el('div', { class: 'field checkbox' }, interactive, el('label', { for: 'interactive' }, 'Open a terminal (interactive run with a TTY)')),
    progress, submit, message);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    message.replaceChildren();
    submit.disabled = true;
    try {
      const body = {
        command: ['/bin/sh', '-c', command.value],
        env: parseEnv(env.value),
        artifacts: artifacts.value.split('\n').map((p) => p.trim()).filter(Boolean),
      };
      if (!command.value.trim()) throw new Error('command is empty');
      if (size.value) body.size = size.value;
      if (timeout.value.trim()) body.timeout_seconds = parseDuration(timeout.value);
      if (interactive.checked) body.interactive = { tty: true };
      const chosen = [...files.files];
      const total = chosen.reduce((sum, file) => sum + file.size, 0);
      body.uploads = [];
      for (const file of chosen) {
        const bar = el('progress', { max: file.size || 1, value: 0, id: `progress-${body.uploads.length}` });
        const label = el('span', {}, `${file.name}: 0 of ${formatBytes(file.size)}`);
        progress.append(el('div', { class: 'upload' }, el('label', {}, label), bar));
        const stored = await uploadFile(app, file, total, (loaded) => {
          bar.value = loaded;
          label.textContent = `${file.name}: ${formatBytes(loaded)} of ${formatBytes(file.size)}`;
        });
        bar.value = file.size || 1;
        label.textContent = `${file.name}: uploaded, ${formatBytes(stored.size)}`;
        body.uploads.push({ id: stored.id, sha256: stored.sha256 });
      }
      const job = await api(`/v1/apps/${enc(app)}/jobs`, { method: 'POST', json: body });
      ctx.navigate(`/jobs/${enc(job.id)}`);
    } catch (error) {
      message.replaceChildren(errorBox(error));
      submit.disabled = false;
    }
  });
  main.append(form);
  command.focus();
}

// --- a run -----------------------------------------------------------------------

export function runPage(main, ctx, jobId) {
  const controller = new AbortController();
  const cleanups = [() => controller.abort()];
  const head = el('div', {}, el('p', {}, 'Loading…'));
  main.append(head);
  (async () => {
    let job;
    try { job = await api(`/v1/jobs/${enc(jobId)}`, { signal: controller.signal }); } catch (error) {
      if (!controller.signal.aborted) head.replaceChildren(errorBox(error));
      return;
    }
    const summary = el('dl', { class: 'summary' });
    const actions = el('div', { class: 'actions' });
    const connection = el('span', { id: 'connection', class: 'muted', 'aria-live': 'polite' });
    const artifacts = el('div', { id: 'artifacts' });
    const output = el('section', { class: 'output', 'aria-labelledby': 'output-title' });
    head.replaceChildren(
      el('div', { class: 'page-head' },
        el('h1', {}, 'Run ', el('code', { id: 'job-id' }, job.id)),
        link(`/apps/${enc(job.app)}`, `← runs of ${job.app}`)),
      summary, actions, artifacts, output);
    const draw = (current) => {
      // A slow refresh that left before the end must not undo it.
      if (isTerminal(job.state) && !isTerminal(current.state)) return;
      job = current;
      drawSummary(summary, job);
      drawActions(actions, ctx, job, () => refreshJob());
      drawArtifacts(artifacts, job);
    };
    const refreshJob = async () => {
      try { draw(await api(`/v1/jobs/${enc(jobId)}`, { signal: controller.signal })); } catch { /* the next refresh */ }
    };
    draw(job);
    const useTerminal = job.interactive && !isTerminal(job.state) && may(ctx, 'run');
    output.append(el('h2', { id: 'output-title' }, useTerminal ? 'Terminal ' : 'Output ', connection));
    if (useTerminal) {
      const { openTerminal } = await import('./terminal.js');
      const box = el('div', { class: 'terminal', id: 'terminal' });
      const size = el('p', { id: 'terminal-size', class: 'muted' });
      const detach = el('button', { type: 'button', id: 'detach' }, 'Detach');
      output.append(box, el('div', { class: 'actions' }, size, detach));
      const session = openTerminal(box, job.id, {
        onState: (state) => { connection.textContent = state; connection.dataset.state = state; },
        onMessage: (message) => {
          if (message.type === 'waiting') connection.textContent = `waiting: #${message.position} in line for a worker`;
          else if (message.type === 'started') refreshJob();
        },
        onEnded: () => refreshJob(),
        onSize: (rows, cols) => { size.textContent = `${cols}×${rows}`; size.dataset.rows = rows; size.dataset.cols = cols; },
      });
      detach.addEventListener('click', () => { session.client.detach(); connection.textContent = 'detached: the run goes on'; });
      cleanups.push(() => session.close());
      return;
    }
    const toolbar = logToolbar();
    output.append(toolbar.element);
    const view = new LogView(output);
    toolbar.bind(view, job);
    // The job's state besides its log: queued → starting → running.
    (async () => {
      while (!controller.signal.aborted && !isTerminal(job.state)) {
        await sleep(JOB_REFRESH_MS, controller.signal);
        if (!controller.signal.aborted && !document.hidden) await refreshJob();
      }
    })();
    try {
      const ended = await followLog(job.id, {
        onChunk: (chunk) => view.appendBytes(chunk.stream, base64Bytes(chunk.data)),
        onState: (state) => { connection.textContent = state === 'live' ? 'live' : 'reconnecting…'; connection.dataset.state = state; },
        signal: controller.signal,
      });
      if (ended) { draw(ended); connection.textContent = 'ended'; connection.dataset.state = 'ended'; }
    } catch (error) {
      if (!controller.signal.aborted) output.append(errorBox(error));
    }
  })().catch((error) => { if (!controller.signal.aborted) main.append(errorBox(error)); });
  return () => cleanups.forEach((cleanup) => cleanup());
}

function drawSummary(summary, job) {
  const rows = [
    ['State', stateBadge(job.state), 'job-state'],
    ['Exit code', job.exit_code ?? (isTerminal(job.state) ? 'none' : ''), 'job-exit'],
    ['Reason', job.reason ?? '', 'job-reason'],
    ['Command', el('code', {}, commandText(job.command)), 'job-command'],
    ['App', job.app, 'job-app'],
    ['Size', job.size, 'job-size'],
    ['Attempt', job.attempt, 'job-attempt'],
    ['Priority', job.priority ?? 'normal', 'job-priority'],
    ['Created', when(job.created_at), 'job-created'],
    ['Duration', duration(job), 'job-duration'],
  ];
  if (job.group_id) {
    rows.splice(4, 0, ['Group', el('span', {}, `task ${job.task_index} of group `, link(`/groups/${enc(job.group_id)}`, job.group_id)), 'job-group']);
  }
  summary.replaceChildren(...rows.flatMap(([term, value, id]) => [el('dt', {}, term), el('dd', { id }, value)]));
  summary.dataset.state = job.state;
}

// --- a group ---------------------------------------------------------------------

// `6 tasks: 4 succeeded, 2 failed`: the states with tasks, in the order of
// STATES, as `jobs status GROUP` counts them.
function groupCounts(tasks) {
  const parts = STATES
    .map((state) => [state, tasks.filter((task) => task.state === state).length])
    .filter(([, count]) => count > 0)
    .map(([state, count]) => `${count} ${state.replace('_', ' ')}`);
  return `${tasks.length} task${tasks.length === 1 ? '' : 's'}: ${parts.join(', ')}`;
}

function groupEnded(group) { return group.tasks.every((task) => isTerminal(task.state)); }

export function groupPage(main, ctx, groupId) {
  const controller = new AbortController();
  const body = el('div', {}, el('p', {}, 'Loading…'));
  const status = el('p', { class: 'muted', id: 'group-status', 'aria-live': 'polite' });
  main.append(body, status);
  let group = null;
  let drawn = null;
  let failed = false;
  // One button for the page's life, so that a refresh keeps its focus.
  let canceling = false;
  const cancel = el('button', { type: 'button', id: 'cancel-group', class: 'danger' });
  const message = el('div', { 'aria-live': 'polite' });
  cancel.addEventListener('click', async () => {
    message.replaceChildren();
    canceling = true;
    drawCancel();
    try {
      draw(await api(`/v1/groups/${enc(group.id)}/cancel`, { method: 'POST', signal: controller.signal }));
    } catch (error) {
      if (controller.signal.aborted) return;
      canceling = false;
      drawCancel();
      message.replaceChildren(errorBox(error));
    }
  });

  // Only for a token that may run, and only while a task has not ended.
  function drawCancel() {
    if (!may(ctx, 'run') || groupEnded(group)) { cancel.remove(); return; }
    cancel.textContent = canceling ? 'Canceling every task…' : 'Cancel every task';
    cancel.disabled = canceling;
    if (!cancel.isConnected) drawn.actions.append(cancel);
  }

  function draw(current) {
    // A slow refresh that left before a task ended must not undo its end.
    if (group && group.tasks.some((task, i) => isTerminal(task.state) && !isTerminal(current.tasks[i]?.state))) return;
    group = current;
    if (!drawn) {
      drawn = { summary: el('dl', { class: 'summary' }), actions: el('div', { class: 'actions' }), tasks: el('div', { class: 'table-wrap' }) };
      body.replaceChildren(
        el('div', { class: 'page-head' },
          el('h1', {}, 'Group ', el('code', { id: 'group-id' }, group.id)),
          link(`/apps/${enc(group.app)}`, `← runs of ${group.app}`)),
        drawn.summary, drawn.actions, message, el('h2', {}, 'Tasks'), drawn.tasks);
    }
    const rows = [
      ['Tasks', groupCounts(group.tasks), 'group-counts'],
      ['App', link(`/apps/${enc(group.app)}`, group.app), 'group-app'],
      ['Command', el('code', {}, commandText(group.command)), 'group-command'],
      ['Parallelism', group.parallelism ?? 'no limit', 'group-parallelism'],
      ['Priority', group.priority ?? 'normal', 'group-priority'],
      ['Started by', group.created_by ?? '', 'group-created-by'],
      ['Created', when(group.created_at), 'group-created'],
    ];
    drawn.summary.replaceChildren(...rows.flatMap(([term, value, id]) => [el('dt', {}, term), el('dd', { id }, value)]));
    drawn.summary.dataset.ended = String(groupEnded(group));
    drawCancel();
    drawn.tasks.replaceChildren(tasksTable(group.tasks));
  }

  async function refresh() {
    try {
      draw(await api(`/v1/groups/${enc(groupId)}`, { signal: controller.signal }));
      status.textContent = groupEnded(group) ? 'every task has ended' : `updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      if (controller.signal.aborted) return;
      if (error instanceof ApiError && [401, 403, 404].includes(error.status)) {
        body.replaceChildren(errorBox(error));
        status.textContent = '';
        failed = true;
        return;
      }
      status.textContent = `could not refresh: ${error.message}; retrying`;
    }
  }

  // Every 2 s while the tab is visible, until every task has ended.
  (async () => {
    while (!controller.signal.aborted) {
      if (!group || !document.hidden) await refresh();
      if (failed || (group && groupEnded(group))) return;
      await sleep(GROUP_REFRESH_MS, controller.signal);
    }
  })();
  return () => controller.abort();
}

function tasksTable(tasks) {
  const head = ['Task', 'Run', 'State', 'Exit', 'Reason', 'Attempt', 'Duration'];
  return el('table', { class: 'runs tasks' },
    el('caption', { class: 'sr-only' }, 'Tasks, by index'),
    el('thead', {}, el('tr', {}, head.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, tasks.map((task) => el('tr', { 'data-task-index': task.index, 'data-job-id': task.job_id },
      el('th', { scope: 'row', class: 'task-index' }, task.index),
      el('td', { class: 'task-job' }, link(`/jobs/${enc(task.job_id)}`, task.job_id)),
      el('td', { class: 'task-state' }, stateBadge(task.state)),
      el('td', { class: 'task-exit' }, task.exit_code ?? ''),
      el('td', { class: 'task-reason' }, task.reason ?? ''),
      el('td', { class: 'task-attempt' }, task.attempt),
      el('td', {}, duration(task))))));
}

function drawActions(actions, ctx, job, refresh) {
  actions.replaceChildren();
  const download = el('button', { type: 'button', id: 'download-log' }, 'Download log');
  download.addEventListener('click', async () => {
    download.disabled = true;
    try { saveBlob(await fetchRawLog(job.id), `${job.id}.log`); } catch (error) { actions.append(errorBox(error)); }
    download.disabled = false;
  });
  actions.append(download);
  if (may(ctx, 'run') && !isTerminal(job.state)) {
    const cancel = el('button', { type: 'button', id: 'cancel', class: 'danger' }, 'Cancel run');
    cancel.addEventListener('click', async () => {
      cancel.disabled = true;
      try { await api(`/v1/jobs/${enc(job.id)}/cancel`, { method: 'POST' }); refresh(); } catch (error) { actions.append(errorBox(error)); cancel.disabled = false; }
    });
    actions.append(cancel);
  }
}

function drawArtifacts(box, job) {
  box.replaceChildren();
  if (!job.artifacts.length) return;
  box.append(el('h2', {}, 'Artifacts'), el('ul', {}, job.artifacts.map((artifact, index) => {
    if (!artifact.size && artifact.size !== 0 || artifact.error) return el('li', {}, `${artifact.path}: ${artifact.error || 'not collected'}`);
    const button = el('button', { type: 'button', class: 'link-button' }, `${artifact.path} (${formatBytes(artifact.size)}, tar)`);
    button.addEventListener('click', async () => {
      try { saveBlob(await fetchBlob(`/v1/jobs/${enc(job.id)}/artifacts/${index}`), `${job.id}-${index}.tar`); } catch (error) { box.append(errorBox(error)); }
    });
    return el('li', {}, button);
  })));
}

function logToolbar() {
  const search = el('input', { id: 'log-search', type: 'search', placeholder: 'Search the log', 'aria-label': 'Search the log' });
  const found = el('span', { id: 'search-result', class: 'muted', 'aria-live': 'polite' });
  const previous = el('button', { type: 'button' }, 'Previous');
  const next = el('button', { type: 'button' }, 'Next');
  const start = el('button', { type: 'button', id: 'jump-start' }, 'Start');
  const end = el('button', { type: 'button', id: 'jump-end' }, 'End');
  const element = el('div', { class: 'log-toolbar', role: 'toolbar', 'aria-label': 'Log' }, search, previous, next, found, start, end);
  return {
    element,
    bind(view) {
      const find = (backwards) => {
        const index = view.find(search.value, backwards);
        found.textContent = index < 0 ? 'not found' : `line ${index + 1}`;
      };
      search.addEventListener('keydown', (event) => { if (event.key === 'Enter') { event.preventDefault(); find(event.shiftKey); } });
      next.addEventListener('click', () => find(false));
      previous.addEventListener('click', () => find(true));
      start.addEventListener('click', () => view.jumpToStart());
      end.addEventListener('click', () => view.jumpToEnd());
    },
  };
}
