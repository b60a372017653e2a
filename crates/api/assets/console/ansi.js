// A small parser of the ANSI codes jobs print: SGR colours and styles
// (16, 256 and 24-bit colours, bold, dim, italic, underline, inverse) are
// kept as attributes of text runs; every other escape sequence (cursor
// moves, window titles) is dropped. It never produces HTML: the log view
// puts each run in the page with textContent.

// The style of a run of text, or null for the default one.
export class SgrState {
  constructor() { this.reset(); }
  reset() {
    this.fg = null; this.bg = null;
    this.bold = false; this.dim = false; this.italic = false; this.underline = false; this.inverse = false;
  }
  isDefault() {
    return this.fg === null && this.bg === null && !this.bold && !this.dim && !this.italic && !this.underline && !this.inverse;
  }
  snapshot() {
    if (this.isDefault()) return null;
    return { fg: this.fg, bg: this.bg, bold: this.bold, dim: this.dim, italic: this.italic, underline: this.underline, inverse: this.inverse };
  }
  apply(params) {
    const codes = params === '' ? [0] : params.split(/[;:]/).map((p) => (p === '' ? 0 : Number(p)));
    for (let i = 0; i < codes.length; i++) {
      const code = codes[i];
      if (code === 0) this.reset();
      else if (code === 1) this.bold = true;
      else if (code === 2) this.dim = true;
      else if (code === 3) this.italic = true;
      else if (code === 4) this.underline = true;
      else if (code === 7) this.inverse = true;
      else if (code === 22) { this.bold = false; this.dim = false; }
      else if (code === 23) this.italic = false;
      else if (code === 24) this.underline = false;
      else if (code === 27) this.inverse = false;
      else if (code >= 30 && code <= 37) this.fg = code - 30;
      else if (code === 39) this.fg = null;
      else if (code >= 40 && code <= 47) this.bg = code - 40;
      else if (code === 49) this.bg = null;
      else if (code >= 90 && code <= 97) this.fg = code - 90 + 8;
      else if (code >= 100 && code <= 107) this.bg = code - 100 + 8;
      else if (code === 38 || code === 48) {
        let colour = null;
        if (codes[i + 1] === 5) { colour = clamp(codes[i + 2]); i += 2; }
        else if (codes[i + 1] === 2) { colour = `#${hex(codes[i + 2])}${hex(codes[i + 3])}${hex(codes[i + 4])}`; i += 4; }
        if (code === 38) this.fg = colour; else this.bg = colour;
      }
    }
  }
}

function clamp(value) { return Math.max(0, Math.min(255, Number(value) || 0)); }
function hex(value) { return clamp(value).toString(16).padStart(2, '0'); }

// Splits text into runs [text, style] and line ends. Keeps its state (the
// SGR style, and an escape sequence cut by a chunk boundary) across calls.
export class AnsiParser {
  constructor() { this.state = new SgrState(); this.pending = ''; }

  // Calls onText(text, style) for each run, onNewline() at each '\n' and
  // onCarriageReturn() at a '\r' that does not end a line.
  feed(input, onText, onNewline, onCarriageReturn) {
    let text = this.pending + input;
    this.pending = '';
    let start = 0;
    const flush = (end) => { if (end > start) onText(text.slice(start, end), this.state.snapshot()); };
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x0a) { flush(i); onNewline(); start = i + 1; }
      else if (c === 0x0d) {
        flush(i);
        if (i + 1 >= text.length) { this.pending = '\r'; return; }
        if (text.charCodeAt(i + 1) !== 0x0a) onCarriageReturn();
        start = i + 1;
      } else if (c === 0x1b) {
        flush(i);
        const end = escapeEnd(text, i);
        if (end < 0) { this.pending = text.slice(i); return; }
        const sequence = text.slice(i, end);
        if (sequence.startsWith('\x1b[') && sequence.endsWith('m')) this.state.apply(sequence.slice(2, -1));
        start = end; i = end - 1;
      } else if (c < 0x20 && c !== 0x09) {
        // Other control characters (bell, backspace) are not shown.
        flush(i); start = i + 1;
      }
    }
    flush(text.length);
  }
}

// Where the escape sequence at `i` ends (exclusive), or -1 if the text
// ends first. Sequences longer than 256 characters are cut there, so that a
// stray ESC cannot swallow a whole log.
function escapeEnd(text, i) {
  const limit = Math.min(text.length, i + 256);
  if (i + 1 >= text.length) return -1;
  const kind = text[i + 1];
  if (kind === '[') {
    for (let j = i + 2; j < limit; j++) {
      const c = text.charCodeAt(j);
      if (c >= 0x40 && c <= 0x7e) return j + 1;
    }
  } else if (kind === ']') {
    for (let j = i + 2; j < limit; j++) {
      if (text[j] === '\x07') return j + 1;
      if (text[j] === '\x1b' && text[j + 1] === '\\') return j + 2;
    }
  } else {
    return i + 2;
  }
  return limit < text.length ? limit : -1;
}
