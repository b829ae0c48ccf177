// What nginx adds in front of the API and the pages, checked over HTTP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, OPEN } from './helpers.mjs';

test('pages carry a CSP, security headers, a request id and revalidating cache headers', async () => {
  const r = await fetch(`${BASE}/`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-security-policy'), /default-src 'self'; script-src 'self'/);
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(r.headers.get('x-frame-options'), 'DENY');
  assert.match(r.headers.get('x-request-id'), /^[0-9a-f]{32}$/);
  assert.equal(r.headers.get('cache-control'), 'no-cache');
  const css = await fetch(`${BASE}/css/site.css`, { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(css.headers.get('content-encoding'), 'gzip');
  assert.match(css.headers.get('cache-control'), /max-age=300/);
});

test('the viewer results are micro-cached and the statistics are not', async () => {
  const path = `${BASE}/api/paredoes/${OPEN}/results`;
  const statuses = [];
  for (let i = 0; i < 3; i++) statuses.push((await fetch(path)).headers.get('x-cache-status'));
  assert.ok(statuses.includes('HIT'), `a repeated results request is served by nginx (${statuses})`);
  const stats = await fetch(`${BASE}/api/paredoes/${OPEN}/stats`);
  assert.equal(stats.headers.get('x-cache-status'), null);
  assert.equal(stats.headers.get('cache-control'), 'no-store');
});

test('the request id nginx logs is the one the API saw', async () => {
  const r = await fetch(`${BASE}/api/paredoes/${OPEN}`);
  const ids = r.headers.get('x-request-id');
  assert.match(ids, /^[0-9a-f]{32}$/, 'exactly one id, not two joined');
});

test('a body over the limit is refused by nginx with a JSON error', async () => {
  const r = await fetch(`${BASE}/api/paredoes/${OPEN}/votes`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ participant_id: 'ana', captcha: 'x'.repeat(20000) }),
  });
  assert.equal(r.status, 413);
  assert.deepEqual(await r.json(), { error: 'body_too_large', message: 'the body is too large' });
});

test('stub_status answers for the exporter', async () => {
  const r = await fetch(`${BASE}/nginx_status`);
  assert.equal(r.status, 200);
  assert.match(await r.text(), /Active connections: \d+/);
});

test('Swagger UI and the spec are reachable through nginx', async () => {
  const ui = await fetch(`${BASE}/swagger/`);
  assert.equal(ui.status, 200);
  const spec = await (await fetch(`${BASE}/api-docs/openapi.json`)).json();
  assert.ok(spec.paths['/api/paredoes/{paredao_id}/votes']);
});
