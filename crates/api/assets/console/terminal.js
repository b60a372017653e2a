// A terminal in the page for an interactive run: xterm.js (vendored, see
// vendor/README.md) drawing what AttachClient receives, and sending keys
// and window sizes back. Loaded only on the page of an interactive run.

import { Terminal } from './vendor/xterm/xterm.mjs';
import { FitAddon } from './vendor/addon-fit/addon-fit.mjs';
import { AttachClient } from './attach_client.js';

export function openTerminal(container, jobId, { onState, onMessage, onEnded, onSize }) {
  const term = new Terminal({
    convertEol: false,
    cursorBlink: true,
    scrollback: 5000,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace',
    fontSize: 14,
    screenReaderMode: true,
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(container);
  const encoder = new TextEncoder();
  const client = new AttachClient(jobId, {
    onOutput: (_stream, bytes) => term.write(bytes),
    onMessage,
    onState,
    onEnded: (message) => { term.options.disableStdin = true; onEnded(message); },
  });
  term.onData((data) => client.sendInput(encoder.encode(data)));
  term.onBinary((data) => client.sendInput(Uint8Array.from(data, (c) => c.charCodeAt(0))));
  term.onResize(({ rows, cols }) => { client.resize(rows, cols); onSize(rows, cols); });
  const refit = () => { try { fit.fit(); } catch { /* not laid out yet */ } };
  const observer = new ResizeObserver(refit);
  observer.observe(container);
  refit();
  client.resize(term.rows, term.cols);
  onSize(term.rows, term.cols);
  client.connect();
  term.focus();
  return {
    term,
    client,
    close() { observer.disconnect(); client.close(); term.dispose(); },
  };
}
