// Following a job's log: the SSE stream of GET /v1/jobs/{id}/logs/stream,
// read with fetch() so that the token goes in a header (EventSource cannot
// send one). After a dropped connection (a sleeping laptop, a proxy) it
// reconnects with Last-Event-ID set to the last sequence number it passed
// on, so nothing is missing and nothing comes twice.

import { authHeaders, enc, readAnswer } from './api.js';

const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 5000;
// The API sends a keep-alive comment every 15 s; a connection silent for
// three of them is dead (a laptop that slept, a NAT that forgot it), even
// though the browser has not noticed: it is dropped and reopened.
const SILENCE_MS = 45_000;

// Resolves with the ended job once the stream's `end` event came; rejects
// on an answer that retrying cannot change (404, 401, 403).
// onChunk(chunk) gets every LogChunk once, in order; onState('live' |
// 'reconnecting') tells the page how the connection is.
export async function followLog(jobId, { after = 0, onChunk, onState, signal }) {
  let last = after;
  let delay = RETRY_FIRST_MS;
  while (!signal.aborted) {
    const connection = new AbortController();
    const abort = () => connection.abort();
    signal.addEventListener('abort', abort, { once: true });
    let silence = 0;
    const heard = () => { clearTimeout(silence); silence = setTimeout(abort, SILENCE_MS); };
    try {
      heard();
      const response = await fetch(`/v1/jobs/${enc(jobId)}/logs/stream`, {
        headers: authHeaders({ 'Last-Event-ID': String(last), Accept: 'text/event-stream' }),
        cache: 'no-store', credentials: 'omit', signal: connection.signal,
      });
      if (!response.ok) {
        if ([401, 403, 404, 422].includes(response.status)) await readAnswer(response);
        throw new Error(`log stream: HTTP ${response.status}`);
      }
      onState('live');
      delay = RETRY_FIRST_MS;
      const ended = await readEvents(response.body, heard, (event) => {
        if (event.type === 'log') {
          const chunk = JSON.parse(event.data);
          if (chunk.seq <= last) return null;
          onChunk(chunk);
          last = chunk.seq;
        } else if (event.type === 'end') {
          return JSON.parse(event.data);
        }
        return null;
      });
      if (ended) return ended;
    } catch (error) {
      if (signal.aborted) return null;
      if (error.status) throw error;
    } finally {
      clearTimeout(silence);
      signal.removeEventListener('abort', abort);
      connection.abort();
    }
    onState('reconnecting');
    await sleep(delay, signal);
    delay = Math.min(delay * 2, RETRY_MAX_MS);
  }
  return null;
}

// Parses a text/event-stream body; `handle` returns a value to stop with.
// `heard` is called on every read, keep-alive comments included.
async function readEvents(body, heard, handle) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let event = { type: 'message', data: '' };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return null;
    heard();
    buffer += value;
    let newline;
    while ((newline = buffer.search(/\r\n|\n|\r/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
      if (line === '') {
        if (event.data !== '') {
          const result = handle({ type: event.type, data: event.data.replace(/\n$/, '') });
          if (result) { reader.cancel().catch(() => {}); return result; }
        }
        event = { type: 'message', data: '' };
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const raw = colon < 0 ? '' : line.slice(colon + 1);
        const fieldValue = raw.startsWith(' ') ? raw.slice(1) : raw;
        if (field === 'event') event.type = fieldValue;
        else if (field === 'data') event.data += `${fieldValue}\n`;
      }
    }
  }
}

export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}
