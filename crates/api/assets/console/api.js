// The API client of the console: the token, JSON requests, uploads with
// progress, and downloads. The token lives in sessionStorage only: it ends
// with the tab, is never put in a URL, and goes out only as a header.

const TOKEN_KEY = 'jobs.console.token';

export const session = {
  token() { return sessionStorage.getItem(TOKEN_KEY); },
  set(token) { sessionStorage.setItem(TOKEN_KEY, token); },
  clear() { sessionStorage.removeItem(TOKEN_KEY); },
};

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `the API answered HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code || null;
    this.field = body?.error?.field || null;
  }
}

export function authHeaders(extra = {}) {
  return { ...extra, Authorization: `Bearer ${session.token()}` };
}

export const enc = encodeURIComponent;

// A JSON request; resolves to the parsed body, or null for a 204.
export async function api(path, { method = 'GET', json, signal } = {}) {
  const headers = authHeaders(json === undefined ? {} : { 'Content-Type': 'application/json' });
  const response = await fetch(path, {
    method, headers, signal,
    body: json === undefined ? undefined : JSON.stringify(json),
    cache: 'no-store', credentials: 'omit',
  });
  return readAnswer(response);
}

export async function readAnswer(response) {
  if (response.status === 204) return null;
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// Streams one file to POST /v1/apps/{app}/uploads. XMLHttpRequest, not
// fetch, because only it reports upload progress.
export function uploadFile(app, file, totalBytes, onProgress) {
  return new Promise((resolve, reject) => {
    const query = new URLSearchParams({ name: file.name, size: String(file.size), total: String(totalBytes) });
    const request = new XMLHttpRequest();
    request.open('POST', `/v1/apps/${enc(app)}/uploads?${query}`);
    request.setRequestHeader('Authorization', `Bearer ${session.token()}`);
    request.setRequestHeader('Content-Type', 'application/octet-stream');
    request.upload.onprogress = (event) => { if (event.lengthComputable) onProgress(event.loaded, event.total); };
    request.onload = () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch { body = null; }
      if (request.status === 201) resolve(body); else reject(new ApiError(request.status, body));
    };
    request.onerror = () => reject(new Error(`uploading ${file.name}: the connection failed`));
    request.send(file);
  });
}

// Saves bytes (a Blob) under a file name, through a link the page clicks.
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function base64Bytes(data) {
  const binary = atob(data);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

// The whole stored log, both streams in order, byte for byte, page by page.
export async function fetchRawLog(jobId) {
  const parts = [];
  let after = 0;
  for (;;) {
    const page = await api(`/v1/jobs/${enc(jobId)}/logs?after=${after}&limit=1000`);
    for (const chunk of page.chunks) parts.push(base64Bytes(chunk.data));
    after = page.next_after;
    if (!page.more) break;
  }
  return new Blob(parts, { type: 'application/octet-stream' });
}

export async function fetchBlob(path) {
  const response = await fetch(path, { headers: authHeaders(), cache: 'no-store', credentials: 'omit' });
  if (!response.ok) await readAnswer(response);
  return response.blob();
}
