// The production team's session, for every team page (painel, admin, histórico, auditoria).
//
// The session itself is an HttpOnly cookie the page never sees; what the page holds is the
// session's CSRF token, learnt from GET /api/auth/session and sent back as X-CSRF-Token on every
// request that changes something. Without a session (401) the browser goes to the login page,
// which brings it back here afterwards.

import { el } from './dom.js';

const LOGIN_PAGE = '/entrar.html';
const TIMEOUT_MS = 15000;

let current = null;

/** The page to come back to after logging in: this one, path and query. */
function here() {
  return window.location.pathname + window.location.search;
}

/** Sends the browser to the login page; the returned promise never settles. */
function toLogin() {
  window.location.assign(`${LOGIN_PAGE}?volta=${encodeURIComponent(here())}`);
  return new Promise(() => {});
}

async function send(method, path, { body, headers = {} } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
  try {
    const response = await fetch(path, {
      method,
      headers,
      body,
      credentials: 'same-origin',
      cache: 'no-store',
      signal: controller.signal,
    });
    if (response.status === 401) return toLogin();
    return response;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The signed-in session, `{name, role, csrf_token, expires_at}`; without one the browser is sent
 * to the login page and this never resolves. Fills `<nav id="team-bar">` when the page has one.
 */
export async function requireSession() {
  const response = await send('GET', '/api/auth/session', { headers: { accept: 'application/json' } });
  if (!response.ok) throw new Error(`GET /api/auth/session: ${response.status}`);
  current = await response.json();
  fillTeamBar(current);
  return current;
}

/** A GET with the session's cookie; a 401 sends the browser to the login page. */
export function apiGet(path) {
  return send('GET', path, { headers: { accept: 'application/json' } });
}

/**
 * A request that changes something: the cookie, X-CSRF-Token, and `body` as JSON (a plain
 * object) or as it is with its own type (a Blob or File). A 401 sends the browser to log in.
 */
export async function apiSend(method, path, body) {
  if (!current) await requireSession();
  const headers = { accept: 'application/json', 'x-csrf-token': current.csrf_token };
  let payload;
  if (body instanceof Blob) {
    payload = body;
    if (body.type) headers['content-type'] = body.type;
  } else if (body !== undefined && body !== null) {
    payload = JSON.stringify(body);
    headers['content-type'] = 'application/json';
  }
  return send(method, path, { body: payload, headers });
}

/** Ends the session and goes to the login page. */
export async function logout() {
  try {
    if (current) {
      await fetch('/api/auth/logout', {
        method: 'POST',
        headers: { 'x-csrf-token': current.csrf_token },
        credentials: 'same-origin',
      });
    }
  } finally {
    current = null;
    window.location.assign(LOGIN_PAGE);
  }
}

const ROLE_LABELS = { admin: 'Administração', producer: 'Produção' };

function fillTeamBar(session) {
  const bar = document.getElementById('team-bar');
  if (!bar) return;
  const links = [
    ['/painel.html', 'Painel'],
    session.role === 'admin' ? ['/admin.html', 'Admin'] : null,
    ['/historico.html', 'Histórico'],
    ['/auditoria.html', 'Auditoria'],
  ].filter(Boolean);
  const list = el('ul', { className: 'team-bar__links' },
    ...links.map(([href, label]) => {
      const attributes = { href, className: 'team-bar__link' };
      if (window.location.pathname === href) attributes['aria-current'] = 'page';
      return el('li', {}, el('a', attributes, label));
    }));
  const out = el('button', { type: 'button', className: 'team-bar__logout' }, 'Sair');
  out.addEventListener('click', () => {
    out.disabled = true;
    logout();
  });
  bar.classList.add('team-bar');
  bar.replaceChildren(
    el('span', { className: 'team-bar__who' },
      el('strong', {}, session.name), ' · ', ROLE_LABELS[session.role] || session.role),
    list,
    out,
  );
}
