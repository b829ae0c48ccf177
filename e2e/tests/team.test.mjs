// The production team's login, session and pages: nginx keeps the team pages behind a session,
// the login page signs in and goes back (only to a path of this site), the team bar signs out,
// and the audit page lists what was done.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, DESKTOP, PHONE, TEAM, ensureAccount, launch, openPage, screenshot, signIn } from './helpers.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const TEAM_PAGES = ['/painel.html', '/admin.html', '/historico.html', '/auditoria.html'];

async function login(who) {
  await ensureAccount(who);
  const r = await fetch(`${BASE}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: who.name, password: who.password }),
  });
  assert.equal(r.status, 200);
  return { cookie: r.headers.get('set-cookie').split(';')[0], session: await r.json() };
}

test('without a session nginx sends the team pages to the login page', async () => {
  for (const path of TEAM_PAGES) {
    const r = await fetch(`${BASE}${path}?p=x`, { redirect: 'manual' });
    assert.equal(r.status, 302, path);
    assert.equal(r.headers.get('location'), `/entrar.html?volta=${path}?p=x`, path);
    assert.equal(r.headers.get('cache-control'), 'no-store', path);
  }
  // The viewers' pages and the login page stay public.
  for (const path of ['/', '/resultado.html', '/entrar.html']) {
    assert.equal((await fetch(`${BASE}${path}`, { redirect: 'manual' })).status, 200, path);
  }
});

test('with a session cookie nginx serves the team pages, privately', async () => {
  const { cookie } = await login(TEAM.producer);
  const r = await fetch(`${BASE}/painel.html`, { headers: { cookie }, redirect: 'manual' });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('cache-control'), 'no-store');
  assert.match(await r.text(), /id="team-bar"/);
  const forged = await fetch(`${BASE}/painel.html`, { headers: { cookie: 'paredao_session=made-up' }, redirect: 'manual' });
  assert.equal(forged.status, 302);
});

test('the login cookie is HttpOnly and SameSite=Strict, and a change needs the CSRF token', async () => {
  await ensureAccount(TEAM.admin);
  const r = await fetch(`${BASE}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: TEAM.admin.name, password: TEAM.admin.password }),
  });
  assert.equal(r.status, 200);
  const setCookie = r.headers.get('set-cookie');
  assert.match(setCookie, /HttpOnly/);
  assert.match(setCookie, /SameSite=Strict/);
  const cookie = setCookie.split(';')[0];
  const session = await r.json();
  const put = (headers) => fetch(`${BASE}/api/admin/fault`, {
    method: 'PUT',
    headers: { cookie, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ vote_error_ratio: 0 }),
  });
  const refused = await put({});
  assert.equal(refused.status, 403);
  assert.equal((await refused.json()).error, 'csrf_failed');
  assert.equal((await put({ 'x-csrf-token': session.csrf_token })).status, 200);
});

test('a wrong password is said on the login page, in Portuguese', async () => {
  await ensureAccount(TEAM.producer);
  const page = await openPage(browser, PHONE);
  await page.goto(`${BASE}/entrar.html`);
  await page.getByLabel('Usuário').fill(TEAM.producer.name);
  await page.getByLabel('Senha').fill('not the password');
  await page.getByRole('button', { name: 'Entrar' }).click();
  await page.locator('#login-error:not([hidden])').waitFor();
  assert.equal(await page.locator('#login-error').textContent(), 'Usuário ou senha incorretos.');
  await screenshot(page, 'entrar-erro-phone');
  await page.context().close();
});

test('the login page goes back to the page that sent it, but never to another site', async () => {
  const page = await openPage(browser, DESKTOP);
  await page.goto(`${BASE}/auditoria.html`);
  await page.waitForURL(/\/entrar\.html\?volta=/);
  await screenshot(page, 'entrar-desktop');
  await page.getByLabel('Usuário').fill(TEAM.producer.name);
  await page.getByLabel('Senha').fill(TEAM.producer.password);
  await page.getByRole('button', { name: 'Entrar' }).click();
  await page.waitForURL((url) => url.pathname === '/auditoria.html');
  // The audit lists this very login, and the team bar who is signed in.
  await page.locator('#audit tbody tr').first().waitFor();
  assert.match(await page.locator('#audit tbody').textContent(), /auth\.login/);
  assert.match(await page.locator('#team-bar').textContent(), new RegExp(TEAM.producer.name));
  assert.equal(await page.locator('#team-bar a[href="/admin.html"]').count(), 0, 'a producer has no admin link');
  await screenshot(page, 'auditoria-desktop');

  for (const volta of ['https://example.com/', '//example.com/', '/\\example.com/']) {
    await page.goto(`${BASE}/entrar.html?volta=${encodeURIComponent(volta)}`);
    await page.getByLabel('Usuário').fill(TEAM.producer.name);
    await page.getByLabel('Senha').fill(TEAM.producer.password);
    await page.getByRole('button', { name: 'Entrar' }).click();
    await page.waitForURL((url) => url.origin === BASE && url.pathname === '/painel.html');
  }
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('"Sair" ends the session: the team pages send the browser to log in again', async () => {
  const page = await openPage(browser, DESKTOP);
  await signIn(page, TEAM.admin);
  assert.equal(await page.locator('#team-bar a[href="/admin.html"]').count(), 1, 'an admin has the admin link');
  await Promise.all([page.waitForURL(/\/entrar\.html/), page.getByRole('button', { name: 'Sair' }).click()]);
  await page.goto(`${BASE}/painel.html`);
  await page.waitForURL(/\/entrar\.html\?volta=%2Fpainel\.html|\/entrar\.html\?volta=\/painel\.html/);
  await page.context().close();
});
