// The production team's live view: exact totals per participant and per hour, refreshed every 3 s.
//
// It is watched during the record vote's peak, so it must cost the API little and never go blank:
// one request per tick, no tick while the last request is still out, the DOM updated in place,
// and the last good numbers kept on screen when a refresh fails.

import { ApiError, getParedao, getStats, loadErrorMessage, paredaoIdFromLocation } from './api.js';
import { createAvatar } from './avatar.js';
import {
  formatCompact, formatDayMonth, formatHour, formatInteger, formatPercentage, parseInstant, showUpdatedAt,
} from './format.js';

const REFRESH_MS = 3000;
// Must match the .series-{n} colours in site.css.
const SERIES_COUNT = 8;
const SVG_NS = 'http://www.w3.org/2000/svg';
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
const legend = $('chart-legend');
const chartScroll = $('chart-scroll');
const chart = $('hourly-chart');
const yAxis = $('chart-y-axis');
const table = $('hourly-table');

/** id → photo and name from the paredão (the statistics carry no photos). */
const people = new Map();
/** id → elements of the participant's card. */
const cards = new Map();
/** hour ISO string → table row and its cells. */
const tableRows = new Map();

let inFlight = false;
let hasData = false;
let lastStats = null;
let participantsKey = '';

function seriesClass(index) {
  return `series-${index % SERIES_COUNT}`;
}

function svg(name, attributes = {}) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

function hourLabel(date) {
  return formatHour(date);
}

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
    currentHourLabel.textContent = `${formatDayMonth(lastStart)}, das ${hourLabel(lastStart)}`;
  } else {
    // The hour being counted right now, if it has any vote yet.
    const now = Date.now();
    const currentStart = new Date(Math.floor(now / HOUR_MS) * HOUR_MS);
    const isCurrent = lastStart && now >= lastStart.getTime() && now - lastStart.getTime() < HOUR_MS;
    currentHourTitle.textContent = 'Na hora atual';
    currentHourVotes.textContent = formatInteger(isCurrent ? last.total : 0);
    currentHourLabel.textContent = `desde as ${hourLabel(isCurrent ? lastStart : currentStart)}`;
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
  const li = document.createElement('li');
  li.className = `tally__item ${seriesClass(index)}`;
  li.dataset.participant = participant.id;

  const name = document.createElement('span');
  name.className = 'tally__name';

  const votes = document.createElement('span');
  votes.className = 'tally__votes';
  votes.dataset.role = 'votes';

  const votesUnit = document.createElement('span');
  votesUnit.className = 'tally__unit';
  votesUnit.textContent = ' votos';

  const percentage = document.createElement('span');
  percentage.className = 'tally__percentage';
  percentage.dataset.role = 'percentage';

  const numbers = document.createElement('p');
  numbers.className = 'tally__numbers';
  numbers.append(votes, votesUnit);

  const head = document.createElement('div');
  head.className = 'tally__head';
  const who = document.createElement('div');
  who.className = 'tally__who';
  who.append(name, numbers);
  head.append(createAvatar(people.get(participant.id) || participant, 'md'), who, percentage);

  const bar = document.createElement('div');
  bar.className = 'bar bar--series';
  bar.setAttribute('aria-hidden', 'true');
  const fill = document.createElement('div');
  fill.className = 'bar__fill';
  bar.append(fill);

  li.append(head, bar);
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

// ---------------------------------------------------------------- legend and table header

/** Rebuilt only when the line-up changes, which in practice is never during a paredão. */
function renderLineUp(participants) {
  const key = participants.map((p) => `${p.id}\u0000${p.name}`).join('\u0001');
  if (key === participantsKey) return;
  participantsKey = key;

  legend.replaceChildren(...participants.map((participant, index) => {
    const item = document.createElement('li');
    item.className = 'legend__item';
    const swatch = document.createElement('span');
    swatch.className = `legend__swatch ${seriesClass(index)}`;
    swatch.setAttribute('aria-hidden', 'true');
    item.append(swatch, participant.name);
    return item;
  }));

  const headRow = document.createElement('tr');
  const hourHead = document.createElement('th');
  hourHead.scope = 'col';
  hourHead.textContent = 'Hora';
  headRow.append(hourHead);
  for (const [index, participant] of participants.entries()) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.dataset.participant = participant.id;
    const swatch = document.createElement('span');
    swatch.className = `legend__swatch ${seriesClass(index)}`;
    swatch.setAttribute('aria-hidden', 'true');
    th.append(swatch, participant.name);
    headRow.append(th);
  }
  const totalHead = document.createElement('th');
  totalHead.scope = 'col';
  totalHead.dataset.role = 'total';
  totalHead.textContent = 'Total';
  headRow.append(totalHead);
  table.tHead.replaceChildren(headRow);

  // Rows, bars and cards built for another line-up have the wrong cells and colours.
  table.tBodies[0].replaceChildren();
  tableRows.clear();
  for (const bar of chartBars.values()) bar.g.remove();
  chartBars.clear();
  for (const card of cards.values()) card.li.remove();
  cards.clear();
}

// ---------------------------------------------------------------- hourly table

function createTableRow(hour, participants) {
  const tr = document.createElement('tr');
  tr.dataset.hour = hour;

  const th = document.createElement('th');
  th.scope = 'row';
  const time = document.createElement('time');
  time.dateTime = hour;
  const date = parseInstant(hour);
  const day = document.createElement('span');
  day.className = 'hourly-table__day';
  day.textContent = date ? formatDayMonth(date) : '';
  time.append(day, date ? hourLabel(date) : hour);
  th.append(time);
  tr.append(th);

  const cells = new Map();
  for (const participant of participants) {
    const td = document.createElement('td');
    td.dataset.participant = participant.id;
    cells.set(participant.id, td);
    tr.append(td);
  }
  const total = document.createElement('td');
  total.dataset.role = 'total';
  tr.append(total);

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

// ---------------------------------------------------------------- hourly chart

const CHART_HEIGHT = 300;
// The vote scale is drawn outside the SVG (#chart-y-axis) so it stays put while the hours scroll.
const MARGIN = { top: 24, right: 12, bottom: 48, left: 8 };
// Narrower bars than this are unreadable: the chart scrolls sideways instead.
const MIN_SLOT = 30;

const chartLayers = {
  grid: svg('g', { class: 'chart__grid' }),
  bars: svg('g', { class: 'chart__bars' }),
  axis: svg('g', { class: 'chart__axis' }),
  empty: svg('text', { class: 'chart__empty', 'text-anchor': 'middle' }),
};
chart.append(chartLayers.grid, chartLayers.bars, chartLayers.axis, chartLayers.empty);
/** hour ISO string → the bar group of that hour. */
const chartBars = new Map();

/** A round step (1, 1.5, 2 … 8 × 10^n) so that four of them just reach past `max`. */
function niceStep(max) {
  const raw = Math.max(1, max) / 4;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10].map((m) => m * magnitude).find((s) => s >= raw);
  return Math.max(1, Math.ceil(step));
}

function createBarGroup(hour, participants) {
  const g = svg('g', { class: 'chart__bar' });
  const tip = svg('title');
  g.append(tip);
  const rects = new Map();
  participants.forEach((participant, index) => {
    const rect = svg('rect', { class: seriesClass(index) });
    rects.set(participant.id, rect);
    g.append(rect);
  });
  const total = svg('text', { class: 'chart__total', 'text-anchor': 'middle' });
  g.append(total);
  const bar = { g, tip, rects, total };
  chartBars.set(hour, bar);
  return bar;
}

function renderChart(hourly, participants) {
  const count = hourly.length;
  const available = chartScroll.clientWidth || 600;
  const width = Math.max(available, MARGIN.left + MARGIN.right + count * MIN_SLOT);
  const plotWidth = width - MARGIN.left - MARGIN.right;
  const plotHeight = CHART_HEIGHT - MARGIN.top - MARGIN.bottom;
  const bottom = MARGIN.top + plotHeight;
  const wasAtEnd = chartScroll.scrollLeft + chartScroll.clientWidth >= chartScroll.scrollWidth - 4;

  // Drawn at 1 unit = 1 CSS pixel, so text keeps its size whatever the number of hours.
  chart.setAttribute('width', width);
  chart.setAttribute('height', CHART_HEIGHT);
  chart.setAttribute('viewBox', `0 0 ${width} ${CHART_HEIGHT}`);

  const maxTotal = hourly.reduce((max, bucket) => Math.max(max, bucket.total), 0);
  const step = niceStep(maxTotal);
  const top = step * 4;
  const y = (value) => bottom - (value / top) * plotHeight;

  // Gridlines and scale labels: a dozen elements, cheaper to redraw than to reconcile.
  const grid = [];
  const scale = [];
  for (let i = 0; i <= 4; i += 1) {
    const value = step * i;
    grid.push(svg('line', {
      x1: 0, x2: width, y1: y(value), y2: y(value), class: i === 0 ? 'chart__baseline' : 'chart__gridline',
    }));
    const label = document.createElement('span');
    label.className = 'chart-y-axis__label';
    label.textContent = formatCompact(value);
    label.style.top = `${y(value)}px`;
    scale.push(label);
  }
  chartLayers.grid.replaceChildren(...grid);
  yAxis.replaceChildren(...scale);

  chartLayers.empty.setAttribute('x', MARGIN.left + plotWidth / 2);
  chartLayers.empty.setAttribute('y', MARGIN.top + plotHeight / 2);
  chartLayers.empty.textContent = count === 0 ? 'Ainda não há votos' : '';

  const slot = count > 0 ? plotWidth / count : plotWidth;
  const barWidth = Math.min(56, Math.max(8, slot * 0.68));
  // Label every hour when there is room, else every 2nd, 3rd… so labels never overlap.
  const labelEvery = Math.max(1, Math.ceil(44 / slot));
  const showTotals = slot >= 40;

  // The first hour of each day is always labelled (with its date); the regular labels make
  // room for it on both sides instead of overlapping it.
  const days = hourly.map((bucket) => {
    const date = parseInstant(bucket.hour);
    return date ? formatDayMonth(date) : '';
  });
  const dayStarts = days.map((day, index) => index === 0 || day !== days[index - 1]);
  const nextDayStart = new Array(count).fill(Infinity);
  for (let index = count - 2; index >= 0; index -= 1) {
    nextDayStart[index] = dayStarts[index + 1] ? index + 1 : nextDayStart[index + 1];
  }

  const seen = new Set();
  const axis = [];
  let lastLabelled = -Infinity;
  hourly.forEach((bucket, index) => {
    seen.add(bucket.hour);
    const bar = chartBars.get(bucket.hour) || createBarGroup(bucket.hour, participants);
    if (!bar.g.isConnected) chartLayers.bars.append(bar.g);
    const x = MARGIN.left + index * slot + (slot - barWidth) / 2;
    const date = parseInstant(bucket.hour);
    const label = date ? hourLabel(date) : bucket.hour;

    let stacked = 0;
    const lines = [`${label} · ${formatInteger(bucket.total)} ${bucket.total === 1 ? 'voto' : 'votos'}`];
    for (const participant of participants) {
      const votes = bucket.votes ? Number(bucket.votes[participant.id]) || 0 : 0;
      const rect = bar.rects.get(participant.id);
      const y0 = y(stacked);
      stacked += votes;
      const y1 = y(stacked);
      rect.setAttribute('x', x);
      rect.setAttribute('width', barWidth);
      rect.setAttribute('y', y1);
      rect.setAttribute('height', Math.max(0, y0 - y1));
      lines.push(`${participant.name}: ${formatInteger(votes)}`);
    }
    bar.tip.textContent = lines.join('\n');
    bar.total.setAttribute('x', x + barWidth / 2);
    bar.total.setAttribute('y', y(bucket.total) - 6);
    bar.total.textContent = showTotals && bucket.total > 0 ? formatCompact(bucket.total) : '';

    const day = days[index];
    // A first day with a single hour before midnight would collide with the next date: skip it.
    const newDay = dayStarts[index] && (index > 0 || nextDayStart[0] >= labelEvery);
    const fits = index - lastLabelled >= labelEvery && nextDayStart[index] - index >= labelEvery;
    if (newDay || fits) {
      lastLabelled = index;
      const hourText = svg('text', { x: x + barWidth / 2, y: bottom + 18, 'text-anchor': 'middle', class: 'chart__tick' });
      hourText.textContent = label;
      axis.push(hourText);
    }
    if (newDay && day) {
      // The date under the first hour of each day, for paredões that run past midnight.
      const dayText = svg('text', { x: x + barWidth / 2, y: bottom + 36, 'text-anchor': 'middle', class: 'chart__day' });
      dayText.textContent = day;
      axis.push(dayText);
    }
  });
  chartLayers.axis.replaceChildren(...axis);
  for (const [hour, bar] of chartBars) {
    if (!seen.has(hour)) {
      bar.g.remove();
      chartBars.delete(hour);
    }
  }

  chart.setAttribute('aria-label', chartDescription(hourly));
  // Follow the newest hour, unless someone scrolled back to look at an older one.
  if (wasAtEnd || !hasData) chartScroll.scrollLeft = chartScroll.scrollWidth;
}

function chartDescription(hourly) {
  if (hourly.length === 0) return 'Votos por hora: ainda não há votos.';
  const first = parseInstant(hourly[0].hour);
  const last = parseInstant(hourly[hourly.length - 1].hour);
  const peak = hourly.reduce((best, bucket) => (bucket.total > best.total ? bucket : best), hourly[0]);
  const peakDate = parseInstant(peak.hour);
  const range = first && last ? `, das ${hourLabel(first)} às ${hourLabel(last)}` : '';
  const peakText = peakDate ? ` Hora com mais votos: ${hourLabel(peakDate)}, com ${formatInteger(peak.total)} votos.` : '';
  return `Votos por hora, barras empilhadas por participante: ${hourly.length} ${hourly.length === 1 ? 'hora' : 'horas'}${range}.${peakText} Os valores estão na tabela por hora.`;
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
  renderChart(hourly, participants);
  lastStats = stats;
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

// Redraw the chart to the new width; the numbers have not changed, so no request.
let resizeFrame = 0;
new ResizeObserver(() => {
  cancelAnimationFrame(resizeFrame);
  resizeFrame = requestAnimationFrame(() => {
    if (lastStats) {
      const { participants, hourly } = normalise(lastStats);
      renderChart(hourly, participants);
    }
  });
}).observe(chartScroll);

document.addEventListener('visibilitychange', () => {
  // Hidden tabs skip their ticks; coming back shows fresh numbers at once.
  if (!document.hidden) refresh();
});

loadParedao().then(() => {
  refresh();
  setInterval(refresh, REFRESH_MS);
});
