// The vote page under a surge: a vote refused as `overloaded` (nginx's or a replica's surge
// guard, which refuse before reading the vote, so its captcha is not spent) is resent by the page
// itself with the same captcha, after Retry-After and a bounded number of times.
// The real stack cannot be made to refuse on cue here; the refusals are injected at the browser's
// network layer, and every vote that gets through goes to the real API.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, OPEN, PHONE, launch, openPage, screenshot, stats, eventually } from './helpers.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

// The widget solves as soon as the page loads; give a slow machine room for a hard challenge.
const SOLVE_MS = 60000;

const OVERLOADED = {
  status: 503,
  headers: { 'retry-after': '1', 'content-type': 'application/json' },
  body: JSON.stringify({
    error: 'overloaded',
    message: 'the vote is busy right now: this request was not read, nothing was counted and its captcha was not used; try again in a moment',
  }),
};

const votesOf = (s, id) => s.participants.find((p) => p.id === id).votes;

/**
 * Answers the vote POSTs with `answer(n)` (n counts from 1): a response to fulfill, or null to let
 * the vote through to the real API. Returns what was sent, and when it reached the network.
 */
async function interceptVotes(page, answer) {
  const posts = [];
  await page.route('**/votes', async (route) => {
    const request = route.request();
    if (request.method() !== 'POST') return route.continue();
    posts.push({ at: Date.now(), body: request.postDataJSON() });
    const reply = answer(posts.length);
    return reply ? route.fulfill(reply) : route.continue();
  });
  return posts;
}

async function openVotePage(participant) {
  const page = await openPage(browser, PHONE);
  const challenges = { count: 0 };
  page.on('request', (r) => { if (new URL(r.url()).pathname.endsWith('/challenge')) challenges.count += 1; });
  await page.goto(`${BASE}/`);
  await page.locator('#choices:not([aria-busy])').waitFor();
  await page.locator(`label[for="p-${participant}"]`).click();
  await page.waitForFunction(
    () => document.querySelector('#captcha-widget altcha-widget')?.getState?.() === 'verified',
    null, { timeout: SOLVE_MS });
  await assert.doesNotReject(page.locator('#vote-button:enabled').waitFor());
  return { page, challenges };
}

/** The status line and the button as they are at one instant. */
function voteUi(page) {
  return page.evaluate(() => {
    const status = document.getElementById('status');
    const button = document.getElementById('vote-button');
    return {
      text: status.textContent.trim(),
      error: status.classList.contains('is-error') || !!status.querySelector('[role="alert"]'),
      buttonDisabled: button.disabled,
      buttonLabel: button.textContent.trim(),
    };
  });
}

function gaps(posts) {
  return posts.slice(1).map((p, i) => p.at - posts[i].at);
}

// Chromium logs each refusal chosen above as a failed resource; nothing else may be logged.
const unexpectedProblems = (page) => page.problems.filter((p) => !/Failed to load resource: .* 503/.test(p));

test('a vote refused as overloaded is retried after Retry-After with the same captcha, and counted', async () => {
  const start = await stats(OPEN);
  const { page, challenges } = await openVotePage('bruno');
  const posts = await interceptVotes(page, (n) => (n === 1 ? OVERLOADED : null));

  const accepted = page.waitForURL(/resultado\.html/, { timeout: 20000 });
  await page.locator('#vote-button').click();

  // Told politely while it waits, with the button still sending: no second tap meanwhile.
  const busy = await eventually('the busy message', async () => {
    const ui = await voteUi(page);
    return /Muita gente votando agora/.test(ui.text) && ui;
  });
  assert.match(busy.text, /^Muita gente votando agora\. Tentando de novo em [12] s… \(tentativa 1 de 3\)$/);
  assert.equal(busy.error, false, 'a retry in progress is not an error');
  assert.equal(busy.buttonDisabled, true, 'the button stays disabled while retrying');
  assert.equal(busy.buttonLabel, 'Enviando…');
  assert.equal(await page.locator('#status [role="alert"]').count(), 0);
  await screenshot(page, 'index-retrying-phone');

  await assert.doesNotReject(accepted, 'the retried vote is accepted');
  assert.equal(new URL(page.url()).searchParams.get('voto'), 'bruno');
  assert.equal(posts.length, 2, 'one refusal, one retry');
  assert.equal(posts[1].body.captcha, posts[0].body.captcha, 'the retry carries the same captcha');
  assert.equal(posts[1].body.participant_id, 'bruno');
  const [gap] = gaps(posts);
  // Retry-After: 1, plus up to a second of jitter (and some slack for a slow machine).
  assert.ok(gap >= 1000, `the retry waited Retry-After (1 s): ${gap} ms`);
  assert.ok(gap < 4000, `the retry did not wait much longer than Retry-After plus jitter: ${gap} ms`);
  assert.equal(challenges.count, 1, 'no fresh challenge was solved: the payload was not spent');

  await eventually('the vote to be counted', async () => votesOf(await stats(OPEN), 'bruno') === votesOf(start, 'bruno') + 1);
  assert.deepEqual(unexpectedProblems(page), []);
  await page.context().close();
});

test('a vote refused as overloaded every time is retried 3 times, then told, and one tap sends it again', async () => {
  const start = await stats(OPEN);
  const { page, challenges } = await openVotePage('carla');
  let refusing = true;
  const posts = await interceptVotes(page, () => (refusing ? OVERLOADED : null));

  await page.locator('#vote-button').click();
  const failed = await eventually('the overloaded error', async () => {
    const ui = await voteUi(page);
    return ui.error && ui;
  });
  assert.equal(failed.text, 'A votação está congestionada agora. Nada foi contado — tente novamente em instantes.');
  assert.equal(posts.length, 4, 'the first try and 3 retries, no more');
  for (const gap of gaps(posts)) assert.ok(gap >= 1000, `every retry waited Retry-After: ${gaps(posts)} ms`);
  assert.ok(posts.every((p) => p.body.captcha === posts[0].body.captcha), 'every retry carries the same captcha');
  assert.match(page.url(), /\/(index\.html)?(\?.*)?$/, 'still on the vote page');
  assert.ok(await page.locator('#p-carla').isChecked(), 'the choice is kept');
  // It stays quiet after giving up.
  await new Promise((r) => setTimeout(r, 2500));
  assert.equal(posts.length, 4, 'nothing is sent after the last retry');
  await screenshot(page, 'index-overloaded-phone');

  // The payload was never spent: the button is ready at once, with no new challenge to solve.
  await assert.doesNotReject(page.locator('#vote-button:enabled').waitFor({ timeout: 2000 }));
  assert.equal(challenges.count, 1, 'the captcha is kept');
  refusing = false;
  await Promise.all([page.waitForURL(/resultado\.html/), page.locator('#vote-button').click()]);
  assert.equal(posts.length, 5);
  assert.equal(posts[4].body.captcha, posts[0].body.captcha, 'the same captcha is accepted in the end');
  await eventually('the vote to be counted', async () => votesOf(await stats(OPEN), 'carla') === votesOf(start, 'carla') + 1);
  assert.deepEqual(unexpectedProblems(page), []);
  await page.context().close();
});

test('a vote answered 503 vote_not_durable is resent with the same captcha and counted once', async () => {
  const start = await stats(OPEN);
  const { page, challenges } = await openVotePage('carla');
  // The first copy never reaches the API here; the API's promise is that even when it did, the
  // resend with the same captcha is accepted and the store counts the challenge once.
  const posts = await interceptVotes(page, (n) => (n === 1 ? {
    status: 503,
    headers: { 'retry-after': '1', 'content-type': 'application/json' },
    body: JSON.stringify({ error: 'vote_not_durable', message: 'the vote could not be made durable; try again' }),
  } : null));
  await Promise.all([page.waitForURL(/resultado\.html/, { timeout: 15000 }), page.locator('#vote-button').click()]);
  assert.equal(posts.length, 2);
  assert.equal(posts[1].body.captcha, posts[0].body.captcha, 'the same captcha is resent');
  assert.equal(challenges.count, 1, 'no new challenge was solved');
  await eventually('the vote to be counted', async () => votesOf(await stats(OPEN), 'carla') === votesOf(start, 'carla') + 1);
  assert.deepEqual(unexpectedProblems(page), []);
  await page.context().close();
});
