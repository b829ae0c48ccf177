// The production team's history: every closed paredão, the last to close first, with its final
// result (totals, SHA-256 digest, exports) or "Apurando…" while its last votes are counted.
// Refreshed every few seconds, so a paredão that just closed turns final on screen.

import { requireSession, apiGet } from './session.js';
import { el } from './dom.js';
import { formatInteger, formatLongDateTime, formatPercentage, parseInstant } from './format.js';

const REFRESH_MS = 5000;

const list = document.getElementById('history');
const status = document.getElementById('history-status');
const loadError = document.getElementById('load-error');

const EXPORTS = [
  ['csv', 'hour', 'CSV por hora'],
  ['csv', 'minute', 'CSV por minuto'],
  ['json', 'hour', 'JSON por hora'],
  ['json', 'minute', 'JSON por minuto'],
  ['csv', 'total', 'CSV dos totais'],
];

function exportLinks(id) {
  return el('ul', { className: 'export-links', 'aria-label': 'Exportar o resultado' },
    ...EXPORTS.map(([format, granularity, label]) => el('li', {},
      el('a', {
        className: 'button button--secondary',
        href: `/api/paredoes/${encodeURIComponent(id)}/export?format=${format}&granularity=${granularity}`,
        download: `paredao-${id}-${granularity}.${format}`,
        dataset: { format, granularity },
      }, label))));
}

function totals(entry) {
  const total = Number(entry.total_votes) || 0;
  return el('ul', { className: 'history__totals' },
    ...(entry.participants || []).map((p) => el('li', { dataset: { participant: p.id } },
      el('span', {}, p.name),
      el('span', {},
        el('strong', { dataset: { role: 'votes' } }, formatInteger(p.votes)),
        ` votos · ${formatPercentage(total > 0 ? (Number(p.votes) / total) * 100 : 0)}`))));
}

function entryCard(entry) {
  const isFinal = entry.status === 'final';
  const closes = parseInstant(entry.closes_at);
  const headingId = `h-${entry.paredao_id}`;
  const frozen = parseInstant(entry.frozen_at);
  return el('li', { className: `panel final-result${isFinal ? ' is-final' : ''}`, dataset: { paredao: entry.paredao_id, status: entry.status } },
    el('div', { className: 'panel__header' },
      el('h2', { className: 'panel__title', id: headingId }, entry.title),
      el('span', { className: `badge badge--${isFinal ? 'closed' : 'scheduled'}` }, isFinal ? 'Resultado final' : 'Apurando…')),
    el('p', { className: 'panel__note' }, closes ? `Encerrado em ${formatLongDateTime(closes)}.` : ''),
    el('p', { className: 'final-result__status' },
      `${formatInteger(entry.total_votes)} ${Number(entry.total_votes) === 1 ? 'voto' : 'votos'}${isFinal ? '' : ' contados até agora'}.`),
    totals(entry),
    isFinal ? el('p', { className: 'final-result__label' }, 'Resumo SHA-256 (do CSV por hora):') : null,
    isFinal ? el('code', { className: 'digest', dataset: { role: 'digest' } }, entry.digest) : null,
    isFinal && frozen ? el('p', { className: 'panel__note' }, `Congelado em ${formatLongDateTime(frozen)}.`) : null,
    isFinal ? exportLinks(entry.paredao_id) : el('p', { className: 'panel__note' },
      'Os últimos votos aceitos antes do encerramento ainda estão sendo contados.'),
    el('p', {}, el('a', { href: `/painel.html?p=${encodeURIComponent(entry.paredao_id)}` }, 'Abrir no painel')));
}

let shownKey = '';

async function refresh() {
  if (document.hidden) return;
  try {
    const r = await apiGet('/api/history');
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const body = await r.json();
    const entries = Array.isArray(body.paredoes) ? body.paredoes : [];
    loadError.hidden = true;
    // Rebuilt only when something changed: a focused export link must not vanish under the keyboard.
    const key = JSON.stringify(entries);
    if (key === shownKey) return;
    shownKey = key;
    list.replaceChildren(...entries.map(entryCard));
    status.textContent = entries.length === 0
      ? 'Nenhum paredão encerrado ainda.'
      : `${entries.length} ${entries.length === 1 ? 'paredão encerrado' : 'paredões encerrados'}.`;
  } catch {
    loadError.textContent = 'Não foi possível carregar o histórico. Tentando de novo em instantes.';
    loadError.hidden = false;
  }
}

requireSession().then(() => {
  refresh();
  setInterval(refresh, REFRESH_MS);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) refresh(); });
});
