// Shared by the browser tests: the stack's address, Chromium, API reads, pt-BR number parsing.
import { chromium } from 'playwright-core';
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export const BASE = process.env.PAREDAO_E2E_URL;
if (!BASE) {
  throw new Error('PAREDAO_E2E_URL is not set: run the browser tests with ./run.sh test, which starts the stack behind nginx');
}
export const ARTIFACTS = process.env.PAREDAO_E2E_ARTIFACTS ?? 'test-artifacts';
mkdirSync(ARTIFACTS, { recursive: true });

export const OPEN = 'paredao-e2e';
export const CLOSED = 'closed-paredao';
export const SCHEDULED = 'scheduled-paredao';

export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
export const DESKTOP = { viewport: { width: 1366, height: 900 } };

export function launch() {
  // Debian's Chromium; the flags keep it from reaching for the (closed) network at start-up.
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** A page that records console errors, uncaught exceptions and CSP violations. */
export async function openPage(browser, device) {
  const context = await browser.newContext({ ...device, locale: 'pt-BR', timezoneId: 'America/Sao_Paulo' });
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (m) => { if (m.type() === 'error') page.problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => page.problems.push(`exception: ${e.message}`));
  return page;
}

export async function screenshot(page, name) {
  // Entrance animations run to their end first: a card caught mid-fade shows the header through it.
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true, animations: 'disabled' });
}

/** The stack's SRE bearer token (run.sh passes it): the tests' own reads of team endpoints. */
export const ADMIN_TOKEN = process.env.PAREDAO_E2E_ADMIN_TOKEN ?? '';
const teamHeaders = () => (ADMIN_TOKEN ? { authorization: `Bearer ${ADMIN_TOKEN}` } : {});

export async function apiJson(path) {
  const r = await fetch(BASE + path, { headers: teamHeaders() });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

export const stats = (id) => apiJson(`/api/paredoes/${id}/stats`);

/** Polls `check` until it returns a value other than undefined/false, or fails after `ms`. */
export async function eventually(what, check, ms = 20000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}${last ? ` (last error: ${last.message})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** "52,31%" → 52.31 ; "123.839" → 123839 */
export function ptNumber(text) {
  return Number(text.replace(/[^\d,-]/g, '').replace(',', '.'));
}

/**
 * Solves an ALTCHA v1 challenge as the widget does: the number n with sha256(salt + n) = challenge.
 * `took` is in milliseconds with one decimal, as the widget reports it (4707.5); here it always
 * has a fraction, so an API that only takes whole numbers fails every run, not nine in ten.
 */
export function solve(c) {
  const started = performance.now();
  for (let n = 0; n <= c.maxnumber; n += 1) {
    if (createHash('sha256').update(c.salt + n).digest('hex') === c.challenge) {
      const took = Math.floor((performance.now() - started) * 10) / 10 + 0.5;
      return { algorithm: c.algorithm, challenge: c.challenge, number: n, salt: c.salt, signature: c.signature, took };
    }
  }
  throw new Error(`no solution up to maxnumber ${c.maxnumber}`);
}

export const encode = (payload) => Buffer.from(JSON.stringify(payload)).toString('base64');

/** A fresh challenge of `paredao`, solved and encoded as the widget puts it in a vote. */
export async function solvedCaptcha(paredao) {
  const c = await apiJson(`/api/paredoes/${paredao}/challenge`);
  return encode(solve(c));
}

/** The production team's test accounts (the e2e stack only), made through the API on first use. */
export const TEAM = {
  producer: { name: 'e2e-producer', password: 'e2e producer password', role: 'producer' },
  admin: { name: 'e2e-admin', password: 'e2e admin password', role: 'admin' },
};

/** Makes `who` (one of TEAM) with the bearer token; an account already there is fine. */
export async function ensureAccount(who) {
  const r = await fetch(`${BASE}/api/admin/accounts`, {
    method: 'POST',
    headers: { ...teamHeaders(), 'content-type': 'application/json' },
    body: JSON.stringify(who),
  });
  if (r.status !== 201 && r.status !== 409) throw new Error(`creating ${who.name}: HTTP ${r.status} ${await r.text()}`);
}

/**
 * Signs `page` in as `who` through the login page, as a person does, and waits until the
 * browser is back on `volta` (default the panel).
 */
export async function signIn(page, who = TEAM.producer, volta = '/painel.html') {
  await ensureAccount(who);
  await page.goto(`${BASE}/entrar.html?volta=${encodeURIComponent(volta)}`);
  await page.getByLabel('Usuário').fill(who.name);
  await page.getByLabel('Senha').fill(who.password);
  await page.getByRole('button', { name: 'Entrar' }).click();
  await page.waitForURL((url) => url.pathname === volta.split('?')[0]);
}
