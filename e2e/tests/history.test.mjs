// The final results in the browser: the history lists the closed paredão with its frozen result,
// the digest shown is the SHA-256 of the per-hour CSV the page downloads, and the panel of a
// closed paredão shows the same final result. (Uses the team helpers of helpers.mjs: signIn,
// TEAM, and apiJson reading with the stack's bearer token.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  BASE, CLOSED, OPEN, ADMIN_TOKEN, DESKTOP, PHONE, TEAM,
  apiJson, eventually, launch, openPage, screenshot, signIn, solvedCaptcha, stats,
} from './helpers.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** The closed seed's frozen result: the consumer freezes it once it has drained. */
async function frozen() {
  return eventually('the closed paredão to be frozen', async () => {
    const r = await fetch(`${BASE}/api/paredoes/${CLOSED}/final`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    return r.status === 200 ? r.json() : false;
  }, 60000);
}

test('the history shows the final result whose digest is the SHA-256 of the CSV it downloads', async () => {
  const result = await frozen();
  assert.match(result.digest, /^[0-9a-f]{64}$/);

  // Without a browser: the export through nginx hashes to the digest, byte for byte.
  const r = await fetch(`${BASE}/api/paredoes/${CLOSED}/export?format=csv&granularity=hour`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'text/csv; charset=utf-8');
  assert.equal(r.headers.get('content-disposition'), `attachment; filename="paredao-${CLOSED}-hour.csv"`);
  assert.equal(sha256(Buffer.from(await r.arrayBuffer())), result.digest);

  const page = await openPage(browser, PHONE);
  await signIn(page, TEAM.producer, '/historico.html');
  const entry = page.locator(`#history [data-paredao="${CLOSED}"][data-status="final"]`);
  await assert.doesNotReject(entry.waitFor());
  assert.equal((await entry.locator('[data-role="digest"]').textContent()).trim(), result.digest);
  const history = await apiJson('/api/history');
  const listed = history.paredoes.find((p) => p.paredao_id === CLOSED);
  assert.equal(listed.status, 'final');
  assert.equal(listed.total_votes, result.total_votes, 'the history says what the final result says');
  await screenshot(page, 'historico-phone');

  // The page's own CSV link: its download hashes to the digest shown.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    entry.locator('a[data-format="csv"][data-granularity="hour"]').click(),
  ]);
  assert.equal(download.suggestedFilename(), `paredao-${CLOSED}-hour.csv`);
  const csv = await readFile(await download.path());
  assert.ok(csv.toString('utf8').startsWith('hour,participant,votes\n'));
  assert.equal(sha256(csv), result.digest, 'sha256sum of the downloaded CSV is the digest shown');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('the panel of a closed paredão shows the final result, its digest and the exports', async () => {
  const result = await frozen();
  const page = await openPage(browser, DESKTOP);
  await signIn(page, TEAM.producer, `/painel.html?p=${CLOSED}`);
  await assert.doesNotReject(page.locator('#final-result.is-final').waitFor());
  assert.equal(await page.locator('#final-heading').textContent(), 'Resultado final');
  assert.equal((await page.locator('#final-digest').textContent()).trim(), result.digest);
  const links = await page.$$eval('#final-exports a', (as) => as.map((a) => new URL(a.href).search));
  for (const want of ['?format=csv&granularity=hour', '?format=csv&granularity=minute',
    '?format=json&granularity=hour', '?format=json&granularity=minute']) {
    assert.ok(links.includes(want), `an export link ${want}: ${links}`);
  }
  await screenshot(page, 'painel-final-desktop');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('the panel of the open paredão charts the last hour minute by minute', async () => {
  const r = await fetch(`${BASE}/api/paredoes/${OPEN}/votes`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ participant_id: 'ana', captcha: await solvedCaptcha(OPEN) }),
  });
  assert.equal(r.status, 202);
  const s = await eventually('the vote in the per-minute statistics', async () => {
    const now = await stats(OPEN);
    return now.per_minute.some((m) => m.total > 0) && now;
  });
  assert.equal(s.final, null, 'an open paredão is not final');

  const page = await openPage(browser, PHONE);
  await signIn(page, TEAM.producer, `/painel.html?p=${OPEN}`);
  await assert.doesNotReject(page.locator('#minute-panel:not([hidden])').waitFor());
  assert.equal(await page.locator('#minute-chart g.chart__bar').count(), 60, 'one bar per minute of the last hour');
  assert.ok(await page.locator('#minute-chart rect[height]:not([height="0"])').count() > 0, 'the minute with the vote has a bar');
  assert.ok(await page.locator('#final-result').isHidden(), 'no final result while open');
  await screenshot(page, 'painel-minutes-phone');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});
