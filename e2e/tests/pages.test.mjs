// The viewer's and the production team's pages, in headless Chromium, against the real stack
// (nginx → API → RabbitMQ → consumer → MongoDB-protocol server). The tests run in order and share
// the e2e database: each one reads the counts it starts from.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE, OPEN, CLOSED, SCHEDULED, PHONE, DESKTOP,
  launch, openPage, screenshot, stats, apiJson, eventually, ptNumber, solvedCaptcha, signIn, TEAM,
} from './helpers.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const votesOf = (s, id) => s.participants.find((p) => p.id === id).votes;

async function shownPercentages(page) {
  return page.$$eval('#results [data-participant]', (items) => Object.fromEntries(
    items.map((li) => [li.dataset.participant, li.querySelector('[data-role="percentage"]').textContent])));
}

async function voteFor(page, participant) {
  await page.locator(`label[for="p-${participant}"]`).click();
  await assert.doesNotReject(page.locator('#vote-button:enabled').waitFor());
  await Promise.all([
    page.waitForURL(/resultado\.html/),
    page.locator('#vote-button').click(),
  ]);
}

test('a viewer votes on a phone and sees percentages that include the vote', async () => {
  const start = await stats(OPEN);
  const page = await openPage(browser, PHONE);
  await page.goto(`${BASE}/`);
  // The page fills itself from the API after load; it clears aria-busy when it has.
  await page.locator('#choices:not([aria-busy])').waitFor();
  assert.equal(await page.locator('#paredao-title').textContent(), start.title);
  assert.equal(await page.locator('input[name="participant"]').count(), 3);
  assert.ok(await page.locator('#vote-button').isDisabled(), 'nothing chosen yet, nothing to send');
  await screenshot(page, 'index-phone');

  await voteFor(page, 'ana');
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('voto'), 'ana');
  await assert.doesNotReject(page.locator('#confirmation').waitFor({ state: 'visible' }));
  assert.match(await page.locator('#confirmation').textContent(), /Ana Clara/);

  // The vote is counted, and the page (refreshing by itself) shows the API's percentages.
  await eventually('the vote to be counted', async () => votesOf(await stats(OPEN), 'ana') === votesOf(start, 'ana') + 1);
  const expected = await eventually('the page to show the counted vote', async () => {
    const results = await apiJson(`/api/paredoes/${OPEN}/results`);
    const want = Object.fromEntries(results.participants.map((p) => [p.id, p.percentage]));
    // Results are micro-cached for a second: wait until they include the vote too.
    if (!(want.ana > 0)) return false;
    const shown = await shownPercentages(page);
    return Object.entries(want).every(([id, pct]) => Math.abs(ptNumber(shown[id]) - pct) < 0.005) && want;
  });
  assert.ok(expected.ana > 0, 'ana has a share of the votes');
  assert.match((await shownPercentages(page)).ana, /^\d{1,3},\d{2}\s?%$/, 'two decimals, pt-BR');
  await screenshot(page, 'resultado-phone');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('voting again for another participant moves the numbers', async () => {
  const page = await openPage(browser, PHONE);
  await page.goto(`${BASE}/resultado.html?p=${OPEN}`);
  const shownBefore = ptNumber(await eventually('results to show', async () => (await shownPercentages(page)).bruno));
  const before = await stats(OPEN);
  await page.locator('#vote-again').click();
  await page.waitForURL(/index\.html/);
  await voteFor(page, 'bruno');
  await eventually('the bruno vote to be counted', async () => votesOf(await stats(OPEN), 'bruno') === votesOf(before, 'bruno') + 1);
  // The results are a snapshot (refreshed every 0.5 s) behind a 1 s micro-cache: compare the
  // page with the results as they are at each look, until the two agree.
  await eventually('the page to show bruno\'s new share', async () => {
    const now = await apiJson(`/api/paredoes/${OPEN}/results`);
    const brunoNow = now.participants.find((p) => p.id === 'bruno').percentage;
    const shown = ptNumber((await shownPercentages(page)).bruno);
    // A vote for bruno raises his share, unless he already had every vote.
    const moved = shown > shownBefore || shownBefore === 100;
    return moved && Math.abs(shown - brunoNow) < 0.005;
  });
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('the production panel shows the totals and votes per hour of the statistics API', async () => {
  const page = await openPage(browser, DESKTOP);
  await signIn(page);
  const s = await eventually('the panel to match the statistics', async () => {
    const s = await stats(OPEN);
    const total = await page.locator('#total-votes').textContent();
    return ptNumber(total) === s.total_votes && s;
  });
  assert.ok(s.total_votes >= 2);
  for (const p of s.participants) {
    const shown = await page.locator(`li[data-participant="${p.id}"] [data-role="votes"]`).textContent();
    assert.equal(ptNumber(shown), p.votes, `${p.id}'s votes`);
  }
  assert.equal(await page.locator('#hourly-table tr[data-hour]').count(), s.hourly.length);
  for (const h of s.hourly) {
    const row = page.locator(`#hourly-table tr[data-hour="${h.hour}"]`);
    assert.equal(ptNumber(await row.locator('[data-role="total"]').textContent()), h.total, `total of ${h.hour}`);
    for (const [id, n] of Object.entries(h.votes)) {
      assert.equal(ptNumber(await row.locator(`td[data-participant="${id}"]`).textContent()), n, `${id} in ${h.hour}`);
    }
  }
  assert.ok(await page.locator('#hourly-chart rect, #hourly-chart path').count() > 0, 'the chart draws the hours');
  assert.match(await page.locator('#updated-at').textContent(), /\d{2}:\d{2}:\d{2}/);
  await screenshot(page, 'painel-desktop');

  // It refreshes by itself: a vote cast elsewhere shows up without reloading.
  const r = await fetch(`${BASE}/api/paredoes/${OPEN}/votes`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ participant_id: 'carla', captcha: await solvedCaptcha(OPEN) }),
  });
  assert.equal(r.status, 202);
  await eventually('the panel to show the new vote', async () => ptNumber(await page.locator('#total-votes').textContent()) === s.total_votes + 1);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('a closed or not yet open paredão shows why no vote is possible', async () => {
  const page = await openPage(browser, PHONE);
  await page.goto(`${BASE}/index.html?p=${CLOSED}`);
  await assert.doesNotReject(page.locator('#closed-message').waitFor({ state: 'visible' }));
  assert.match(await page.locator('#closed-message').textContent(), /encerrad/i);
  assert.ok(await page.locator('#vote-button').isDisabled());
  for (const radio of await page.locator('input[name="participant"]').all()) {
    assert.ok(await radio.isDisabled());
  }
  await screenshot(page, 'index-closed-phone');

  await page.goto(`${BASE}/index.html?p=${SCHEDULED}`);
  await assert.doesNotReject(page.locator('#closed-message').waitFor({ state: 'visible' }));
  assert.match(await page.locator('#closed-message').textContent(), /abre|começ/i);
  assert.ok(await page.locator('#vote-button').isDisabled());
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

// Failures the real stack cannot be made to produce on cue here are injected at the browser's
// network layer: the page under test is the real one, only the answer is chosen.
test('an API failure, a rate limit and a lost connection are told in words, and the viewer can try again', async () => {
  const page = await openPage(browser, PHONE);
  await page.goto(`${BASE}/`);
  await page.locator('label[for="p-carla"]').click();

  // `tries`: a rate limit is refused before any work, and after a 503 `vote_not_durable` the API
  // promises a resend with the same captcha is counted at most once, so the page resends those by
  // itself (after Retry-After, 3 times at most) before telling; a 500 is not resent.
  const cases = [
    { what: '500', tries: 1, reply: (route) => route.fulfill({ status: 500, headers: { 'content-type': 'application/json' }, body: '{"error":"internal_error","message":"something went wrong on our side; try again"}' }), says: /não conseguimos|tente novamente/i },
    { what: '503', tries: 4, reply: (route) => route.fulfill({ status: 503, headers: { 'retry-after': '1', 'content-type': 'application/json' }, body: '{"error":"vote_not_durable","message":"the vote was not accepted"}' }), says: /não conseguimos|tente novamente/i },
    { what: '429 from nginx', tries: 4, reply: (route) => route.fulfill({ status: 429, headers: { 'retry-after': '2', 'content-type': 'text/html' }, body: '<html><body>429 Too Many Requests</body></html>' }), says: /muitos votos|aguarde/i },
    { what: 'no connection', tries: 1, reply: (route) => route.abort('connectionrefused'), says: /conex|servidor/i },
  ];
  for (const c of cases) {
    let tries = 0;
    await page.route('**/api/paredoes/*/votes', (route) => { tries += 1; return c.reply(route); });
    await page.locator('#vote-button').click();
    const status = page.locator('#status');
    const isError = () => status.evaluate((el) => el.classList.contains('is-error') || !!el.querySelector('.is-error, [role="alert"]'));
    // The message while the page retries says the same words, politely: wait for the error itself.
    await eventually(`the ${c.what} message`, async () => c.says.test(await status.textContent()) && isError());
    assert.equal(tries, c.tries, `${c.what}: votes sent`);
    assert.match(page.url(), /\/(index\.html)?(\?.*)?$/, 'still on the vote page');
    await assert.doesNotReject(page.locator('#vote-button:enabled').waitFor(), 'the viewer can try again');
    assert.ok(await page.locator('#p-carla').isChecked(), 'the choice is kept');
    await page.unroute('**/api/paredoes/*/votes');
  }
  await screenshot(page, 'index-error-phone');
  // And trying again, with the service answering, works.
  await Promise.all([page.waitForURL(/resultado\.html/), page.locator('#vote-button').click()]);
  await page.context().close();
});

test('the vote can be cast with the keyboard alone', async () => {
  const page = await openPage(browser, DESKTOP);
  await page.goto(`${BASE}/`);
  await page.locator('#p-ana').focus();
  await page.keyboard.press('Space');
  assert.ok(await page.locator('#p-ana').isChecked());
  await page.keyboard.press('ArrowDown');
  assert.ok(await page.locator('#p-bruno').isChecked(), 'arrow keys move the choice');
  const focusVisible = await page.locator('#p-bruno').evaluate((el) => {
    const label = document.querySelector(`label[for="${el.id}"]`);
    const s = getComputedStyle(label);
    return s.outlineStyle !== 'none' || s.boxShadow !== 'none';
  });
  assert.ok(focusVisible, 'the focused choice is visibly marked');
  await screenshot(page, 'index-desktop');
  // The button waits for the anti-robot check to be solved.
  await page.locator('#vote-button:enabled').waitFor();
  await page.keyboard.press('Tab');
  // Tab may pass through the captcha step before the button.
  for (let i = 0; i < 5 && !(await page.locator('#vote-button').evaluate((b) => b === document.activeElement)); i++) {
    await page.keyboard.press('Tab');
  }
  await Promise.all([page.waitForURL(/resultado\.html/), page.keyboard.press('Enter')]);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('screenshots of every page at phone and desktop sizes', async () => {
  for (const [size, device] of [['phone', PHONE], ['desktop', DESKTOP]]) {
    const page = await openPage(browser, device);
    await signIn(page);
    for (const [name, path] of [['resultado', `/resultado.html?p=${OPEN}&voto=ana`], ['painel', '/painel.html']]) {
      await page.goto(BASE + path);
      await page.waitForFunction(() => /\d/.test(document.querySelector('#updated-at')?.textContent ?? ''));
      await screenshot(page, `${name}-${size}`);
    }
    assert.deepEqual(page.problems, []);
    await page.context().close();
  }
});
