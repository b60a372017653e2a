// The log view: every line of a job's output in memory, but only the
// lines in sight (and a few around) in the page, so that a log of millions
// of lines scrolls as fast as a short one. Each stream is decoded and
// parsed on its own, so that a stderr chunk in the middle of a stdout line
// does not cut it. Text goes in with textContent only: never as HTML.

import { AnsiParser } from './ansi.js';

// Must match .log-row's height in console.css.
export const ROW_HEIGHT = 18;
const OVERSCAN = 30;

export class LogView {
  constructor(container) {
    this.lines = [];
    this.open = { stdout: null, stderr: null };
    this.parsers = { stdout: new AnsiParser(), stderr: new AnsiParser() };
    this.decoders = { stdout: new TextDecoder('utf-8'), stderr: new TextDecoder('utf-8') };
    this.follow = true;
    this.highlight = -1;
    this.frame = 0;
    this.viewport = document.createElement('div');
    this.viewport.className = 'log-viewport';
    this.viewport.tabIndex = 0;
    this.viewport.setAttribute('role', 'log');
    this.viewport.setAttribute('aria-label', 'Output');
    this.spacer = document.createElement('div');
    this.spacer.className = 'log-spacer';
    this.rows = document.createElement('div');
    this.rows.className = 'log-rows';
    this.spacer.append(this.rows);
    this.viewport.append(this.spacer);
    container.append(this.viewport);
    this.viewport.addEventListener('scroll', () => {
      const bottom = this.viewport.scrollTop + this.viewport.clientHeight >= this.viewport.scrollHeight - ROW_HEIGHT;
      if (!this.programmaticScroll) this.follow = bottom;
      this.programmaticScroll = false;
      this.schedule();
    });
    new ResizeObserver(() => this.schedule()).observe(this.viewport);
  }

  appendBytes(stream, bytes) {
    this.appendText(stream, this.decoders[stream].decode(bytes, { stream: true }));
  }

  appendText(stream, text) {
    this.parsers[stream].feed(
      text,
      (run, style) => {
        const line = this.openLine(stream);
        line.runs.push([run, style]);
        line.text += run;
      },
      () => { this.openLine(stream); this.open[stream] = null; },
      () => { const line = this.openLine(stream); line.runs = []; line.text = ''; },
    );
    this.schedule();
  }

  openLine(stream) {
    if (!this.open[stream]) {
      const line = { stream, runs: [], text: '' };
      this.lines.push(line);
      this.open[stream] = line;
    }
    return this.open[stream];
  }

  get lineCount() { return this.lines.length; }

  jumpToEnd() { this.follow = true; this.render(); this.viewport.focus(); }

  jumpToStart() { this.follow = false; this.scrollToLine(0); }

  // Finds the next (or previous) line holding `query`, case-insensitively,
  // from the highlighted one; returns its index or -1.
  find(query, backwards = false) {
    if (!query) return -1;
    const needle = query.toLowerCase();
    const count = this.lines.length;
    const from = this.highlight >= 0 ? this.highlight : (backwards ? count : -1);
    for (let step = 1; step <= count; step++) {
      const index = ((from + (backwards ? -step : step)) % count + count) % count;
      if (this.lines[index].text.toLowerCase().includes(needle)) {
        this.highlight = index;
        this.follow = false;
        this.scrollToLine(index);
        return index;
      }
    }
    return -1;
  }

  scrollToLine(index) {
    this.programmaticScroll = true;
    this.viewport.scrollTop = Math.max(0, index * ROW_HEIGHT - this.viewport.clientHeight / 2);
    this.render();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
  }

  render() {
    const total = this.lines.length;
    this.spacer.style.height = `${total * ROW_HEIGHT}px`;
    if (this.follow) {
      this.programmaticScroll = true;
      this.viewport.scrollTop = this.viewport.scrollHeight;
    }
    const top = this.viewport.scrollTop;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(total, Math.ceil((top + this.viewport.clientHeight) / ROW_HEIGHT) + OVERSCAN);
    this.rows.style.transform = `translateY(${first * ROW_HEIGHT}px)`;
    const elements = [];
    for (let i = first; i < last; i++) elements.push(this.rowElement(i));
    this.rows.replaceChildren(...elements);
  }

  rowElement(index) {
    const line = this.lines[index];
    const row = document.createElement('div');
    row.className = `log-row ${line.stream}`;
    if (index === this.highlight) row.classList.add('match');
    row.dataset.line = String(index + 1);
    row.dataset.stream = line.stream;
    const number = document.createElement('span');
    number.className = 'line-no';
    number.textContent = String(index + 1);
    number.setAttribute('aria-hidden', 'true');
    const marker = document.createElement('span');
    marker.className = 'stream-mark';
    marker.textContent = line.stream === 'stderr' ? 'err' : '';
    marker.title = line.stream;
    const text = document.createElement('span');
    text.className = 'line-text';
    for (const [run, style] of line.runs) {
      if (!style) { text.append(run); continue; }
      const span = document.createElement('span');
      span.textContent = run;
      styleSpan(span, style);
      text.append(span);
    }
    row.append(number, marker, text);
    return row;
  }
}

function styleSpan(span, style) {
  let { fg, bg } = style;
  if (style.inverse) [fg, bg] = [bg ?? 'inverse-fg', fg ?? 'inverse-bg'];
  setColour(span, 'fg', fg);
  setColour(span, 'bg', bg);
  if (style.bold) span.classList.add('sgr-bold');
  if (style.dim) span.classList.add('sgr-dim');
  if (style.italic) span.classList.add('sgr-italic');
  if (style.underline) span.classList.add('sgr-underline');
}

function setColour(span, which, colour) {
  if (colour === null || colour === undefined) return;
  if (typeof colour === 'number' && colour < 16) { span.classList.add(`${which}-${colour}`); return; }
  if (colour === 'inverse-fg' || colour === 'inverse-bg') { span.classList.add(`${which}-${colour}`); return; }
  const css = typeof colour === 'number' ? xterm256(colour) : colour;
  if (which === 'fg') span.style.color = css; else span.style.backgroundColor = css;
}

// The xterm 256-colour palette above the 16 named colours.
function xterm256(n) {
  if (n >= 232) { const v = 8 + (n - 232) * 10; return `rgb(${v},${v},${v})`; }
  const i = n - 16;
  const level = (x) => (x === 0 ? 0 : 55 + x * 40);
  return `rgb(${level(Math.floor(i / 36))},${level(Math.floor(i / 6) % 6)},${level(i % 6)})`;
}
