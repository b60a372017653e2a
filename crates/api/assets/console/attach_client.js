// The attach protocol of interactive runs (crates/core/src/attach.rs), as
// the browser speaks it, all in this one module:
// - output: a binary frame, one stream byte (1 stdout, 2 stderr), the
//   chunk's log sequence number (8 bytes, big endian), then the bytes;
// - input: a binary frame of raw stdin bytes;
// - everything else: JSON text frames (`attached`, `waiting`, `started`,
//   `ended` from the API; `resize`, `eof`, `detach` to it).
// The token goes in the bearer subprotocol (a browser cannot set a header
// on a WebSocket); the API answers with ATTACH_SUBPROTOCOL.
// A dropped connection is reconnected with ?after=SEQ, so the output has no
// gap and no duplicate; the API keeps the run for its grace period
// (JOBS_ATTACH_GRACE) meanwhile. A client replaced by a newer one (close
// code 4001) leaves.

import { enc, session } from './api.js';

export const ATTACH_SUBPROTOCOL = 'jobs.attach.v1';
export const BEARER_SUBPROTOCOL_PREFIX = 'base64url.bearer.jobs.';
export const CLOSE_REPLACED = 4001;
const OUTPUT_HEADER_BYTES = 9;
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 5000;

function base64url(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export class AttachClient {
  // handlers: onOutput(stream, bytes), onMessage(message), onState(state),
  // onEnded(message); state is 'connecting' | 'live' | 'reconnecting' |
  // 'ended' | 'replaced' | 'refused'.
  constructor(jobId, handlers) {
    this.jobId = jobId;
    this.handlers = handlers;
    this.after = 0;
    this.size = null;
    this.socket = null;
    this.finished = false;
    this.delay = RETRY_FIRST_MS;
    this.pending = [];
  }

  connect() {
    if (this.finished) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const url = `${scheme}://${location.host}/v1/jobs/${enc(this.jobId)}/attach?after=${this.after}`;
    const socket = new WebSocket(url, [ATTACH_SUBPROTOCOL, BEARER_SUBPROTOCOL_PREFIX + base64url(session.token())]);
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    this.handlers.onState(this.after === 0 ? 'connecting' : 'reconnecting');
    socket.onopen = () => {
      this.delay = RETRY_FIRST_MS;
      if (this.size) this.sendJson({ type: 'resize', ...this.size });
      for (const bytes of this.pending.splice(0)) socket.send(bytes);
      this.handlers.onState('live');
    };
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.finished) return;
      if (event.code === CLOSE_REPLACED) { this.finish('replaced'); return; }
      this.handlers.onState('reconnecting');
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, RETRY_MAX_MS);
    };
  }

  receive(data) {
    if (typeof data === 'string') {
      const message = JSON.parse(data);
      if (message.type === 'attached') {
        this.after = Math.max(this.after, message.after);
      } else if (message.type === 'ended') {
        this.finish('ended');
        this.handlers.onEnded(message);
      } else {
        this.handlers.onMessage(message);
      }
      return;
    }
    const frame = new Uint8Array(data);
    if (frame.length < OUTPUT_HEADER_BYTES) return;
    const seq = Number(new DataView(data).getBigInt64(1));
    if (seq <= this.after) return;
    this.after = seq;
    this.handlers.onOutput(frame[0] === 2 ? 'stderr' : 'stdout', frame.subarray(OUTPUT_HEADER_BYTES));
  }

  // Bytes typed at the terminal; kept while reconnecting (a few keys).
  sendInput(bytes) {
    if (this.finished) return;
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(bytes);
    else if (this.pending.length < 256) this.pending.push(bytes);
  }

  resize(rows, cols) {
    this.size = { rows, cols };
    this.sendJson({ type: 'resize', rows, cols });
  }

  eof() { this.sendJson({ type: 'eof' }); }

  // Leaves on purpose: the run goes on with no grace deadline.
  detach() {
    this.sendJson({ type: 'detach' });
    this.finish('detached');
  }

  sendJson(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  finish(state) {
    this.finished = true;
    const socket = this.socket;
    this.socket = null;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000);
    this.handlers.onState(state);
  }

  close() { this.finish('closed'); }
}
