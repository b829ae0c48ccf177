// The production panel's "votes per hour" chart: one stacked bar per hour (a segment per
// participant), its vote scale, its hour and date labels, and its legend.
//
// It is redrawn every few seconds during the peak, so the bars are kept and updated in place
// (one group per hour); only the dozen gridlines and labels are rebuilt. The series colours are
// the chart's, and the panel's cards and table reuse them (seriesClass, swatch).

import { el, svg } from './dom.js';
import { formatCompact, formatDayMonth, formatHour, formatInteger, parseInstant } from './format.js';

// Must match the .series-{n} colours in site.css.
const SERIES_COUNT = 8;
const CHART_HEIGHT = 300;
// The vote scale is drawn outside the SVG (#chart-y-axis) so it stays put while the hours scroll.
const MARGIN = { top: 24, right: 12, bottom: 48, left: 8 };
// Narrower bars than this are unreadable: the chart scrolls sideways instead.
const MIN_SLOT = 30;

export function seriesClass(index) {
  return `series-${index % SERIES_COUNT}`;
}

/** The colour square of a participant's series, next to its name. */
export function swatch(index) {
  return el('span', { className: `legend__swatch ${seriesClass(index)}`, 'aria-hidden': 'true' });
}

/** A round step (1, 1.5, 2 … 8 × 10^n) so that four of them just reach past `max`. */
function niceStep(max) {
  const raw = Math.max(1, max) / 4;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10].map((m) => m * magnitude).find((s) => s >= raw);
  return Math.max(1, Math.ceil(step));
}

function describe(hourly) {
  if (hourly.length === 0) return 'Votos por hora: ainda não há votos.';
  const first = parseInstant(hourly[0].hour);
  const last = parseInstant(hourly[hourly.length - 1].hour);
  const peak = hourly.reduce((best, bucket) => (bucket.total > best.total ? bucket : best), hourly[0]);
  const peakDate = parseInstant(peak.hour);
  const range = first && last ? `, das ${formatHour(first)} às ${formatHour(last)}` : '';
  const peakText = peakDate ? ` Hora com mais votos: ${formatHour(peakDate)}, com ${formatInteger(peak.total)} votos.` : '';
  return `Votos por hora, barras empilhadas por participante: ${hourly.length} ${hourly.length === 1 ? 'hora' : 'horas'}${range}.${peakText} Os valores estão na tabela por hora.`;
}

/**
 * The chart drawn into `chart` (an <svg>) inside `scroll` (its sideways scroller), with its vote
 * scale in `yAxis` and its legend in `legend`. Hours are `{hour, total, votes: {id → n}}`,
 * participants `{id, name}`, in the order of their series.
 */
export function createHourlyChart({ chart, scroll, yAxis, legend }) {
  const layers = {
    grid: svg('g', { class: 'chart__grid' }),
    bars: svg('g', { class: 'chart__bars' }),
    axis: svg('g', { class: 'chart__axis' }),
    empty: svg('text', { class: 'chart__empty', 'text-anchor': 'middle' }),
  };
  chart.append(layers.grid, layers.bars, layers.axis, layers.empty);
  /** hour ISO string → the bar group of that hour. */
  const bars = new Map();
  /** What was drawn last, to redraw it at a new width. */
  let last = null;

  function createBarGroup(hour, participants) {
    const tip = svg('title');
    const rects = new Map(participants.map((participant, index) => (
      [participant.id, svg('rect', { class: seriesClass(index) })])));
    const total = svg('text', { class: 'chart__total', 'text-anchor': 'middle' });
    const bar = { g: svg('g', { class: 'chart__bar' }, tip, ...rects.values(), total), tip, rects, total };
    bars.set(hour, bar);
    return bar;
  }

  /** A new line-up: a new legend, and the bars built for the old one have the wrong segments. */
  function setLineUp(participants) {
    legend.replaceChildren(...participants.map((participant, index) => (
      el('li', { className: 'legend__item' }, swatch(index), participant.name))));
    for (const bar of bars.values()) bar.g.remove();
    bars.clear();
  }

  function render(hourly, participants) {
    const count = hourly.length;
    const available = scroll.clientWidth || 600;
    const width = Math.max(available, MARGIN.left + MARGIN.right + count * MIN_SLOT);
    const plotWidth = width - MARGIN.left - MARGIN.right;
    const plotHeight = CHART_HEIGHT - MARGIN.top - MARGIN.bottom;
    const bottom = MARGIN.top + plotHeight;
    const wasAtEnd = scroll.scrollLeft + scroll.clientWidth >= scroll.scrollWidth - 4;

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
      const label = el('span', { className: 'chart-y-axis__label' }, formatCompact(value));
      label.style.top = `${y(value)}px`;
      scale.push(label);
    }
    layers.grid.replaceChildren(...grid);
    yAxis.replaceChildren(...scale);

    layers.empty.setAttribute('x', MARGIN.left + plotWidth / 2);
    layers.empty.setAttribute('y', MARGIN.top + plotHeight / 2);
    layers.empty.textContent = count === 0 ? 'Ainda não há votos' : '';

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
      const bar = bars.get(bucket.hour) || createBarGroup(bucket.hour, participants);
      if (!bar.g.isConnected) layers.bars.append(bar.g);
      const x = MARGIN.left + index * slot + (slot - barWidth) / 2;
      const date = parseInstant(bucket.hour);
      const label = date ? formatHour(date) : bucket.hour;

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
        axis.push(svg('text', { x: x + barWidth / 2, y: bottom + 18, 'text-anchor': 'middle', class: 'chart__tick' }, label));
      }
      if (newDay && day) {
        // The date under the first hour of each day, for paredões that run past midnight.
        axis.push(svg('text', { x: x + barWidth / 2, y: bottom + 36, 'text-anchor': 'middle', class: 'chart__day' }, day));
      }
    });
    layers.axis.replaceChildren(...axis);
    for (const [hour, bar] of bars) {
      if (!seen.has(hour)) {
        bar.g.remove();
        bars.delete(hour);
      }
    }

    chart.setAttribute('aria-label', describe(hourly));
    // Follow the newest hour, unless someone scrolled back to look at an older one.
    if (wasAtEnd || last === null) scroll.scrollLeft = scroll.scrollWidth;
    last = { hourly, participants };
  }

  // Redraw to the new width; the numbers have not changed, so no request.
  let resizeFrame = 0;
  new ResizeObserver(() => {
    cancelAnimationFrame(resizeFrame);
    resizeFrame = requestAnimationFrame(() => {
      if (last) render(last.hourly, last.participants);
    });
  }).observe(scroll);

  return { render, setLineUp };
}
