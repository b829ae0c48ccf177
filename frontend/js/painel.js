// The production team's live view: exact totals per participant and per hour, refreshed every 3 s.
//
// It is watched during the record vote's peak, so it must cost the API little and never go blank:
// one request per tick, no tick while the last request is still out, the DOM updated in place,
// and the last good numbers kept on screen when a refresh fails.

import { ApiError, getParedao, getStats, loadErrorMessage, paredaoIdFromLocation } from './api.js';
import { createAvatar } from './avatar.js';
import { createHourlyChart, seriesClass, swatch } from './chart.js';
import { el } from './dom.js';
import { requireSession } from './session.js';
import {
  formatDayMonth, formatHour, formatInteger, formatLongDateTime, formatPercentage, parseInstant, showUpdatedAt,
} from './format.js';

const REFRESH_MS = 3000;
const HOUR_MS = 3600 * 1000;

const STATE_LABELS = {
  open: 'Votação aberta',
  scheduled: 'Agendada',
  closed: 'Encerrada',
};

let paredaoId = paredaoIdFromLocation();

const $ = (id) => document.getElementById(id);
const title = $('paredao-title');
const badge = $('state-badge');
const updatedAt = $('updated-at');
const warning = $('refresh-warning');
const loadError = $('load-error');
const totalVotes = $('total-votes');
const currentHourVotes = $('current-hour-votes');
const currentHourTitle = $('current-hour-title');
const currentHourLabel = $('current-hour-label');
const leaderName = $('leader-name');
const leaderShare = $('leader-share');
const tally = $('participants');
const chart = createHourlyChart({
  chart: $('hourly-chart'), scroll: $('chart-scroll'), yAxis: $('chart-y-axis'), legend: $('chart-legend'),
});
const table = $('hourly-table');

/** id → photo and name from the paredão (the statistics carry no photos). */
const people = new Map();
/** id → elements of the participant's card. */
const cards = new Map();
/** hour ISO string → table row and its cells. */
const tableRows = new Map();

let inFlight = false;
let hasData = false;
let participantsKey = '';

// ---------------------------------------------------------------- header and summary

function renderHeader(stats) {
  if (stats.title) {
    title.textContent = stats.title;
    document.title = `Painel · ${stats.title}`;
  }
  const state = STATE_LABELS[stats.state] ? stats.state : 'unknown';
  badge.className = `badge badge--${state}`;
  badge.textContent = STATE_LABELS[stats.state] || 'Estado desconhecido';
  showUpdatedAt(updatedAt, stats.updated_at);
}

function renderSummary(stats, participants) {
  const total = Number(stats.total_votes) || 0;
  totalVotes.textContent = formatInteger(total);

  const hourly = Array.isArray(stats.hourly) ? stats.hourly : [];
  const last = hourly[hourly.length - 1];
  const lastStart = last ? parseInstant(last.hour) : null;
  if (stats.state === 'closed' && lastStart) {
    // After the end "now" has no votes by definition; the last hour of voting says more.
    currentHourTitle.textContent = 'Última hora de votação';
    currentHourVotes.textContent = formatInteger(last.total);
    currentHourLabel.textContent = `${formatDayMonth(lastStart)}, das ${formatHour(lastStart)}`;
  } else {
    // The hour being counted right now, if it has any vote yet.
    const now = Date.now();
    const currentStart = new Date(Math.floor(now / HOUR_MS) * HOUR_MS);
    const isCurrent = lastStart && now >= lastStart.getTime() && now - lastStart.getTime() < HOUR_MS;
    currentHourTitle.textContent = 'Na hora atual';
    currentHourVotes.textContent = formatInteger(isCurrent ? last.total : 0);
    currentHourLabel.textContent = `desde as ${formatHour(isCurrent ? lastStart : currentStart)}`;
  }

  const top = participants.reduce((best, p) => (best === null || p.votes > best.votes ? p : best), null);
  const tied = top ? participants.filter((p) => p.votes === top.votes).length > 1 : false;
  if (!top || top.votes === 0) {
    leaderName.textContent = '—';
    leaderShare.textContent = 'Nenhum voto ainda';
  } else if (tied) {
    leaderName.textContent = 'Empate';
    leaderShare.textContent = `${formatInteger(top.votes)} votos cada`;
  } else {
    leaderName.textContent = top.name;
    leaderShare.textContent = `${formatPercentage((top.votes / total) * 100)} dos votos`;
  }
}

// ---------------------------------------------------------------- participant cards

function createCard(participant, index) {
  const name = el('span', { className: 'tally__name' });
  const votes = el('span', { className: 'tally__votes', dataset: { role: 'votes' } });
  const votesUnit = el('span', { className: 'tally__unit' }, ' votos');
  const percentage = el('span', { className: 'tally__percentage', dataset: { role: 'percentage' } });
  const fill = el('div', { className: 'bar__fill' });
  const li = el('li', { className: `tally__item ${seriesClass(index)}`, dataset: { participant: participant.id } },
    el('div', { className: 'tally__head' },
      createAvatar(people.get(participant.id) || participant, 'md'),
      el('div', { className: 'tally__who' }, name, el('p', { className: 'tally__numbers' }, votes, votesUnit)),
      percentage),
    el('div', { className: 'bar bar--series', 'aria-hidden': 'true' }, fill));
  const card = { li, name, votes, votesUnit, percentage, fill };
  cards.set(participant.id, card);
  return card;
}

function renderCards(participants, total) {
  const top = participants.reduce((max, p) => Math.max(max, p.votes), 0);
  participants.forEach((participant, index) => {
    const card = cards.get(participant.id) || createCard(participant, index);
    if (tally.children[index] !== card.li) tally.insertBefore(card.li, tally.children[index] || null);
    const share = total > 0 ? (participant.votes / total) * 100 : 0;
    card.name.textContent = participant.name;
    card.votes.textContent = formatInteger(participant.votes);
    card.votesUnit.textContent = participant.votes === 1 ? ' voto' : ' votos';
    card.percentage.textContent = formatPercentage(share);
    card.fill.style.width = `${share}%`;
    card.li.classList.toggle('is-leading', top > 0 && participant.votes === top);
  });
  const ids = new Set(participants.map((p) => p.id));
  for (const [id, card] of cards) {
    if (!ids.has(id)) {
      card.li.remove();
      cards.delete(id);
    }
  }
}

// ---------------------------------------------------------------- chart legend and table header

/** Rebuilt only when the line-up changes, which in practice is never during a paredão. */
function renderLineUp(participants) {
  const key = participants.map((p) => `${p.id}\u0000${p.name}`).join('\u0001');
  if (key === participantsKey) return;
  participantsKey = key;

  chart.setLineUp(participants);
  const headRow = el('tr', {},
    el('th', { scope: 'col' }, 'Hora'),
    ...participants.map((participant, index) => (
      el('th', { scope: 'col', dataset: { participant: participant.id } }, swatch(index), participant.name))),
    el('th', { scope: 'col', dataset: { role: 'total' } }, 'Total'));
  table.tHead.replaceChildren(headRow);

  // Rows and cards built for another line-up have the wrong cells and colours (the chart drops its
  // bars itself).
  table.tBodies[0].replaceChildren();
  tableRows.clear();
  for (const card of cards.values()) card.li.remove();
  cards.clear();
}

// ---------------------------------------------------------------- hourly table

function createTableRow(hour, participants) {
  const date = parseInstant(hour);
  const cells = new Map(participants.map((participant) => (
    [participant.id, el('td', { dataset: { participant: participant.id } })])));
  const total = el('td', { dataset: { role: 'total' } });
  const tr = el('tr', { dataset: { hour } },
    el('th', { scope: 'row' },
      el('time', { dateTime: hour },
        el('span', { className: 'hourly-table__day' }, date ? formatDayMonth(date) : ''),
        date ? formatHour(date) : hour)),
    ...cells.values(),
    total);
  const row = { tr, cells, total };
  tableRows.set(hour, row);
  return row;
}

function setText(element, text) {
  // Writing the same text again still costs a layout; most cells do not change between ticks.
  if (element.textContent !== text) element.textContent = text;
}

function renderTable(hourly, participants) {
  const body = table.tBodies[0];
  const seen = new Set();
  hourly.forEach((bucket, index) => {
    seen.add(bucket.hour);
    const row = tableRows.get(bucket.hour) || createTableRow(bucket.hour, participants);
    if (body.children[index] !== row.tr) body.insertBefore(row.tr, body.children[index] || null);
    for (const participant of participants) {
      setText(row.cells.get(participant.id), formatInteger(bucket.votes ? bucket.votes[participant.id] : 0));
    }
    setText(row.total, formatInteger(bucket.total));
  });
  for (const [hour, row] of tableRows) {
    if (!seen.has(hour)) {
      row.tr.remove();
      tableRows.delete(hour);
    }
  }
}

// ---------------------------------------------------------------- refresh loop

function normalise(stats) {
  const participants = (Array.isArray(stats.participants) ? stats.participants : []).map((p) => ({
    id: p.id,
    name: p.name,
    votes: Number(p.votes) || 0,
  }));
  const hourly = (Array.isArray(stats.hourly) ? stats.hourly : []).map((bucket) => ({
    hour: bucket.hour,
    total: Number(bucket.total) || 0,
    votes: bucket.votes || {},
  }));
  return { participants, hourly };
}

function render(stats) {
  const { participants, hourly } = normalise(stats);
  const total = Number(stats.total_votes) || 0;
  if (stats.paredao_id) paredaoId = stats.paredao_id;
  renderHeader(stats);
  renderLineUp(participants);
  renderSummary(stats, participants);
  renderCards(participants, total);
  renderTable(hourly, participants);
  chart.render(hourly, participants);
  renderMinuteChart(stats, participants);
  renderFinal(stats);
}

function showFailure(error) {
  if (hasData) {
    // Non-blocking: the numbers on screen stay, only marked as possibly stale.
    warning.textContent = 'Falha ao atualizar — tentando de novo';
    warning.classList.add('is-visible');
    return;
  }
  const prefix = error instanceof ApiError && error.isNotFound ? '' : 'Não foi possível carregar as estatísticas. ';
  loadError.textContent = `${prefix}${loadErrorMessage(error)} Tentando de novo a cada 3 segundos.`;
  loadError.hidden = false;
  badge.className = 'badge badge--unknown';
  badge.textContent = 'Sem dados';
}

async function refresh() {
  // One request at a time: under load a slow answer must not pile more requests onto the API.
  if (inFlight || document.hidden) return;
  inFlight = true;
  try {
    const stats = await getStats(paredaoId);
    render(stats);
    hasData = true;
    loadError.hidden = true;
    warning.textContent = '';
    warning.classList.remove('is-visible');
  } catch (error) {
    showFailure(error);
  } finally {
    inFlight = false;
  }
}

/** Photos come from the paredão; the panel works without them (avatars fall back to initials). */
async function loadParedao() {
  try {
    const paredao = await getParedao(paredaoId);
    for (const participant of paredao.participants || []) people.set(participant.id, participant);
    if (paredao.id) paredaoId = paredao.id;
    if (paredao.title) title.textContent = paredao.title;
  } catch {
    // The statistics request reports the problem.
  }
}

// ---------------------------------------------------------------- per-minute chart (last hour)

const MINUTE_MS = 60 * 1000;
const MINUTES_SHOWN = 60;
const minutePanel = $('minute-panel');
const minuteChartElement = $('minute-chart');
const minuteChart = createHourlyChart({
  chart: minuteChartElement,
  scroll: $('minute-chart-scroll'),
  yAxis: $('minute-chart-y-axis'),
  legend: $('minute-chart-legend'),
});
let minuteLineUpKey = '';

/**
 * The last hour, one bar per minute (0 for the minutes without votes), ending now while the vote
 * is open, or at the last minute counted once it has closed. The chart draws "hours" of any
 * length: each minute is passed as a bucket whose `hour` is its start.
 */
function lastHourOfMinutes(stats) {
  const counted = new Map();
  for (const m of Array.isArray(stats.per_minute) ? stats.per_minute : []) {
    const at = parseInstant(m.minute);
    if (at) counted.set(at.getTime(), { total: Number(m.total) || 0, votes: m.votes || {} });
  }
  const latest = Math.max(0, ...counted.keys());
  const end = stats.state === 'open' ? Math.floor(Date.now() / MINUTE_MS) * MINUTE_MS : latest;
  if (!end) return [];
  const buckets = [];
  for (let t = end - (MINUTES_SHOWN - 1) * MINUTE_MS; t <= end; t += MINUTE_MS) {
    const c = counted.get(t);
    buckets.push({ hour: new Date(t).toISOString(), total: c ? c.total : 0, votes: c ? c.votes : {} });
  }
  return buckets;
}

function renderMinuteChart(stats, participants) {
  const minutes = lastHourOfMinutes(stats);
  // Shown while the vote is open, and after it while its minutes are kept (until the result is frozen).
  minutePanel.hidden = minutes.length === 0;
  if (minutePanel.hidden) return;
  const key = participants.map((p) => `${p.id}\u0000${p.name}`).join('\u0001');
  if (key !== minuteLineUpKey) {
    minuteLineUpKey = key;
    minuteChart.setLineUp(participants);
  }
  minuteChart.render(minutes, participants);
  const total = minutes.reduce((sum, m) => sum + m.total, 0);
  minuteChartElement.setAttribute('aria-label',
    `Votos por minuto na última hora: ${formatInteger(total)} ${total === 1 ? 'voto' : 'votos'} em ${minutes.length} minutos.`);
}

// ---------------------------------------------------------------- final result (closed paredão)

const finalPanel = $('final-result');
const finalHeading = $('final-heading');
const finalStatus = $('final-status');
const finalDetails = $('final-details');
const finalDigest = $('final-digest');
const finalFrozenAt = $('final-frozen-at');
const finalExports = $('final-exports');
let finalShownFor = '';

const EXPORTS = [
  ['csv', 'hour', 'CSV por hora'],
  ['csv', 'minute', 'CSV por minuto'],
  ['json', 'hour', 'JSON por hora'],
  ['json', 'minute', 'JSON por minuto'],
  ['csv', 'total', 'CSV dos totais'],
];

function exportLinks(id) {
  return EXPORTS.map(([format, granularity, label]) => el('li', {},
    el('a', {
      className: 'button button--secondary',
      href: `/api/paredoes/${encodeURIComponent(id)}/export?format=${format}&granularity=${granularity}`,
      download: `paredao-${id}-${granularity}.${format}`,
      dataset: { format, granularity },
    }, label)));
}

/** Closed: "Apurando…" while the last votes drain, then "Resultado final" with its digest. */
function renderFinal(stats) {
  finalPanel.hidden = stats.state !== 'closed';
  if (finalPanel.hidden) return;
  const final = stats.final && typeof stats.final.digest === 'string' ? stats.final : null;
  finalPanel.classList.toggle('is-final', Boolean(final));
  if (!final) {
    finalHeading.textContent = 'Apurando…';
    finalStatus.textContent = 'Os últimos votos aceitos antes do encerramento ainda estão sendo contados.';
    finalDetails.hidden = true;
    return;
  }
  finalHeading.textContent = 'Resultado final';
  finalStatus.textContent = `Todos os votos foram apurados: ${formatInteger(stats.total_votes)} no total.`;
  finalDigest.textContent = final.digest;
  const frozenAt = parseInstant(final.frozen_at);
  finalFrozenAt.textContent = frozenAt ? `Congelado em ${formatLongDateTime(frozenAt)}.` : '';
  if (finalShownFor !== paredaoId) {
    finalShownFor = paredaoId;
    finalExports.replaceChildren(...exportLinks(paredaoId));
  }
  finalDetails.hidden = false;
}

document.addEventListener('visibilitychange', () => {
  // Hidden tabs skip their ticks; coming back shows fresh numbers at once.
  if (!document.hidden) refresh();
});

// Signed in first: without a session the browser goes to the login page.
requireSession().then(loadParedao).then(() => {
  refresh();
  setInterval(refresh, REFRESH_MS);
});
