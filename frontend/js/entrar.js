// The production team's login. On success the browser goes back to the page that sent it here
// (`?volta=`), but only to a path of this site: a link to /entrar.html?volta=https://elsewhere
// must not turn our login into a way of sending people to another site.

const DEFAULT_PAGE = '/painel.html';

const form = document.getElementById('login-form');
const nameInput = document.getElementById('name');
const passwordInput = document.getElementById('password');
const button = document.getElementById('login-button');
const errorBox = document.getElementById('login-error');

/** `volta` when it is a path on this site, else the panel. */
export function destination(search = window.location.search) {
  const volta = new URLSearchParams(search).get('volta');
  // A path: one slash first, not two ("//host" is another site), no backslash (read as a slash).
  if (!volta || !volta.startsWith('/') || volta.startsWith('//') || volta.includes('\\')) return DEFAULT_PAGE;
  try {
    const url = new URL(volta, window.location.origin);
    if (url.origin !== window.location.origin) return DEFAULT_PAGE;
    if (url.pathname === '/entrar.html') return DEFAULT_PAGE;
    return url.pathname + url.search + url.hash;
  } catch {
    return DEFAULT_PAGE;
  }
}

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
  errorBox.focus();
}

function messageFor(status, body, retryAfter) {
  const code = body && body.error;
  if (code === 'invalid_credentials') return 'Usuário ou senha incorretos.';
  if (code === 'login_rate_limited' || status === 429) {
    const wait = Number(retryAfter);
    const minutes = Number.isFinite(wait) && wait > 0 ? Math.ceil(wait / 60) : null;
    return minutes
      ? `Muitas tentativas. Aguarde ${minutes === 1 ? '1 minuto' : `${minutes} minutos`} e tente de novo.`
      : 'Muitas tentativas. Aguarde alguns minutos e tente de novo.';
  }
  if (status === 400 || status === 422) return 'Preencha o usuário e a senha.';
  return 'Não foi possível entrar agora. Tente novamente em instantes.';
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  errorBox.hidden = true;
  const name = nameInput.value.trim().toLowerCase();
  const password = passwordInput.value;
  if (!name || !password) {
    showError('Preencha o usuário e a senha.');
    (name ? passwordInput : nameInput).focus();
    return;
  }
  button.disabled = true;
  button.textContent = 'Entrando…';
  try {
    let response;
    try {
      response = await fetch('/api/auth/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ name, password }),
        credentials: 'same-origin',
        cache: 'no-store',
      });
    } catch {
      showError('Sem conexão com o servidor. Verifique sua internet e tente novamente.');
      return;
    }
    if (response.ok) {
      window.location.assign(destination());
      return;
    }
    let body;
    try {
      body = await response.json();
    } catch {
      body = undefined;
    }
    passwordInput.value = '';
    showError(messageFor(response.status, body, response.headers.get('retry-after')));
  } finally {
    button.disabled = false;
    button.textContent = 'Entrar';
  }
});

nameInput.focus();
