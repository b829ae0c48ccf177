// nginx in front of slow, malformed and greedy clients: every error nginx itself produces is the
// API's JSON shape with the right status, slow clients are cut off, and one address cannot hold
// more than its share of requests. Raw sockets where fetch would fix the request up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BASE, OPEN } from './helpers.mjs';

const RUN_DIR = process.env.PAREDAO_E2E_RUN_DIR;
const NEEDS_RUN_DIR = RUN_DIR ? false : 'PAREDAO_E2E_RUN_DIR is not set: run it with ./run.sh test';
const { hostname: HOST, port: PORT } = new URL(BASE);

// What proxy/nginx.conf promises for these (client_header_timeout, client_body_timeout).
const CLIENT_TIMEOUT_MS = 10000;
const VOTE_OUTCOME_UNKNOWN = 'the vote may or may not have been counted; sending it again with the same solved challenge is safe: it is counted at most once';

/** The answer to `raw` on a fresh connection, as nginx sent it, once nginx closes it. */
function exchange(raw, { port = PORT, localAddress, waitMs = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect({ host: HOST, port: Number(port), localAddress });
    const chunks = [];
    let error = null;
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', (e) => { error = e; });
    socket.on('close', () => resolve({ ...parse(Buffer.concat(chunks).toString('latin1')), error, ms: Date.now() - started }));
    socket.setTimeout(waitMs, () => { socket.destroy(); reject(new Error(`no close within ${waitMs} ms`)); });
    socket.write(raw);
  });
}

function parse(text) {
  if (!text) return { status: null, headers: {}, body: '' };
  const [head, ...rest] = text.split('\r\n\r\n');
  const [line, ...lines] = head.split('\r\n');
  const headers = Object.fromEntries(lines.map((l) => {
    const i = l.indexOf(':');
    return [l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim()];
  }));
  return { status: Number(line.split(' ')[1]), headers, body: rest.join('\r\n\r\n') };
}

function assertJsonError(r, status, code) {
  assert.equal(r.status, status, `status ${status} (got ${r.status}: ${r.body})`);
  assert.match(r.headers['content-type'] ?? '', /^application\/json/, 'a JSON content type');
  const body = JSON.parse(r.body);
  assert.deepEqual(Object.keys(body).sort(), ['error', 'message'], 'the API\'s error shape');
  assert.equal(body.error, code);
  assert.equal(typeof body.message, 'string');
  return body;
}

const get = (path, extra = '') => `GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\n${extra}Connection: close\r\n\r\n`;

test('a request line longer than nginx buffers is refused with 414 in JSON', async () => {
  const r = await exchange(get(`/api/paredoes/${'a'.repeat(5000)}`));
  assertJsonError(r, 414, 'uri_too_long');
});

test('a header longer than nginx buffers is refused with 431 in JSON', async () => {
  const r = await exchange(get(`/api/paredoes/${OPEN}`, `X-Padding: ${'a'.repeat(5000)}\r\n`));
  assertJsonError(r, 431, 'headers_too_large');
});

test('a malformed request is refused with 400 in JSON', async () => {
  assertJsonError(await exchange(`GET /api/paredoes/${OPEN} HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n`), 400, 'bad_request');
  // A TLS handshake sent to the plain-HTTP port.
  assertJsonError(await exchange(Buffer.concat([Buffer.from([0x16, 3, 1, 0, 0xa5, 1, 0, 0, 0xa1, 3, 3]), Buffer.alloc(40, 'x'), Buffer.from('\r\n\r\n')])), 400, 'bad_request');
});

test('a method nginx refuses is 405 in JSON, on the API and on the pages', async () => {
  assertJsonError(await exchange(`TRACE /api/paredoes/${OPEN} HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`), 405, 'method_not_allowed');
  for (const path of ['/', '/index.html', '/css/site.css']) {
    const r = await fetch(BASE + path, { method: 'POST', body: 'x' });
    assertJsonError({ status: r.status, headers: { 'content-type': r.headers.get('content-type') }, body: await r.text() }, 405, 'method_not_allowed');
  }
});

test('an API path nginx answers itself is 404 in JSON', async () => {
  for (const path of ['/api', '/api-docs/nothing-here']) {
    const r = await fetch(BASE + path);
    assertJsonError({ status: r.status, headers: { 'content-type': r.headers.get('content-type') }, body: await r.text() }, 404, 'not_found');
  }
});

test('a client that sends its headers too slowly is cut off within the timeout', async () => {
  const r = await exchange(`GET /api/paredoes/${OPEN} HTTP/1.1\r\nHost: ${HOST}\r\n`);
  // nginx closes (resets) a connection whose headers did not arrive: there is no request to answer.
  if (r.status !== null) assertJsonError(r, 408, 'request_timeout');
  assert.ok(r.ms < CLIENT_TIMEOUT_MS + 3000, `cut off after ${r.ms} ms`);
  assert.ok(r.ms >= CLIENT_TIMEOUT_MS - 1000, `not before the timeout (${r.ms} ms)`);
});

test('a vote whose body stops arriving is cut off within the timeout, never passed on', async () => {
  const r = await exchange(`POST /api/paredoes/${OPEN}/votes HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n{"participant_id":`);
  if (r.status !== null) assertJsonError(r, 408, 'request_timeout');
  assert.ok(r.ms < CLIENT_TIMEOUT_MS + 3000, `cut off after ${r.ms} ms`);
});

/** The bound nginx was rendered with (run.sh: PAREDAO_NGINX_REQUESTS_PER_ADDRESS). */
function perAddressBound() {
  const conf = readFileSync(join(RUN_DIR, 'nginx', 'nginx.conf'), 'utf8');
  const bounds = [...conf.matchAll(/^\s*limit_conn per_address (\d+);/gm)].map((m) => Number(m[1]));
  assert.ok(bounds.length > 0, 'nginx.conf bounds requests per address');
  return bounds[0];
}

/** A GET through nginx from `localAddress` (fetch cannot choose its source address). */
function getFrom(localAddress, path) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: HOST, port: PORT, path, localAddress, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('no answer in 5 s')));
  });
}

test('one address holding more requests than its bound is refused, and another address is not',
  { skip: NEEDS_RUN_DIR }, async (t) => {
    const bound = perAddressBound();
    const extra = 8;
    // Requests whose bodies trickle: each holds a slot from its headers until the body timeout.
    const held = [];
    const refused = [];
    try {
      await Promise.all(Array.from({ length: bound + extra }, () => new Promise((resolve, reject) => {
        const socket = net.connect({ host: HOST, port: Number(PORT), localAddress: '127.0.0.1' }, () => {
          socket.write(`POST /api/paredoes/${OPEN}/stats HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 64\r\n\r\n{`);
          resolve();
        });
        socket.on('data', (c) => refused.push(parse(c.toString('latin1'))));
        socket.on('error', () => {});
        socket.on('connect', () => held.push(socket));
        socket.once('error', reject);
      })));
      // nginx answers the refusals at once; the others wait for their bodies.
      await new Promise((r) => setTimeout(r, 1000));
      t.diagnostic(`${bound + extra} trickling requests from 127.0.0.1, bound ${bound}: ${refused.length} refused`);
      assert.ok(refused.length >= 1 && refused.length <= extra, `${refused.length} of ${bound + extra} refused`);
      for (const r of refused) {
        // On the API a refusal is the surge guard's: nothing was read, retry after Retry-After.
        assertJsonError(r, 503, 'overloaded');
        assert.equal(r.headers['retry-after'], '1');
      }
      const same = await getFrom('127.0.0.1', `/api/paredoes/${OPEN}`);
      assert.equal(same.status, 503, 'the flooding address gets no more');
      const page = await getFrom('127.0.0.1', '/css/site.css');
      assertJsonError(page, 429, 'rate_limited');
      const other = await getFrom('127.0.0.2', `/api/paredoes/${OPEN}`);
      assert.equal(other.status, 200, `another address is served (${other.body})`);
    } finally {
      for (const s of held) s.destroy();
    }
    // The slots are freed as soon as the connections go.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await getFrom('127.0.0.1', `/api/paredoes/${OPEN}`)).status, 200, 'the address is served again');
  });

/**
 * A second nginx from this stack's rendered nginx.conf (the real one: same template, same
 * values), on its own port and run directory, whose one replica is `upstream`'s port.
 */
function spareNginx(upstreamPort) {
  const dir = mkdtempSync(join(tmpdir(), 'paredao-nginx-'));
  for (const sub of ['pids', 'logs', 'nginx/tmp', 'nginx/cache']) mkdirSync(join(dir, sub), { recursive: true });
  const conf = readFileSync(join(RUN_DIR, 'nginx', 'nginx.conf'), 'utf8');
  const port = Number(PORT) + 1 + Math.floor(Math.random() * 500);
  const rendered = conf
    .split(RUN_DIR).join(dir)
    .replace(/server 127\.0\.0\.1:\d+ max_fails=/g, `server 127.0.0.1:${upstreamPort} max_fails=`)
    .replace(/listen 127\.0\.0\.1:\d+/, `listen 127.0.0.1:${port}`);
  const file = join(dir, 'nginx', 'nginx.conf');
  writeFileSync(file, rendered);
  const args = ['-e', join(dir, 'logs', 'nginx-error.log'), '-c', file, '-p', join(dir, 'nginx') + '/'];
  const started = spawnSync('nginx', args, { encoding: 'utf8' });
  assert.equal(started.status, 0, `the spare nginx starts: ${started.stderr}`);
  return {
    base: `http://127.0.0.1:${port}`,
    stop() {
      spawnSync('nginx', [...args, '-s', 'stop']);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A "replica" that takes connections and then resets them, or never answers. */
async function badReplica() {
  const sockets = new Set();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    if (server.mode === 'reset') s.once('data', () => s.resetAndDestroy());
  });
  server.mode = 'reset';
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: server.address().port,
    close() { for (const s of sockets) s.destroy(); server.close(); },
  };
}

async function jsonOf(r) {
  return { status: r.status, headers: { 'content-type': r.headers.get('content-type'), 'retry-after': r.headers.get('retry-after') }, body: await r.text() };
}

const vote = (base) => fetch(`${base}/api/paredoes/${OPEN}/votes`, {
  method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ participant_id: 'ana', captcha: 'x' }),
  signal: AbortSignal.timeout(20000),
});

test('when no replica answers, nginx says in JSON what a client may assume (502, 504)',
  { skip: NEEDS_RUN_DIR }, async (t) => {
    const replica = await badReplica();
    const nginx = spareNginx(replica.port);
    try {
      // Reset after the request reached it: a vote's fate is unknown, a read is simply retried.
      let r = await jsonOf(await vote(nginx.base));
      assert.equal(assertJsonError(r, 502, 'vote_outcome_unknown').message, VOTE_OUTCOME_UNKNOWN);
      assert.equal(r.headers['retry-after'], '1');
      r = await jsonOf(await fetch(`${nginx.base}/api/paredoes/${OPEN}`));
      assertJsonError(r, 502, 'bad_gateway');

      // No answer at all: 504 after proxy_read_timeout (2 s per try for a read, 10 s for a vote).
      replica.server.mode = 'hang';
      const [read, late] = await Promise.all([
        fetch(`${nginx.base}/api/paredoes/${OPEN}/stats`, { signal: AbortSignal.timeout(20000) }).then(jsonOf),
        vote(nginx.base).then(jsonOf),
      ]);
      assertJsonError(read, 504, 'gateway_timeout');
      assert.equal(assertJsonError(late, 504, 'vote_outcome_unknown').message, VOTE_OUTCOME_UNKNOWN);

      // Nothing listening: refused connections, then the replica is out of rotation.
      replica.close();
      r = await jsonOf(await fetch(`${nginx.base}/api/paredoes/${OPEN}`));
      assertJsonError(r, 502, 'bad_gateway');
      t.diagnostic('502 (reset, refused) and 504 (no answer) from a spare nginx of the same config');
    } finally {
      nginx.stop();
      replica.close();
    }
  });
