// Temporary stand-in for the accounts work's session.js (dropped at merge): the same exports,
// doing only what this branch needs. The real one asks /api/auth/session and fills the team bar.

export async function requireSession() {
  const r = await fetch('/api/auth/session', { credentials: 'same-origin', cache: 'no-store' });
  if (r.status === 401) {
    window.location.assign(`/entrar.html?volta=${encodeURIComponent(window.location.pathname + window.location.search)}`);
    return new Promise(() => {});
  }
  return r.ok ? r.json() : {};
}

export async function apiGet(path) {
  const r = await fetch(path, { credentials: 'same-origin', cache: 'no-store', headers: { accept: 'application/json' } });
  if (r.status === 401) {
    window.location.assign(`/entrar.html?volta=${encodeURIComponent(window.location.pathname + window.location.search)}`);
  }
  return r;
}

export async function apiSend(method, path, body) {
  return fetch(path, {
    method,
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}
