// The attach protocol of interactive runs (crates/core/src/attach.rs), as
// the browser speaks it, all in this one module:
// - output: a binary frame, one stream byte (1 stdout, 2 stderr), the
//   chunk's log sequence number (8 bytes, big endian), then the bytes;
// - input, exactly once across reconnects (`input=offsets`): a binary
//   frame of one kind byte (0), the offset of its first byte in the run's
//   input stream (8 bytes, big endian), then the bytes. What the worker
//   has not acknowledged (`input_ack`) is kept, and sent again from the
//   `input_offset` of the next `attached`, so a cut neither loses nor
//   repeats a key;
// - everything else: JSON text frames (`attached`, `input_ack`, `waiting`,
//   `started`, `ended` from the API; `resize`, `input_end`, `detach` to it).
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
const INPUT_HEADER_BYTES = 9;
// Keys waiting for the worker's ack; past this, typing is dropped with a
// warning rather than held without bound (a paste into a stalled run).
const INPUT_WINDOW_BYTES = 4 * 1024 * 1024;

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
    // The input stream: `unacked` holds the bytes from offset `acked` up to
    // `next`; `live` is whether this connection's `attached` came, so that
    // offsets are known.
    this.unacked = new Uint8Array(0);
    this.acked = null;
    this.next = null;
    this.live = false;
    this.inputEnded = false;
  }

  connect() {
    if (this.finished) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const url = `${scheme}://${location.host}/v1/jobs/${enc(this.jobId)}/attach?after=${this.after}&input=offsets`;
    const socket = new WebSocket(url, [ATTACH_SUBPROTOCOL, BEARER_SUBPROTOCOL_PREFIX + base64url(session.token())]);
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    this.handlers.onState(this.after === 0 ? 'connecting' : 'reconnecting');
    this.live = false;
    socket.onopen = () => {
      this.delay = RETRY_FIRST_MS;
      if (this.size) this.sendJson({ type: 'resize', ...this.size });
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
        this.attached(message.input_offset ?? 0);
      } else if (message.type === 'input_ack') {
        this.acknowledge(message.offset);
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

  // This connection's input goes on from `offset`: the first connection
  // numbers what was typed so far from there; a reconnect resends what the
  // API does not hold.
  // (The API holding bytes is no ack: an API that restarts loses them.)
  attached(offset) {
    if (this.next === null || this.unacked.length === 0) {
      // Nothing of ours is pending: go on where the API is.
      this.acked = offset;
      this.next = offset + this.unacked.length;
    }
    this.live = true;
    const from = Math.min(Math.max(offset, this.acked), this.next);
    if (from < this.next) this.sendFrame(from, this.unacked.subarray(from - this.acked));
    if (this.inputEnded) this.sendJson({ type: 'input_end', offset: this.next });
  }

  // The worker wrote every byte below `offset`: forget them.
  acknowledge(offset) {
    if (this.acked === null || offset <= this.acked) return;
    const upTo = Math.min(offset, this.next);
    this.unacked = this.unacked.slice(upTo - this.acked);
    this.acked = upTo;
  }

  // Bytes typed at the terminal: numbered, kept until acknowledged, and
  // sent at once when the connection is live.
  sendInput(bytes) {
    if (this.finished || this.inputEnded || bytes.length === 0) return;
    if (this.unacked.length + bytes.length > INPUT_WINDOW_BYTES) {
      console.warn('jobs: input not acknowledged for too long; keys dropped');
      return;
    }
    const offset = this.next;
    const grown = new Uint8Array(this.unacked.length + bytes.length);
    grown.set(this.unacked);
    grown.set(bytes, this.unacked.length);
    this.unacked = grown;
    if (this.next === null) return;
    this.next += bytes.length;
    if (this.live) this.sendFrame(offset, bytes);
  }

  sendFrame(offset, bytes) {
    if (this.socket?.readyState !== WebSocket.OPEN) return;
    const frame = new Uint8Array(INPUT_HEADER_BYTES + bytes.length);
    new DataView(frame.buffer).setBigUint64(1, BigInt(offset));
    frame.set(bytes, INPUT_HEADER_BYTES);
    this.socket.send(frame);
  }

  resize(rows, cols) {
    this.size = { rows, cols };
    this.sendJson({ type: 'resize', rows, cols });
  }

  // Local input ended: the container's stdin closes after every byte so far.
  eof() {
    this.inputEnded = true;
    if (this.live && this.next !== null) this.sendJson({ type: 'input_end', offset: this.next });
  }

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
