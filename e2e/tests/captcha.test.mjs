// The anti-robot check on the vote page: the ALTCHA widget solves the API's proof-of-work
// challenge in the browser, under the pages' strict CSP, and the API refuses votes whose payload
// is missing, malformed, forged, meant for another paredão or replayed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { BASE, OPEN, CLOSED, PHONE, launch, openPage, screenshot, eventually, solve, encode } from './helpers.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

// The widget solves as soon as the page loads; give a slow machine room for a hard challenge.
const SOLVE_MS = 60000;

const challengePath = (id) => `/api/paredoes/${id}/challenge`;
const votesPath = (id) => `/api/paredoes/${id}/votes`;

function widgetState(page) {
  return page.evaluate(() => document.querySelector('#captcha-widget altcha-widget')?.getState?.() ?? null);
}

async function waitUntilVerified(page) {
  await page.waitForFunction(
    () => document.querySelector('#captcha-widget altcha-widget')?.getState?.() === 'verified',
    null, { timeout: SOLVE_MS });
}

/** Counts the challenges the page fetches. */
function countChallenges(page) {
  const seen = { count: 0 };
  page.on('request', (r) => { if (new URL(r.url()).pathname.endsWith('/challenge')) seen.count += 1; });
  return seen;
}

function assertChallengeShape(c, paredaoId) {
  assert.equal(c.algorithm, 'SHA-256');
  assert.match(c.challenge, /^[0-9a-f]{64}$/);
  assert.ok(Number.isInteger(c.maxnumber) && c.maxnumber > 0, `maxnumber ${c.maxnumber}`);
  assert.match(c.signature, /^[0-9a-f]{64}$/);
  // The signature covers the salt, and the salt binds the challenge to its paredão and its expiry.
  assert.ok(c.salt.includes(paredaoId), `the salt names the paredão: ${c.salt}`);
  const expires = Number(new URLSearchParams(c.salt.split('?')[1] ?? '').get('expires'));
  assert.ok(expires > Date.now() / 1000, 'the challenge has not expired yet');
}

async function fetchChallenge(paredaoId) {
  const r = await fetch(BASE + challengePath(paredaoId), { headers: { accept: 'application/json' } });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  const c = await r.json();
  assertChallengeShape(c, paredaoId);
  return c;
}


async function postVote(paredaoId, body) {
  const r = await fetch(BASE + votesPath(paredaoId), {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: r.status, type: r.headers.get('content-type'), json, text };
}

function assertRefused(answer, status, code) {
  assert.equal(answer.status, status, `${code}: ${answer.text}`);
  assert.match(answer.type ?? '', /^application\/json/);
  assert.equal(answer.json.error, code);
  assert.equal(typeof answer.json.message, 'string');
}

test('a viewer votes after the widget has solved the challenge, twice in a row', async () => {
  const page = await openPage(browser, PHONE);
  const challenges = [];
  page.on('response', async (r) => {
    if (new URL(r.url()).pathname === challengePath(OPEN) && r.ok()) challenges.push(await r.json());
  });
  await page.goto(`${BASE}/`);
  await page.locator('#choices:not([aria-busy])').waitFor();
  assert.match(await page.locator('#captcha-step').textContent(), /seu navegador resolve um pequeno desafio/);
  await page.locator('#captcha-widget altcha-widget').waitFor({ state: 'attached' });
  assert.equal(await page.locator('#captcha-widget altcha-widget').getAttribute('challenge'), challengePath(OPEN));

  await waitUntilVerified(page);
  await eventually('the challenge to be read', async () => challenges.length > 0);
  assert.equal(challenges.length, 1, 'one challenge fetched on load');
  assertChallengeShape(challenges[0], OPEN);
  assert.match(await page.locator('#captcha-widget').textContent(), /Verificado/, 'the widget speaks Portuguese');
  assert.ok(await page.locator('#vote-button').isDisabled(), 'verified, but nobody chosen yet');

  await page.locator('label[for="p-ana"]').click();
  await assert.doesNotReject(page.locator('#vote-button:enabled').waitFor());
  await screenshot(page, 'index-captcha-phone');

  const sent = page.waitForRequest((r) => r.method() === 'POST' && new URL(r.url()).pathname === votesPath(OPEN));
  await Promise.all([page.waitForURL(/resultado\.html/), page.locator('#vote-button').click()]);
  const body = (await sent).postDataJSON();
  assert.equal(body.participant_id, 'ana');
  const payload = JSON.parse(Buffer.from(body.captcha, 'base64').toString());
  assert.deepEqual(Object.keys(payload).sort(), ['algorithm', 'challenge', 'number', 'salt', 'signature', 'took']);
  assert.equal(payload.challenge, challenges[0].challenge, 'the payload answers the challenge fetched');
  assert.equal(createHash('sha256').update(payload.salt + payload.number).digest('hex'), payload.challenge, 'the number solves it');
  assert.equal(new URL(page.url()).searchParams.get('voto'), 'ana');

  // "Votar novamente" comes back to the vote page, which solves a new challenge for the next vote.
  await page.locator('#vote-again').click();
  await page.waitForURL(/index\.html/);
  await page.locator('label[for="p-bruno"]').click();
  await assert.doesNotReject(page.locator('#vote-button:enabled').waitFor({ timeout: SOLVE_MS }));
  const again = page.waitForRequest((r) => r.method() === 'POST' && new URL(r.url()).pathname === votesPath(OPEN));
  await Promise.all([page.waitForURL(/resultado\.html/), page.locator('#vote-button').click()]);
  const second = JSON.parse(Buffer.from((await again).postDataJSON().captcha, 'base64').toString());
  assert.notEqual(second.challenge, payload.challenge, 'each vote carries its own solved challenge');
  assert.equal(new URL(page.url()).searchParams.get('voto'), 'bruno');

  assert.deepEqual(page.problems, [], 'no console errors and no CSP violations');
  await page.context().close();
});

test('a vote with a missing, malformed, forged, misplaced or replayed captcha is refused', async () => {
  assertRefused(await postVote(OPEN, { participant_id: 'ana' }), 400, 'captcha_missing');
  assertRefused(await postVote(OPEN, { participant_id: 'ana', captcha: 'not a payload' }), 400, 'captcha_malformed');
  assertRefused(await postVote(OPEN, { participant_id: 'ana', captcha: encode({ hello: 'world' }) }), 400, 'captcha_malformed');

  // A real solution whose signature was not made by the server.
  const solved = solve(await fetchChallenge(OPEN));
  const forged = { ...solved, signature: solved.signature.replace(/^./, (c) => (c === '0' ? '1' : '0')) };
  assertRefused(await postVote(OPEN, { participant_id: 'ana', captcha: encode(forged) }), 403, 'captcha_bad_signature');

  // A solution of another paredão's challenge (the API hands them out for any paredão it knows).
  const elsewhere = solve(await fetchChallenge(CLOSED));
  assertRefused(await postVote(OPEN, { participant_id: 'ana', captcha: encode(elsewhere) }), 403, 'captcha_wrong_paredao');

  // The same solution, untouched, counts once.
  const accepted = await postVote(OPEN, { participant_id: 'ana', captcha: encode(solved) });
  assert.equal(accepted.status, 202, accepted.text);
  assert.equal(accepted.json.status, 'accepted');
  assertChallengeShape(accepted.json.next_challenge, OPEN);
  // A replay is refused by whichever replica it reaches once the spend's news is there (a few
  // milliseconds after the 202). One that beats the news is accepted and not counted: the store
  // counts each challenge once.
  const replay = await eventually('the replay to be refused', async () => {
    const r = await postVote(OPEN, { participant_id: 'ana', captcha: encode(solved) });
    assert.ok(r.status === 202 || r.status === 403, `a replay is refused or harmlessly accepted: ${r.text}`);
    return r.status === 403 ? r : undefined;
  }, 5000);
  assertRefused(replay, 403, 'captcha_already_used');
});

// The real API cannot be made to let a challenge expire on cue (it lives for minutes); the page
// under test is the real one, only that one answer is chosen at the browser's network layer.
test('an expired captcha is told in Portuguese and a fresh challenge is solved for the next try', async () => {
  const page = await openPage(browser, PHONE);
  const challenges = countChallenges(page);
  await page.goto(`${BASE}/`);
  await page.locator('label[for="p-carla"]').click();
  await page.locator('#vote-button:enabled').waitFor({ timeout: SOLVE_MS });
  assert.equal(challenges.count, 1);

  await page.route(`**${votesPath('*')}`, (route) => route.fulfill({
    status: 403, contentType: 'application/json',
    body: JSON.stringify({ error: 'captcha_expired', message: 'the captcha has expired' }),
  }), { times: 1 });
  await page.locator('#vote-button').click();
  const status = page.locator('#status');
  await eventually('the expired message', async () => /A verificação expirou\. Ela foi refeita — tente votar de novo\./.test(await status.textContent()));
  assert.equal(await status.locator('[role="alert"]').count(), 1, 'told as an error');
  assert.match(page.url(), /\/(index\.html)?(\?.*)?$/, 'still on the vote page');
  assert.ok(await page.locator('#p-carla').isChecked(), 'the choice is kept');

  await eventually('a fresh challenge to be fetched', async () => challenges.count === 2);
  await waitUntilVerified(page);
  await assert.doesNotReject(page.locator('#vote-button:enabled').waitFor());
  assert.equal(await widgetState(page), 'verified');
  await Promise.all([page.waitForURL(/resultado\.html/), page.locator('#vote-button').click()]);

  // The one refusal chosen above is logged by Chromium as a failed resource; nothing else may be.
  const unexpected = page.problems.filter((p) => !/Failed to load resource: .* 403/.test(p));
  assert.deepEqual(unexpected, [], 'no other console errors and no CSP violations');
  await page.context().close();
});

test('only the widget files the page loads are served, with the pages\' CSP', async () => {
  for (const path of ['/vendor/altcha/external/altcha.min.js', '/vendor/altcha/external/altcha.css',
    '/vendor/altcha/i18n/pt-br.js', '/vendor/altcha/workers/sha.js']) {
    const r = await fetch(BASE + path);
    assert.equal(r.status, 200, path);
    assert.match(r.headers.get('content-type'), path.endsWith('.css') ? /^text\/css/ : /javascript/, path);
    assert.match(r.headers.get('content-security-policy'), /script-src 'self';.*style-src 'self';/, path);
    assert.match(r.headers.get('cache-control'), /max-age=300/, path);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff', path);
  }
  // The default build injects a <style> and runs its worker from a blob: URL; it is not served,
  // and neither is anything else of the npm install.
  for (const path of ['/vendor/altcha/main/altcha.js', '/vendor/altcha/external/altcha.js', '/vendor/altcha/',
    '/node_modules/altcha/dist/main/altcha.js', '/node_modules/altcha/package.json', '/package.json', '/package-lock.json']) {
    assert.equal((await fetch(BASE + path)).status, 404, path);
  }
});
