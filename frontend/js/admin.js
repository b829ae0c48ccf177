// The admin area: the production team creates, edits, opens and closes paredões, uploads the
// participants' photos, and follows the selected paredão's totals live (every 2 s) and, once
// closed, its frozen final result and digest.
//
// Every request goes through session.js (the session cookie, the CSRF token, 401 → login).

import { createAvatar } from './avatar.js';
import { el } from './dom.js';
import { apiGet, apiSend, requireSession } from './session.js';

const LIVE_MS = 2000;

const STATE_LABELS = { scheduled: 'Agendado', open: 'Aberto', closed: 'Encerrado' };

const ERROR_MESSAGES = {
  paredao_overlap: 'O horário coincide com o de outro paredão: só um paredão pode estar aberto por vez.',
  paredao_exists: 'Já existe um paredão com este identificador.',
  participants_locked: 'Os participantes e as fotos não mudam depois que a votação abre.',
  paredao_already_open: 'Um paredão aberto mantém a hora de abertura. Para terminar a votação, encerre-o.',
  paredao_already_closed: 'Um paredão encerrado não muda mais.',
  paredao_not_scheduled: 'Só um paredão agendado pode ser aberto.',
  paredao_not_open: 'Só um paredão aberto pode ser encerrado.',
  invalid_schedule: 'O encerramento precisa ser no futuro.',
  invalid_paredao: 'Confira os dados: título, dois ou mais participantes com nomes diferentes, e o encerramento depois da abertura.',
  photo_too_large: 'A foto é grande demais (até 5 MB).',
  unsupported_image: 'Envie a foto em JPEG, PNG ou WebP.',
  invalid_image: 'O arquivo não é uma imagem válida.',
  forbidden: 'Sua conta não tem permissão para isso (é preciso ser admin).',
  csrf_failed: 'Sua sessão expirou nesta página. Recarregue e tente de novo.',
  unavailable: 'O serviço está indisponível agora. Nada foi alterado; tente de novo.',
};

const statusBox = document.getElementById('admin-status');
const list = document.getElementById('paredao-list');
const newButton = document.getElementById('new-paredao');
const selected = document.getElementById('selected');
const selectedHeading = document.getElementById('selected-heading');
const selectedState = document.getElementById('selected-state');
const openNow = document.getElementById('open-now');
const closeNow = document.getElementById('close-now');
const live = document.getElementById('live');
const liveTotal = document.getElementById('live-total');
const liveParticipants = document.getElementById('live-participants');
const liveUpdated = document.getElementById('live-updated');
const finalBox = document.getElementById('final');
const finalStatus = document.getElementById('final-status');
const finalDigest = document.getElementById('final-digest');

const form = document.getElementById('paredao-form');
const formHeading = document.getElementById('form-heading');
const titleInput = document.getElementById('f-title');
const participantsSet = document.getElementById('f-participants-set');
const participantsLocked = document.getElementById('f-participants-locked');
const participantsList = document.getElementById('f-participants');
const addParticipant = document.getElementById('f-add-participant');
const opensInput = document.getElementById('f-opens');
const closesInput = document.getElementById('f-closes');
const visibilityInput = document.getElementById('f-visibility');
const submitButton = document.getElementById('f-submit');
const cancelButton = document.getElementById('f-cancel');
const formStatus = document.getElementById('form-status');

/** The paredão being edited (null: the form creates a new one). */
let editing = null;
/** The paredão shown in the "selected" panel. */
let current = null;
let liveTimer = 0;
let rowSeq = 0;

function setStatus(box, message, { error = false } = {}) {
  box.classList.toggle('is-error', error);
  box.classList.toggle('is-warning', false);
  box.textContent = message;
}

/** The words for a refusal: ours for the codes we know, else the code itself. */
async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // nginx answers some errors without JSON.
  }
  const code = body && body.error;
  const known = code && ERROR_MESSAGES[code];
  if (code === 'paredao_overlap' && body.message) {
    const other = /'([a-z0-9_-]+)'/.exec(body.message);
    if (other) return `${known} (conflito com “${other[1]}”)`;
  }
  return known || `Não foi possível concluir (${code || `HTTP ${response.status}`}).`;
}

function pad(n) {
  return String(n).padStart(2, '0');
}

/** ISO instant → the value of a datetime-local input, in the browser's time zone. */
function toLocalInput(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A datetime-local value (local time) → an ISO instant, or null. */
function fromLocalInput(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

const dateFormat = new Intl.DateTimeFormat('pt-BR', { dateStyle: 'short', timeStyle: 'short' });
const numberFormat = new Intl.NumberFormat('pt-BR');

function when(p) {
  return `${dateFormat.format(new Date(p.opens_at))} → ${dateFormat.format(new Date(p.closes_at))}`;
}

function badge(state) {
  return el('span', { className: `badge badge--${state || 'unknown'}` }, STATE_LABELS[state] || state || '—');
}

// ------------------------------------------------------------------------------------------
// The list
// ------------------------------------------------------------------------------------------

async function loadList() {
  const r = await apiGet('/api/admin/paredoes');
  list.removeAttribute('aria-busy');
  if (!r.ok) {
    setStatus(statusBox, await failure(r), { error: true });
    return [];
  }
  const paredoes = await r.json();
  list.replaceChildren(
    ...paredoes.map((p) =>
      el('li', { className: `admin-list__item${current && current.id === p.id ? ' is-selected' : ''}`, dataset: { paredao: p.id } },
        el('span', { className: 'admin-list__title' }, p.title),
        badge(p.state),
        el('span', { className: 'admin-list__when' }, when(p)),
        el('button', { className: 'button button--secondary', type: 'button', onclick: () => select(p.id) },
          p.state === 'closed' ? 'Ver' : 'Abrir detalhes'))),
  );
  if (paredoes.length === 0) list.append(el('li', { className: 'panel__note' }, 'Nenhum paredão ainda. Crie o primeiro abaixo.'));
  return paredoes;
}

// ------------------------------------------------------------------------------------------
// The selected paredão: open/close, live totals, final result
// ------------------------------------------------------------------------------------------

async function select(id) {
  const r = await apiGet(`/api/admin/paredoes/${encodeURIComponent(id)}`);
  if (!r.ok) {
    setStatus(statusBox, await failure(r), { error: true });
    return;
  }
  show(await r.json());
  edit(current);
  await loadList();
  selected.scrollIntoView({ block: 'start' });
}

function show(p) {
  current = p;
  selected.hidden = false;
  selectedHeading.textContent = p.title;
  selectedState.className = `badge badge--${p.state}`;
  selectedState.textContent = STATE_LABELS[p.state] || p.state;
  openNow.hidden = p.state !== 'scheduled';
  closeNow.hidden = p.state !== 'open';
  live.hidden = p.state === 'scheduled';
  finalBox.hidden = p.state !== 'closed';
  clearTimeout(liveTimer);
  if (p.state !== 'scheduled') refreshLive();
  if (p.state === 'closed') loadFinal();
}

async function refreshLive() {
  clearTimeout(liveTimer);
  if (!current || current.state === 'scheduled') return;
  const id = current.id;
  try {
    const r = await apiGet(`/api/paredoes/${encodeURIComponent(id)}/stats`);
    if (r.ok && current && current.id === id) renderLive(await r.json());
  } catch {
    liveUpdated.textContent = 'Falha ao atualizar — tentando de novo';
  }
  // The closing moment passes on its own too: re-read the state when it is due.
  if (current && current.state === 'open' && Date.parse(current.closes_at) <= Date.now()) {
    select(current.id);
    return;
  }
  liveTimer = setTimeout(refreshLive, LIVE_MS);
}

function renderLive(stats) {
  const total = Number(stats.total_votes) || 0;
  liveTotal.textContent = numberFormat.format(total);
  const photos = new Map((current?.participants || []).map((p) => [p.id, p]));
  liveParticipants.replaceChildren(
    ...(stats.participants || []).map((p) => {
      const share = total > 0 ? (100 * p.votes) / total : 0;
      return el('li', { className: 'tally__item', dataset: { participant: p.id } },
        el('div', { className: 'tally__head' },
          el('span', { className: 'tally__who' }, createAvatar(photos.get(p.id) || p, 'sm'), el('span', { className: 'tally__name' }, p.name)),
          el('span', { className: 'tally__numbers' },
            el('span', { className: 'tally__votes', dataset: { role: 'votes' } }, numberFormat.format(p.votes)),
            ' · ',
            el('span', { className: 'tally__percentage' }, `${share.toLocaleString('pt-BR', { maximumFractionDigits: 2 })}%`))));
    }),
  );
  liveUpdated.textContent = stats.updated_at ? `Atualizado às ${new Date(stats.updated_at).toLocaleTimeString('pt-BR')}` : '';
}

async function loadFinal() {
  finalDigest.textContent = '';
  finalStatus.textContent = 'Apurando… (os votos aceitos até o encerramento ainda estão sendo contados)';
  const id = current.id;
  // The statistics say when the result is frozen (`final`); only then is it asked for, so a
  // paredão still draining costs no refused request (and no console error) every few seconds.
  let r = null;
  try {
    const s = await apiGet(`/api/paredoes/${encodeURIComponent(id)}/stats`);
    const frozen = s.ok && (await s.json()).final;
    if (frozen) r = await apiGet(`/api/paredoes/${encodeURIComponent(id)}/final`);
  } catch {
    r = null;
  }
  if (!current || current.id !== id) return;
  if (r && r.ok) {
    const result = await r.json();
    const total = result.total_votes ?? (result.participants || []).reduce((s, p) => s + (Number(p.votes) || 0), 0);
    finalStatus.textContent = `Resultado final congelado: ${numberFormat.format(total)} votos.`;
    finalDigest.textContent = result.digest || '';
    return;
  }
  // Not frozen yet (draining), or the request failed: ask again shortly.
  setTimeout(() => {
    if (current && current.id === id && current.state === 'closed') loadFinal();
  }, LIVE_MS);
}

async function lifecycle(action) {
  if (!current) return;
  const question = action === 'open'
    ? `Abrir agora a votação de “${current.title}”? O público poderá votar imediatamente.`
    : `Encerrar agora a votação de “${current.title}”? Votos depois disso serão recusados.`;
  if (!window.confirm(question)) return;
  const button = action === 'open' ? openNow : closeNow;
  button.disabled = true;
  try {
    const r = await apiSend('POST', `/api/admin/paredoes/${encodeURIComponent(current.id)}/${action}`);
    if (!r.ok) {
      setStatus(statusBox, await failure(r), { error: true });
      return;
    }
    const p = await r.json();
    setStatus(statusBox, action === 'open' ? `“${p.title}” está aberto.` : `“${p.title}” foi encerrado.`);
    show(p);
    edit(p);
    await loadList();
  } finally {
    button.disabled = false;
  }
}

// ------------------------------------------------------------------------------------------
// The form: create or edit, with the photos
// ------------------------------------------------------------------------------------------

function participantRow(participant = {}) {
  rowSeq += 1;
  const nameId = `f-name-${rowSeq}`;
  const photoId = `f-photo-${rowSeq}`;
  const avatar = el('span', { className: 'admin-participant__avatar' }, createAvatar({ id: participant.id || '', name: participant.name || '', photo_url: participant.photo_url }, 'md'));
  const name = el('input', { id: nameId, type: 'text', required: true, maxLength: 80, value: participant.name || '', autocomplete: 'off' });
  const photo = el('input', { id: photoId, type: 'file', accept: 'image/jpeg,image/png,image/webp' });
  const li = el('li', { className: 'admin-participant', dataset: { id: participant.id || '' } },
    avatar,
    el('div', { className: 'admin-participant__fields' },
      el('label', { htmlFor: nameId }, 'Nome'),
      name,
      el('label', { htmlFor: photoId }, 'Foto (JPEG, PNG ou WebP, até 5 MB)'),
      photo,
      el('button', { className: 'button button--secondary admin-participant__remove', type: 'button', onclick: () => {
        li.remove();
        participantsList.querySelector('input[type="text"]')?.focus();
      } }, 'Remover')));
  name.addEventListener('input', () => {
    if (!photo.files?.length && !participant.photo_url) avatar.replaceChildren(createAvatar({ id: li.dataset.id || name.value, name: name.value }, 'md'));
  });
  photo.addEventListener('change', () => {
    const file = photo.files?.[0];
    if (!file) return;
    // A data: URL, which the pages' CSP allows for images (a blob: URL it does not).
    const reader = new FileReader();
    reader.addEventListener('load', () => {
      avatar.replaceChildren(el('img', { className: 'avatar avatar--md avatar--photo', alt: '', src: reader.result }));
    });
    reader.readAsDataURL(file);
  });
  return li;
}

function resetForm() {
  editing = null;
  formHeading.textContent = 'Novo paredão';
  submitButton.textContent = 'Criar paredão';
  cancelButton.hidden = true;
  form.reset();
  setFormDisabled(false);
  participantsSet.disabled = false;
  participantsLocked.hidden = true;
  participantsList.replaceChildren(participantRow(), participantRow());
  const start = new Date(Date.now() + 60 * 60 * 1000);
  start.setMinutes(0, 0, 0);
  opensInput.value = toLocalInput(start.toISOString());
  closesInput.value = toLocalInput(new Date(start.getTime() + 2 * 60 * 60 * 1000).toISOString());
  setStatus(formStatus, '');
}

function setFormDisabled(disabled) {
  for (const control of form.querySelectorAll('input, select, button')) control.disabled = disabled;
}

function edit(p) {
  editing = p;
  formHeading.textContent = `Editar “${p.title}”`;
  submitButton.textContent = 'Salvar alterações';
  cancelButton.hidden = false;
  titleInput.value = p.title;
  participantsList.replaceChildren(...p.participants.map((x) => participantRow(x)));
  opensInput.value = toLocalInput(p.opens_at);
  closesInput.value = toLocalInput(p.closes_at);
  visibilityInput.value = p.results_visibility || 'live';
  setFormDisabled(p.state === 'closed');
  cancelButton.disabled = false;
  // Once opened, the participants (and photos) are fixed; the opening too.
  const locked = p.state !== 'scheduled';
  participantsSet.disabled = locked;
  participantsLocked.hidden = !locked;
  opensInput.disabled = p.state !== 'scheduled';
  setStatus(formStatus, p.state === 'closed' ? 'Um paredão encerrado não muda mais.' : '');
}

function readParticipants() {
  return Array.from(participantsList.children).map((li) => {
    const name = li.querySelector('input[type="text"]').value.trim();
    const file = li.querySelector('input[type="file"]').files?.[0] || null;
    const out = { name };
    if (li.dataset.id) out.id = li.dataset.id;
    return { body: out, file };
  });
}

async function uploadPhotos(paredao, rows) {
  const problems = [];
  for (let i = 0; i < rows.length; i += 1) {
    const { file } = rows[i];
    const participant = paredao.participants[i];
    if (!file || !participant) continue;
    const r = await apiSend('PUT', `/api/admin/paredoes/${encodeURIComponent(paredao.id)}/participants/${encodeURIComponent(participant.id)}/photo`, file);
    if (r.ok) {
      paredao = await r.json();
    } else {
      problems.push(`${participant.name}: ${await failure(r)}`);
    }
  }
  return { paredao, problems };
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const rows = readParticipants();
  const opensAt = fromLocalInput(opensInput.value);
  const closesAt = fromLocalInput(closesInput.value);
  if (!titleInput.value.trim()) {
    setStatus(formStatus, 'Dê um título ao paredão.', { error: true });
    titleInput.focus();
    return;
  }
  if (!editing && rows.filter((r) => r.body.name).length < 2) {
    setStatus(formStatus, 'Um paredão precisa de pelo menos dois participantes com nome.', { error: true });
    return;
  }
  if (!opensAt || !closesAt) {
    setStatus(formStatus, 'Informe a abertura e o encerramento.', { error: true });
    return;
  }
  const body = { title: titleInput.value.trim(), closes_at: closesAt, results_visibility: visibilityInput.value };
  const scheduled = !editing || editing.state === 'scheduled';
  if (scheduled) {
    body.participants = rows.map((r) => r.body);
    body.opens_at = opensAt;
  }
  submitButton.disabled = true;
  setStatus(formStatus, 'Salvando…');
  try {
    const r = editing
      ? await apiSend('PUT', `/api/admin/paredoes/${encodeURIComponent(editing.id)}`, body)
      : await apiSend('POST', '/api/admin/paredoes', body);
    if (!r.ok) {
      setStatus(formStatus, await failure(r), { error: true });
      return;
    }
    let saved = await r.json();
    let problems = [];
    if (scheduled) ({ paredao: saved, problems } = await uploadPhotos(saved, rows));
    setStatus(statusBox, editing ? `“${saved.title}” foi salvo.` : `“${saved.title}” foi criado.`);
    if (problems.length) setStatus(formStatus, `Salvo, mas algumas fotos não foram aceitas: ${problems.join(' ')}`, { error: true });
    else setStatus(formStatus, '');
    show(saved);
    edit(saved);
    await loadList();
  } finally {
    submitButton.disabled = editing?.state === 'closed';
  }
});

addParticipant.addEventListener('click', () => {
  const row = participantRow();
  participantsList.append(row);
  row.querySelector('input[type="text"]').focus();
});
cancelButton.addEventListener('click', resetForm);
newButton.addEventListener('click', () => {
  resetForm();
  titleInput.focus();
});
openNow.addEventListener('click', () => lifecycle('open'));
closeNow.addEventListener('click', () => lifecycle('close'));
document.addEventListener('visibilitychange', () => {
  if (document.hidden) clearTimeout(liveTimer);
  else if (current && current.state !== 'scheduled') refreshLive();
});

const session = await requireSession();
resetForm();
// Producers watch; only admins change anything (the API says so too: 403).
if (session.role !== 'admin') {
  form.closest('section').hidden = true;
  newButton.hidden = true;
  for (const b of [openNow, closeNow]) b.remove();
}
loadList();
