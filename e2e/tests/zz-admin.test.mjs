// The production team runs a paredão from the browser: an admin signs in at /entrar.html,
// creates a paredão with two participants and a photo, opens it, a viewer votes on the vote
// page, the admin closes it, and a vote after the close is refused with 410.
//
// At most one paredão is open at a time, and the e2e stack seeds `paredao-e2e` open until 2099:
// to open its own, this test first closes the seeded one, which cannot be reopened. So it must
// run after every test that votes on `paredao-e2e`: `node --test tests/` runs the files in name
// order, hence the `zz-` of this file's name.
//
// The admin account is TEAM.admin of helpers.mjs (made through the API with the stack's token).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import {
  BASE, OPEN, PHONE, DESKTOP, TEAM, launch, openPage, screenshot, apiJson, eventually, signIn, solvedCaptcha,
} from './helpers.mjs';

const ID = `e2e-admin-${Date.now().toString(36)}`;

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/** A small real PNG (solid colour), built by hand: no image library in the e2e suite. */
function png(width, height, [r, g, b]) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const byte of buf) c = crcTable[(c ^ byte) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, 'ascii');
    data.copy(out, 8);
    out.writeUInt32BE(crc(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // truecolour
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array.from({ length: width }, () => [r, g, b]).flat())]);
  const pixels = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(pixels)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** The admin page's row of paredão `id`. */
const rowOf = (page, id) => page.locator(`#paredao-list [data-paredao="${id}"]`);

async function voteFromScript(id, participant) {
  const captcha = await solvedCaptcha(id);
  return fetch(`${BASE}/api/paredoes/${id}/votes`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ participant_id: participant, captcha }),
  });
}

test('an admin runs a whole paredão from the browser and a late vote is refused with 410', async () => {
  const photo = join(tmpdir(), `${ID}-photo.png`);
  writeFileSync(photo, png(64, 48, [200, 40, 90]));

  const admin = await openPage(browser, DESKTOP);
  admin.on('dialog', (d) => d.accept());
  await signIn(admin, TEAM.admin, '/admin.html');
  await admin.locator('#paredao-list:not([aria-busy])').waitFor();
  await screenshot(admin, 'admin-desktop');

  // Room for ours: at most one paredão is open at a time.
  if (await rowOf(admin, OPEN).count()) {
    const seeded = await apiJson(`/api/paredoes/${OPEN}`);
    if (seeded.state === 'open') {
      await rowOf(admin, OPEN).getByRole('button').click();
      await admin.locator('#close-now:visible').click();
      await admin.locator('#selected-state.badge--closed').waitFor();
    }
  }

  // Create: title, two participants (one with a photo), a window ahead, results after the close.
  await admin.locator('#new-paredao').click();
  await admin.getByLabel('Título').fill(`Paredão ${ID}`);
  const names = admin.locator('#f-participants input[type="text"]');
  await names.nth(0).fill('Helena Prado');
  await names.nth(1).fill('Igor Souza');
  await admin.locator('#f-participants input[type="file"]').nth(0).setInputFiles(photo);
  await admin.getByLabel('O público vê o resultado').selectOption('after_close');
  // The default window (the next full hour, for two hours) is in the future: keep it.
  await admin.locator('#f-submit').click();
  await admin.locator('#selected-state.badge--scheduled').waitFor();
  const created = await eventually('the paredão to exist with its photo', async () => {
    const list = await admin.evaluate(async () => (await fetch('/api/admin/paredoes')).json());
    return list;
  }).then((list) => list.find((p) => p.title === `Paredão ${ID}`));
  assert.ok(created, 'the new paredão is listed');
  const id = created.id;
  assert.equal(created.state, 'scheduled');
  assert.equal(created.participants[0].id, 'helena-prado');
  assert.match(created.participants[0].photo_url, new RegExp(`^/fotos/${id}/helena-prado-[0-9a-f]+\\.jpg$`));
  // nginx serves the re-encoded photo.
  const served = await fetch(BASE + created.participants[0].photo_url);
  assert.equal(served.status, 200);
  assert.match(served.headers.get('content-type') ?? '', /image\/jpeg/);

  // Open now.
  await admin.locator('#open-now:visible').click();
  await admin.locator('#selected-state.badge--open').waitFor();
  await screenshot(admin, 'admin-open');

  // A viewer votes on the vote page, on a phone; the photo is on the card.
  const viewer = await openPage(browser, PHONE);
  await eventually('the vote page to show the new paredão', async () => {
    await viewer.goto(`${BASE}/index.html?p=${id}`);
    await viewer.locator('#choices:not([aria-busy])').waitFor();
    return (await viewer.locator('input[name="participant"]:enabled').count()) === 2;
  });
  assert.equal(await viewer.locator(`img[src="${created.participants[0].photo_url}"]`).count() > 0, true, 'the photo shows');
  await viewer.locator('label[for="p-igor-souza"]').click();
  await viewer.locator('#vote-button:enabled').waitFor();
  await Promise.all([viewer.waitForURL(/resultado\.html/), viewer.locator('#vote-button').click()]);
  // Results after the close only: the page says so and shows no percentages.
  await eventually('the results page to say the result comes at the end', async () =>
    /ao fim da votação/.test(await viewer.locator('#results-note').textContent()));

  // The admin sees the vote in the live totals, then closes.
  await eventually('the live total to count the vote', async () =>
    (await admin.locator('#live-total').textContent()).trim() === '1', 30000);
  await admin.locator('#close-now:visible').click();
  await admin.locator('#selected-state.badge--closed').waitFor();
  await admin.locator('#final:not([hidden])').waitFor();
  await screenshot(admin, 'admin-closed');

  // A vote after the close: 410 paredao_closed (from any replica, within a second).
  const late = await eventually('a late vote to be refused', async () => {
    const r = await voteFromScript(id, 'helena-prado');
    return r.status === 410 ? r.json() : false;
  }, 5000);
  assert.equal(late.error, 'paredao_closed');

  // The viewer's page now shows the final result.
  await viewer.reload();
  await eventually('the final result', async () =>
    /Resultado final/.test(await viewer.locator('#results-kind').textContent()));
  // And the admin sees the frozen result and its digest once the backlog drains.
  await eventually('the frozen final result and its digest', async () =>
    /^[0-9a-f]{64}$/.test((await admin.locator('#final-digest').textContent()).trim()), 60000);
  assert.deepEqual(admin.problems, []);
  assert.deepEqual(viewer.problems, []);

  // Leave an open paredão behind, as the seeded one was: the step after the browser tests
  // (scripts/smoke_load.py, for the dashboards) votes on the current one.
  const reopened = await admin.evaluate(async (after) => {
    const { apiSend } = await import('/js/session.js');
    const created = await apiSend('POST', '/api/admin/paredoes', {
      id: after,
      title: 'Paredão depois do teste',
      participants: [{ name: 'Ana Clara' }, { name: 'Bruno Reis' }],
      opens_at: new Date(Date.now() + 3600e3).toISOString(),
      closes_at: '2098-12-31T00:00:00Z',
    });
    if (created.status !== 201) return `create ${created.status}`;
    const opened = await apiSend('POST', `/api/admin/paredoes/${after}/open`);
    return opened.status;
  }, `${ID}-after`);
  assert.equal(reopened, 200);
});
