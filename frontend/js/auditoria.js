// The audit trail for the production team: who did what, to what, when and from where, newest
// first (GET /api/admin/audit).

import { el } from './dom.js';
import { apiGet, requireSession } from './session.js';

const LIMIT = 200;

const ACTION_LABELS = {
  'auth.login': 'Entrou',
  'auth.logout': 'Saiu',
  'auth.login_failed': 'Falha ao entrar',
  'account.create': 'Criou conta',
  'account.update': 'Alterou conta',
  'account.delete': 'Removeu conta',
  'fault.set': 'Ajustou a injeção de falhas',
  'paredao.create': 'Criou paredão',
  'paredao.update': 'Editou paredão',
  'paredao.open': 'Abriu votação',
  'paredao.close': 'Encerrou votação',
  'participant.photo': 'Enviou foto',
};

const ROLE_LABELS = { admin: 'admin', producer: 'produção' };

const table = document.getElementById('audit');
const body = table.querySelector('tbody');
const empty = document.getElementById('audit-empty');
const loadError = document.getElementById('load-error');
const reload = document.getElementById('reload');

const when = new Intl.DateTimeFormat('pt-BR', { dateStyle: 'short', timeStyle: 'medium' });

function detailText(detail) {
  if (detail === null || detail === undefined) return '';
  if (typeof detail !== 'object') return String(detail);
  return Object.entries(detail)
    .filter(([, value]) => value !== null && value !== undefined)
    .map(([key, value]) => `${key}: ${typeof value === 'object' ? JSON.stringify(value) : value}`)
    .join(', ');
}

function row(entry) {
  const at = new Date(entry.at);
  const who = entry.role ? `${entry.who} (${ROLE_LABELS[entry.role] || entry.role})` : entry.who;
  return el('tr', {},
    el('td', {}, el('time', { dateTime: entry.at }, Number.isNaN(at.getTime()) ? entry.at : when.format(at))),
    el('td', {}, who),
    el('td', {}, ACTION_LABELS[entry.action] || entry.action, ' ', el('code', {}, entry.action)),
    el('td', {}, entry.target || '—'),
    el('td', {}, el('code', {}, detailText(entry.detail))),
    el('td', {}, entry.address),
  );
}

async function load() {
  table.setAttribute('aria-busy', 'true');
  reload.disabled = true;
  try {
    const response = await apiGet(`/api/admin/audit?limit=${LIMIT}`);
    if (!response.ok) throw new Error(String(response.status));
    const entries = await response.json();
    body.replaceChildren(...entries.map(row));
    empty.hidden = entries.length > 0;
    loadError.hidden = true;
  } catch {
    loadError.textContent = 'Não foi possível carregar o registro agora. Tente novamente em instantes.';
    loadError.hidden = false;
  } finally {
    table.setAttribute('aria-busy', 'false');
    reload.disabled = false;
  }
}

reload.addEventListener('click', load);
requireSession().then(load);
