// The partial result: percentage bars that refresh every 2 s while the tab is visible, and the
// confirmation of the vote the viewer just cast (when the vote page sent them here with ?voto=).

import { ApiError, getParedao, getResults, loadErrorMessage, paredaoIdFromLocation } from './api.js';
import { createAvatar } from './avatar.js';
import { el } from './dom.js';
import { formatPercentage, showUpdatedAt } from './format.js';

const REFRESH_MS = 2000;

const params = new URLSearchParams(window.location.search);
const votedFor = params.get('voto');
let paredaoId = paredaoIdFromLocation();

const list = document.getElementById('results');
const statusBox = document.getElementById('results-status');
const updatedAt = document.getElementById('updated-at');
const voteAgain = document.getElementById('vote-again');
const title = document.getElementById('paredao-title');
const kind = document.getElementById('results-kind');
const note = document.getElementById('results-note');
const livePill = document.getElementById('live-pill');
const confirmation = document.getElementById('confirmation');
const confirmationText = document.getElementById('confirmation-text');
const confirmationName = document.getElementById('confirmation-name');

/** id → the elements of its row, so a refresh only touches text and widths (no flicker). */
const rows = new Map();
/** id → {id, name, photo_url}, from the paredão itself: the results carry no photos. */
const people = new Map();

let timer = 0;
let inFlight = false;
let stopped = false;
let hasData = false;

function setStatus(message, { error = false } = {}) {
  statusBox.classList.toggle('is-error', error);
  statusBox.classList.toggle('is-warning', !error && Boolean(message));
  statusBox.textContent = message;
}

function linkToVote(id) {
  voteAgain.href = `index.html?${new URLSearchParams({ p: id })}`;
}

function createRow(participant) {
  const name = el('span', { className: 'result__name' });
  const badge = el('span', { className: 'result__badge', hidden: true });
  const percentage = el('span', { className: 'result__percentage', dataset: { role: 'percentage' } });
  const fill = el('div', { className: 'bar__fill' });
  const li = el('li', { className: 'result', dataset: { participant: participant.id } },
    createAvatar(people.get(participant.id) || participant, 'md'),
    el('div', { className: 'result__body' },
      el('div', { className: 'result__header' }, el('span', { className: 'result__who' }, name, badge), percentage),
      // The bar repeats the percentage written next to it; screen readers get the number only.
      el('div', { className: 'bar', 'aria-hidden': 'true' }, fill)));
  const row = { li, name, badge, percentage, fill };
  rows.set(participant.id, row);
  return row;
}

function showConfirmation() {
  if (!votedFor) return;
  const person = people.get(votedFor);
  if (!person) return;
  confirmationName.textContent = person.name;
  confirmationText.hidden = false;
}

/** The words for a paredão whose policy hides its counts now. */
function hiddenNote(data) {
  if (data.hidden_reason === 'never') return 'O resultado deste paredão não é divulgado.';
  return data.state === 'closed' ? 'O resultado será divulgado em instantes.' : 'O resultado será divulgado ao fim da votação.';
}

function render(data) {
  const participants = Array.isArray(data.participants) ? data.participants : [];
  const open = data.state === 'open';
  // Absent from older APIs: those always show the counts.
  const visible = data.visible !== false;
  list.classList.toggle('is-hidden-results', !visible);
  if (data.paredao_id) {
    paredaoId = data.paredao_id;
    linkToVote(paredaoId);
  }

  livePill.hidden = !open;
  // After the end "Votar novamente" leads to a closed vote: keep it, but not as the main action.
  voteAgain.classList.toggle('button--vote', open);
  voteAgain.classList.toggle('button--secondary', !open);
  if (visible) {
    kind.textContent = open ? 'Parcial da votação' : data.state === 'closed' ? 'Resultado final' : 'Votação em breve';
    note.textContent = open
      ? 'A parcial se atualiza sozinha a cada 2 segundos.'
      : data.state === 'closed' ? 'A votação foi encerrada. Este é o resultado final.' : 'A votação ainda não começou.';
  } else {
    kind.textContent = open ? 'Votação aberta' : data.state === 'closed' ? 'Votação encerrada' : 'Votação em breve';
    note.textContent = hiddenNote(data);
  }

  // Nobody leads before the first vote, and a tie highlights everyone tied at the top.
  const top = participants.reduce((max, p) => Math.max(max, Number(p.percentage) || 0), 0);

  const seen = new Set();
  participants.forEach((participant, index) => {
    seen.add(participant.id);
    if (!people.has(participant.id)) people.set(participant.id, participant);
    const row = rows.get(participant.id) || createRow(participant);
    // Keeps the API's order, which is stable: rows jumping around while people read is worse.
    if (list.children[index] !== row.li) list.insertBefore(row.li, list.children[index] || null);

    const value = Math.min(100, Math.max(0, Number(participant.percentage) || 0));
    const leading = visible && top > 0 && value === top;
    row.name.textContent = participant.name;
    // Hidden by the policy: the participants, without numbers or bars.
    row.percentage.textContent = visible ? formatPercentage(value) : '—';
    row.fill.style.width = visible ? `${value}%` : '0%';
    row.fill.parentElement.hidden = !visible;
    row.li.classList.toggle('is-leading', leading);
    row.li.classList.toggle('is-voted', participant.id === votedFor);
    row.badge.hidden = !leading;
    row.badge.textContent = open ? 'Na frente' : 'Mais votos';
  });
  for (const [id, row] of rows) {
    if (!seen.has(id)) {
      row.li.remove();
      rows.delete(id);
    }
  }

  list.removeAttribute('aria-busy');
  showUpdatedAt(updatedAt, data.updated_at);
  showConfirmation();
}

function schedule() {
  clearTimeout(timer);
  if (stopped || document.hidden) return;
  timer = setTimeout(refresh, REFRESH_MS);
}

async function refresh() {
  // A slow answer must not stack a second request on top of it.
  if (inFlight || stopped) return;
  inFlight = true;
  try {
    render(await getResults(paredaoId));
    hasData = true;
    setStatus('');
  } catch (error) {
    if (error instanceof ApiError && error.isNotFound) {
      // Nothing will appear by retrying every 2 s; say so and stop.
      stopped = true;
      list.removeAttribute('aria-busy');
      setStatus(loadErrorMessage(error), { error: true });
    } else if (hasData) {
      // Keep the last numbers on screen: a stale partial is more useful than an empty page.
      setStatus('Falha ao atualizar — tentando de novo');
    } else {
      setStatus(`Não foi possível carregar a parcial. ${loadErrorMessage(error)} Tentando de novo…`, { error: true });
    }
  } finally {
    inFlight = false;
    schedule();
  }
}

/** The paredão gives the title and the photos; the page works without them. */
async function loadParedao() {
  try {
    const paredao = await getParedao(paredaoId);
    title.textContent = paredao.title;
    document.title = `${votedFor ? 'Voto registrado' : 'Parcial'} · ${paredao.title}`;
    for (const participant of paredao.participants || []) people.set(participant.id, participant);
    if (paredao.id) {
      paredaoId = paredao.id;
      linkToVote(paredaoId);
    }
  } catch {
    // The results request reports the problem; a missing title is not worth a second message.
  }
}

document.addEventListener('visibilitychange', () => {
  if (document.hidden) {
    clearTimeout(timer);
  } else {
    refresh();
  }
});

linkToVote(paredaoId);
if (votedFor) {
  confirmation.hidden = false;
  document.title = 'Voto registrado · Paredão';
}
// The paredão first (it names the one "current" stands for and brings the photos), then the results.
loadParedao().then(refresh);
