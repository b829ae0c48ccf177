// TEMPORARY stand-in so admin.html loads on the lifecycle branch; the accounts helper's
// session.js replaces it at merge (same exports, see the contract).

export async function requireSession() {
  const r = await fetch('/api/auth/session', { credentials: 'same-origin' });
  if (r.status === 401) {
    window.location.assign(`/entrar.html?${new URLSearchParams({ volta: window.location.pathname })}`);
    return new Promise(() => {});
  }
  return r.ok ? r.json() : { name: '', role: 'admin', csrf_token: '', expires_at: null };
}

let csrf = '';
export async function apiSend(method, path, body) {
  const headers = { 'X-CSRF-Token': csrf };
  let payload = body;
  if (body !== undefined && !(body instanceof Blob)) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  } else if (body instanceof Blob) {
    headers['Content-Type'] = body.type;
  }
  return fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
}

export async function apiGet(path) {
  return fetch(path, { credentials: 'same-origin' });
}
