// What nginx adds in front of the API and the pages, checked over HTTP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ADMIN_TOKEN, BASE, OPEN } from './helpers.mjs';

// The stack's run directory and its replicas' ports, from run.sh (browser_tests).
const RUN_DIR = process.env.PAREDAO_E2E_RUN_DIR;
const API_PORTS = (process.env.PAREDAO_E2E_API_PORTS ?? '').split(/\s+/).filter(Boolean);

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
  const stats = await fetch(`${BASE}/api/paredoes/${OPEN}/stats`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(stats.status, 200);
  assert.equal(stats.headers.get('x-cache-status'), null);
  assert.equal(stats.headers.get('cache-control'), 'no-store');
});

test('the statistics, the audit and the accounts answer nobody without a session', async () => {
  for (const path of [`/api/paredoes/${OPEN}/stats`, '/api/admin/audit', '/api/admin/accounts']) {
    const r = await fetch(`${BASE}${path}`);
    assert.equal(r.status, 401, path);
    assert.equal((await r.json()).error, 'unauthorized', path);
  }
});

test('logins have a guard of their own, apart from the votes\' one', async () => {
  // A wrong password is the API's 401 (not a vote guard's refusal), in JSON.
  const r = await fetch(`${BASE}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'nobody-here', password: 'not a password at all' }),
  });
  assert.equal(r.status, 401);
  assert.equal((await r.json()).error, 'invalid_credentials');
});

test('a query string does not make a viewer miss the results micro-cache', async () => {
  // A page that adds a cache-buster must still be fed from the one copy per second.
  const path = `${BASE}/api/paredoes/${OPEN}/results`;
  await fetch(`${path}?bust=warm`);
  const statuses = [];
  for (let i = 0; i < 3; i++) {
    statuses.push((await fetch(`${path}?bust=${Date.now()}-${i}`)).headers.get('x-cache-status'));
  }
  assert.ok(statuses.includes('HIT'), `results with different query strings share the cache (${statuses})`);
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

/** Bytes appended to `file` since `offset`. */
async function readFrom(file, offset) {
  const handle = await open(file);
  try {
    const { size } = await handle.stat();
    if (size <= offset) return '';
    const buffer = Buffer.alloc(size - offset);
    await handle.read(buffer, 0, buffer.length, offset);
    return buffer.toString();
  } finally {
    await handle.close();
  }
}

async function fileSize(file) {
  const handle = await open(file);
  try { return (await handle.stat()).size; } finally { await handle.close(); }
}

/** api-2's pid, once it is sure to be the replica (a stale pid file must not get a signal). */
async function replicaPid(name) {
  const pid = Number((await readFile(join(RUN_DIR, 'pids', `${name}.pid`), 'utf8')).trim());
  assert.ok(Number.isInteger(pid) && pid > 0, `${name}'s pid file holds a pid`);
  const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
  assert.ok(cmdline.some((arg) => /\/api$/.test(arg)), `pid ${pid} is the API (${cmdline.join(' ')})`);
  return pid;
}

// A stopped replica is the worst case of a stuck one: the kernel still completes connects to it
// and queues the requests, and nothing answers. SIGSTOP makes one on cue.
test('a paused replica is passed over without failing a read, and is back in rotation soon after it resumes',
  { skip: RUN_DIR && API_PORTS.length >= 2 ? false : 'PAREDAO_E2E_RUN_DIR and PAREDAO_E2E_API_PORTS (two replicas) are not set: run it with ./run.sh test' },
  async (t) => {
    const pid = await replicaPid('api-2');
    const log = join(RUN_DIR, 'logs', 'api-2.log');
    const read = `${BASE}/api/paredoes/${OPEN}`;

    const answers = [];
    let resumedAt;
    process.kill(pid, 'SIGSTOP');
    try {
      // A few viewers reading at once, for 3 s: round robin sends some of them to the paused replica.
      const until = Date.now() + 3000;
      await Promise.all(Array.from({ length: 4 }, async () => {
        while (Date.now() < until) {
          const started = Date.now();
          let status;
          try {
            status = (await fetch(read, { signal: AbortSignal.timeout(10000) })).status;
          } catch (e) {
            status = e.name;
          }
          answers.push({ status, ms: Date.now() - started });
        }
      }));
    } finally {
      process.kill(pid, 'SIGCONT');
      resumedAt = Date.now();
    }
    const failed = answers.filter((a) => a.status !== 200);
    assert.deepEqual(failed, [], `every read answered 200 (${answers.length} reads)`);
    // nginx waits proxy_read_timeout (2 s) on the paused replica, then asks the other one.
    const slow = answers.filter((a) => a.ms >= 1500).length;
    assert.ok(slow > 0, `some reads reached the paused replica and moved on (${answers.map((a) => a.ms)} ms)`);
    t.diagnostic(`${answers.length} reads while paused, ${slow} moved on after a timeout, slowest ${Math.max(...answers.map((a) => a.ms))} ms`);

    // Back in rotation: a request through nginx with a path never used before shows up in
    // api-2's own log. (Requests that timed out during the pause reach it after SIGCONT too,
    // which is why the probes carry a token of their own.)
    const token = `probe-${randomBytes(6).toString('hex')}`;
    const offset = await fileSize(log);
    let probes = 0;
    const backAfter = await (async () => {
      while (Date.now() - resumedAt < 5000) {
        probes += 1;
        const r = await fetch(`${BASE}/api/paredoes/${token}-${probes}`, { signal: AbortSignal.timeout(5000) });
        assert.equal(r.status, 404, `probe ${probes} is answered by a replica`);
        await r.arrayBuffer();
        if ((await readFrom(log, offset)).includes(token)) return Date.now() - resumedAt;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      return null;
    })();
    assert.ok(backAfter !== null, `api-2 logged none of ${probes} probes within 5 s of resuming (its INFO request lines, in ${log})`);
    t.diagnostic(`api-2 answered a request through nginx ${backAfter} ms after resuming (probe ${probes})`);
    // max_fails=3 fail_timeout=1s: out for a second at most (nginx's default kept it out for 10 s).
    assert.ok(backAfter <= 3000, `api-2 back in rotation within 3 s of resuming: ${backAfter} ms`);
    // And whole again for the tests after this one.
    const ready = await fetch(`http://127.0.0.1:${API_PORTS[1]}/health/ready`, { signal: AbortSignal.timeout(5000) });
    assert.equal(ready.status, 200, 'api-2 is ready on its own port');
  });
