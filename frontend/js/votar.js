// The vote page: shows the paredão's participants as cards, sends one vote, and on 202 takes the
// viewer to the partial result. Every failure leaves the choice in place so voting again is one tap;
// a vote refused under load is resent by the page itself, a few times and as late as it is asked.

import { ApiError, getParedao, loadErrorMessage, paredaoIdFromLocation, postVote, voteErrorMessage } from './api.js';
import { createAvatar } from './avatar.js';
import { createCaptcha } from './captcha.js';
import { el } from './dom.js';
import { formatLongDateTime, parseInstant } from './format.js';

const requestedId = paredaoIdFromLocation();

const form = document.getElementById('vote-form');
const fieldset = document.getElementById('choices');
const grid = document.getElementById('participants');
const button = document.getElementById('vote-button');
const statusBox = document.getElementById('status');
const closedMessage = document.getElementById('closed-message');
const title = document.getElementById('paredao-title');
const livePill = document.getElementById('live-pill');
const hint = document.getElementById('choices-hint');
const captchaStep = document.getElementById('captcha-step');
const captchaContainer = document.getElementById('captcha-widget');

const OPEN_HINT = hint.textContent;
const CLOSED_HINT = 'Estes são os participantes deste paredão.';

const BUTTON_LABEL = 'Votar';
const SENDING_LABEL = 'Enviando…';
// setTimeout cannot wait longer than this; a paredão further away than ~24 days is re-read on reload.
const MAX_TIMER_MS = 2 ** 31 - 1;
// A vote refused under load is resent by the page itself, but a crowd of pages resending at once
// would be the next surge: at most this many times, each after the server's Retry-After...
const MAX_RETRIES = 3;
// ...plus up to this much at random, so the pages refused in one second come back spread out.
const RETRY_JITTER_MS = 1000;
// A longer Retry-After is told to the viewer rather than waited out with the button locked.
const MAX_RETRY_AFTER_S = 10;

let paredao = null;
let sending = false;
let boundaryTimer = 0;
// Mounted once the paredão is known and open: the challenge URL names it.
let captcha = null;
let captchaVerified = false;
// Bumped when a page restored from the back/forward cache drops the send it was frozen in: a
// retry timer that wakes up in a newer run must not resend, nor navigate away.
let voteRun = 0;

/** The anti-robot widget's payload for this vote (single use), or null while it is still solving. */
function readCaptchaToken() {
  return captcha ? captcha.payload : null;
}

function challengeUrl(paredaoId) {
  return `/api/paredoes/${encodeURIComponent(paredaoId)}/challenge`;
}

function showCaptcha() {
  if (captcha) {
    captcha.setChallengeUrl(challengeUrl(paredao.id));
    return;
  }
  captcha = createCaptcha(captchaContainer, {
    challengeUrl: challengeUrl(paredao.id),
    onChange(verified) {
      captchaVerified = verified;
      updateButton();
    },
    onLoadError() {
      // Said in the step itself: the status line is cleared whenever the choice changes.
      captchaContainer.replaceChildren(el('p', { className: 'captcha-step__error', role: 'alert' },
        'Não foi possível carregar a verificação anti-robô. Atualize a página para votar.'));
    },
    onNotRequired() {
      captchaStep.remove();
    },
  });
}

function setStatus(message, { error = false, action = null } = {}) {
  statusBox.classList.toggle('is-error', error);
  if (!message) {
    statusBox.replaceChildren();
    return;
  }
  // role=alert makes screen readers interrupt for errors; plain progress stays polite.
  const text = el('p', { className: 'status__message' }, message);
  if (error) text.setAttribute('role', 'alert');
  statusBox.replaceChildren(text);
  if (action) statusBox.append(action);
}

function selectedParticipantId() {
  const checked = form.querySelector('input[name="participant"]:checked');
  return checked ? checked.value : null;
}

function isOpen() {
  return paredao !== null && paredao.state === 'open';
}

function updateButton() {
  button.disabled = sending || !isOpen() || selectedParticipantId() === null || !captchaVerified;
}

function setSending(value) {
  sending = value;
  button.textContent = value ? SENDING_LABEL : BUTTON_LABEL;
  if (value) form.setAttribute('aria-busy', 'true');
  else form.removeAttribute('aria-busy');
  updateButton();
}

function choiceFor(participant) {
  const inputId = `p-${participant.id}`;
  return el('div', { className: 'choice' },
    el('input', {
      type: 'radio', name: 'participant', value: participant.id, id: inputId, className: 'choice__input visually-hidden',
    }),
    el('label', { htmlFor: inputId, className: 'choice__card' },
      createAvatar(participant, 'lg'),
      el('span', { className: 'choice__name' }, participant.name),
      // The tick is drawn by CSS from :checked; it only repeats what the radio already tells.
      el('span', { className: 'choice__mark', 'aria-hidden': 'true' })));
}

function sameParticipants(a, b) {
  return a.length === b.length && a.every((p, i) => p.id === b[i].id && p.name === b[i].name);
}

function renderParticipants(participants) {
  const chosen = selectedParticipantId();
  const current = Array.from(grid.querySelectorAll('input[name="participant"]'), (input) => ({
    id: input.value,
    name: input.nextElementSibling.querySelector('.choice__name').textContent,
  }));
  // Re-rendering on a state change would drop the keyboard focus from the radio being used.
  if (!sameParticipants(current, participants)) {
    grid.replaceChildren(...participants.map(choiceFor));
  }
  const keep = chosen && document.getElementById(`p-${chosen}`);
  if (keep) keep.checked = true;
}

function resultsLink(paredaoId, text) {
  return el('a', { className: 'button button--secondary', href: `resultado.html?${new URLSearchParams({ p: paredaoId })}` }, text);
}

function showClosedMessage(heading, body, action) {
  closedMessage.replaceChildren(el('h2', { className: 'notice__title' }, heading), el('p', { className: 'notice__text' }, body));
  if (action) closedMessage.append(action);
  closedMessage.hidden = false;
}

function setRadiosDisabled(disabled) {
  for (const input of grid.querySelectorAll('input[name="participant"]')) input.disabled = disabled;
}

/** Re-reads the paredão when it opens or closes, so a page left open follows the live show. */
function scheduleBoundaryCheck() {
  clearTimeout(boundaryTimer);
  const boundary = parseInstant(paredao.state === 'scheduled' ? paredao.opens_at : paredao.state === 'open' ? paredao.closes_at : null);
  if (!boundary) return;
  // A second late, so the server's clock has surely crossed the boundary too.
  const delay = boundary.getTime() - Date.now() + 1000;
  if (delay > 0 && delay <= MAX_TIMER_MS) boundaryTimer = setTimeout(load, delay);
}

function render() {
  title.textContent = paredao.title;
  document.title = `${paredao.title} · Vote no Paredão`;
  form.classList.remove('is-unavailable');
  fieldset.hidden = false;
  renderParticipants(paredao.participants || []);

  const open = isOpen();
  livePill.hidden = !open;
  // Nothing to verify while no vote is possible; the widget would fetch challenges for nothing.
  if (captchaStep.isConnected) captchaStep.hidden = !open;
  if (open) showCaptcha();
  setRadiosDisabled(!open);
  hint.textContent = open ? OPEN_HINT : CLOSED_HINT;

  if (open) {
    closedMessage.hidden = true;
    closedMessage.replaceChildren();
  } else if (paredao.state === 'scheduled') {
    const opensAt = parseInstant(paredao.opens_at);
    showClosedMessage(
      'Votação em breve',
      opensAt ? `A votação abre em ${formatLongDateTime(opensAt)}.` : 'A votação ainda não começou.',
    );
  } else {
    // The result only where the paredão's policy publishes one.
    const published = paredao.results_visibility !== 'never';
    showClosedMessage(
      'Votação encerrada',
      published ? 'A votação deste paredão foi encerrada.' : 'A votação deste paredão foi encerrada. O resultado não será divulgado aqui.',
      published ? resultsLink(paredao.id, 'Ver resultado') : undefined,
    );
  }
  updateButton();
  scheduleBoundaryCheck();
}

function renderNotFound(error) {
  paredao = null;
  livePill.hidden = true;
  grid.replaceChildren();
  fieldset.hidden = true;
  form.classList.add('is-unavailable');
  const unknown = error.code === 'unknown_paredao' && requestedId !== 'current';
  title.textContent = unknown ? 'Paredão não encontrado' : 'Paredão';
  showClosedMessage(
    unknown ? 'Paredão não encontrado' : 'Nenhum paredão aberto no momento',
    unknown ? 'Confira o endereço ou volte para a votação atual.' : 'Volte mais tarde: a próxima votação aparece aqui.',
  );
  updateButton();
}

function renderLoadError(error) {
  // Skeleton cards would suggest something is still loading; say plainly that it is not.
  if (!grid.querySelector('input[name="participant"]')) {
    grid.replaceChildren(el('p', { className: 'choices__empty' }, 'Os participantes aparecem aqui assim que a votação carregar.'));
  }
  const retry = el('button', { type: 'button', className: 'button button--secondary status__action' }, 'Tentar novamente');
  retry.addEventListener('click', () => {
    setStatus('Carregando…');
    load();
  });
  setStatus(`Não foi possível carregar a votação. ${loadErrorMessage(error)}`, { error: true, action: retry });
  updateButton();
}

async function load() {
  try {
    paredao = await getParedao(requestedId);
    if (statusBox.querySelector('.status__action')) setStatus('');
    render();
  } catch (error) {
    if (error instanceof ApiError && error.isNotFound) renderNotFound(error);
    else renderLoadError(error);
  } finally {
    // Until the first answer the list holds placeholders; screen readers are told to wait.
    fieldset.removeAttribute('aria-busy');
  }
}

form.addEventListener('change', (event) => {
  if (event.target.name !== 'participant') return;
  // An old error message no longer applies to a new choice.
  if (statusBox.classList.contains('is-error')) setStatus('');
  updateButton();
});

/**
 * Whether the captcha payload a refused vote carried may be sent again. Refusals made before the
 * vote was read leave it unspent: `overloaded` (the surge guard of nginx or of a replica) and a
 * rate limit. After any other 5xx on a vote (`vote_not_durable`, nginx's 502 and 504) the vote may
 * or may not have been counted, and the API promises that resending it with the same payload is
 * safe: the replica released the challenge, and the store counts each challenge at most once.
 */
function mayReuseCaptcha(error) {
  if (!(error instanceof ApiError) || error.kind !== 'http' || error.isCaptchaError) return false;
  if (error.status === 429) return true;
  if (error.status === 503) return error.code === 'overloaded' || error.code === 'vote_not_durable';
  return error.status === 502 || error.status === 504;
}

/** How long to wait before the page resends a refused vote by itself, or null to not resend it. */
function retryDelayMs(error) {
  // Resending means resending the same payload: a spent one would only be refused again.
  if (!mayReuseCaptcha(error)) return null;
  // Never straight away, whatever the header says (or when it is missing).
  const seconds = Math.max(1, error.retryAfter ?? 1);
  if (seconds > MAX_RETRY_AFTER_S) return null;
  return seconds * 1000 + Math.random() * RETRY_JITTER_MS;
}

function retryMessage(error, delayMs, retry) {
  const cause = error.status === 429 ? 'Muitos votos em pouco tempo.'
    : error.code === 'overloaded' ? 'Muita gente votando agora.'
      : 'Não conseguimos confirmar seu voto.';
  return `${cause} Tentando de novo em ${Math.ceil(delayMs / 1000)} s… (tentativa ${retry} de ${MAX_RETRIES})`;
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

function voteFailed(error) {
  setSending(false);
  // 410: the vote ended (on any replica, within a second of the close).
  const ended = error instanceof ApiError && error.code === 'paredao_closed';
  setStatus(
    ended
      ? 'A votação deste paredão foi encerrada. Seu voto não foi registrado.'
      : voteErrorMessage(error, { opensAt: parseInstant(paredao?.opens_at) }),
    { error: true },
  );
  // Kept when still unspent, so trying again is one tap with no new challenge to solve.
  if (!mayReuseCaptcha(error)) captcha?.refresh();
  // The server knows better than this page whether the paredão is open and who is in it.
  if (ended || (error instanceof ApiError && (error.code === 'paredao_not_open' || error.code === 'unknown_participant'))) {
    load();
  }
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const participantId = selectedParticipantId();
  if (sending || !isOpen() || participantId === null) return;

  const run = ++voteRun;
  const paredaoId = paredao.id;
  // Read once: a retry resends this very payload (see mayReuseCaptcha), whatever the widget does
  // meanwhile.
  const captchaToken = readCaptchaToken();
  // The button stays in its sending state through the waits too: no second tap meanwhile.
  setSending(true);
  setStatus('Enviando seu voto…');
  for (let retry = 1; ; retry += 1) {
    let receipt;
    try {
      receipt = await postVote(paredaoId, participantId, captchaToken);
    } catch (error) {
      if (run !== voteRun) return;
      const delay = retry <= MAX_RETRIES ? retryDelayMs(error) : null;
      if (delay === null) {
        voteFailed(error);
        return;
      }
      // Progress, not an error: said politely, and the viewer has nothing to do.
      setStatus(retryMessage(error, delay, retry));
      await sleep(delay);
      if (run !== voteRun) return;
      setStatus(`Enviando seu voto de novo… (tentativa ${retry} de ${MAX_RETRIES})`);
      continue;
    }
    if (run !== voteRun) return;
    setStatus('Voto registrado! Abrindo o resultado…');
    const query = new URLSearchParams({
      p: receipt.paredao_id || paredaoId,
      voto: receipt.participant_id || participantId,
    });
    // The button stays in its sending state while the next page loads: no second tap meanwhile.
    window.location.assign(`resultado.html?${query}`);
    return;
  }
});

// Coming back with the browser's Back button restores this page frozen mid-send; wake it up.
window.addEventListener('pageshow', (event) => {
  if (!event.persisted) return;
  voteRun += 1;
  setSending(false);
  setStatus('');
  // The payload on the page was sent with the vote. The widget resets itself on this same event;
  // solve a new challenge after it has.
  setTimeout(() => captcha?.refresh(), 0);
  load();
});

load();
