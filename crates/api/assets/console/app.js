// The console's entry: who is signed in, the navigation, and the router
// that draws a page for the path without reloading. Pages live in
// pages.js; each returns a function that stops its timers and streams.

import { api, session, ApiError } from './api.js';
import * as pages from './pages.js';

const ROUTES = [
  [/^\/$/, () => pages.home],
  [/^\/apps$/, () => pages.appsPage],
  [/^\/apps\/([^/]+)$/, () => pages.runsPage],
  [/^\/apps\/([^/]+)\/new$/, () => pages.newRunPage],
  [/^\/jobs\/([^/]+)$/, () => pages.runPage],
  [/^\/groups\/([^/]+)$/, () => pages.groupPage],
  [/^\/workers$/, () => pages.workersPage],
];

let stopPage = null;
export const ctx = { caller: null, navigate };

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path); else history.pushState(null, '', path);
  render();
}

async function render() {
  if (stopPage) { stopPage(); stopPage = null; }
  const main = document.getElementById('main');
  main.replaceChildren();
  if (!session.token()) { drawChrome(); stopPage = pages.signInPage(main, ctx, signIn); return; }
  if (!ctx.caller) {
    try { ctx.caller = await api('/v1/whoami'); } catch (error) {
      if (error instanceof ApiError && error.status === 401) { session.clear(); render(); return; }
      main.replaceChildren(pages.errorBox(error));
      return;
    }
  }
  drawChrome();
  const path = location.pathname;
  for (const [pattern, page] of ROUTES) {
    const match = path.match(pattern);
    if (match) {
      const params = match.slice(1).map(decodeURIComponent);
      stopPage = page()(main, ctx, ...params) || null;
      main.focus({ preventScroll: true });
      return;
    }
  }
  main.replaceChildren(pages.errorBox(new Error(`no page at ${path}`)));
}

async function signIn(token) {
  session.set(token);
  try {
    ctx.caller = await api('/v1/whoami');
  } catch (error) {
    session.clear();
    ctx.caller = null;
    throw error;
  }
  navigate(ctx.caller.app ? `/apps/${encodeURIComponent(ctx.caller.app)}` : '/apps', { replace: true });
}

function drawChrome() {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  const signOut = document.getElementById('sign-out');
  nav.replaceChildren();
  const caller = session.token() ? ctx.caller : null;
  signOut.hidden = !caller;
  who.textContent = caller ? `${caller.role} token${caller.app ? ` of ${caller.app}` : ', every app'}` : '';
  if (!caller) return;
  const links = [];
  if (caller.app) links.push([`/apps/${encodeURIComponent(caller.app)}`, 'Runs']);
  else links.push(['/apps', 'Apps']);
  if (caller.role === 'admin' && !caller.app) links.push(['/workers', 'Workers']);
  for (const [href, label] of links) nav.append(pages.link(href, label));
}

document.getElementById('sign-out').addEventListener('click', () => {
  session.clear();
  ctx.caller = null;
  navigate('/', { replace: true });
});

// Links inside the console change the page without a reload.
document.addEventListener('click', (event) => {
  const link = event.target.closest('a[href^="/"]');
  if (!link || link.target || link.hasAttribute('download') || event.ctrlKey || event.metaKey || event.shiftKey) return;
  if (link.getAttribute('href').startsWith('/console/') || link.getAttribute('href').startsWith('/v1/')) return;
  event.preventDefault();
  navigate(link.getAttribute('href'));
});
window.addEventListener('popstate', render);
render();
