// One-shot REST calls (lists and uploads); live data comes over Socket.IO.

export async function request(method, url, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(url, opts);
  let data = null;
  try { data = await res.json(); } catch { /* non-JSON error page */ }
  if (!res.ok) throw new Error((data && data.error) || `${method} ${url}: HTTP ${res.status}`);
  return data;
}

export const getDevices = () => request('GET', '/api/devices').then((d) => d.devices);
export const getModels = () => request('GET', '/api/models');
export const getSources = () => request('GET', '/api/sources');

// Upload with progress (fetch has no upload progress); resolves to the API's JSON.
export function upload(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const form = new FormData();
    form.append('file', file);
    xhr.open('POST', '/api/upload');
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { /* ignore */ }
      if (xhr.status >= 200 && xhr.status < 300 && data) resolve(data);
      else reject(new Error((data && data.error) || `Upload failed: HTTP ${xhr.status}`));
    };
    xhr.onerror = () => reject(new Error('Upload failed: connection lost'));
    xhr.send(form);
  });
}

const qs = (params) => new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null)).toString();

// History (SQLite on the server); `from`/`to` are unix seconds. A 404 means "no history yet".
async function history(path, params) {
  try {
    return await request('GET', `/api/${path}?${qs(params)}`);
  } catch (err) {
    if (/No history|not enabled/.test(err.message)) return null;
    throw err;
  }
}
export const getHistory = (source, from, to, limit = 2000) => history('history', { source, from, to, limit });
export const getSegments = (source, from, to) => history('segments', { source, from, to });
export const getAlerts = (source, from, to) => history('alerts', { source, from, to });
export const getSummary = (source, from, to) => history('summary', { source, from, to });
export const getRules = (source) => request('GET', `/api/sources/${encodeURIComponent(source)}/rules`);
export const exportUrl = (what, ext, source, from, to) =>
  `/api/export/${what}.${ext}?${qs({ source, from: Math.floor(from), to: Math.ceil(to) })}`;
