// Talks to the Paredão API (same origin) and turns every failure into words a viewer understands.
//
// Every failure becomes an ApiError, so the pages never have to look at fetch exceptions,
// status codes or response bodies themselves: they ask for the message that fits their context.

const READ_TIMEOUT_MS = 8000;
// A vote waits for the broker's confirm (up to 5 s server side); leave room for that and the network.
const VOTE_TIMEOUT_MS = 15000;

export class ApiError extends Error {
  /**
   * @param {'network'|'timeout'|'http'|'invalid_response'} kind
   * @param {{status?: number, code?: string|null, detail?: string, retryAfter?: number|null, cause?: unknown}} info
   */
  constructor(kind, { status = 0, code = null, detail = '', retryAfter = null, cause } = {}) {
    super(detail || `${kind} ${status}`.trim(), { cause });
    this.name = 'ApiError';
    this.kind = kind;
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }

  /** The API refused the vote's anti-robot payload (missing, malformed, expired, used, forged). */
  get isCaptchaError() {
    return typeof this.code === 'string' && this.code.startsWith('captcha_');
  }

  /** The API answered that this paredão does not exist (as opposed to the API not being there). */
  get isNotFound() {
    return this.status === 404 && (this.code === 'no_paredao' || this.code === 'unknown_paredao');
  }
}

/** Seconds to wait, from a Retry-After header that may be a number of seconds or an HTTP date. */
function parseRetryAfter(value) {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/**
 * Error bodies are JSON when the API wrote them, but nginx answers rate limits and outages with
 * its own HTML page, so a body that does not parse is normal and must not hide the status.
 */
function parseBody(text) {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

async function request(path, { method = 'GET', body, timeoutMs = READ_TIMEOUT_MS } = {}) {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);

  try {
    let response;
    let text;
    try {
      response = await fetch(path, {
        method,
        headers: body === undefined
          ? { accept: 'application/json' }
          : { accept: 'application/json', 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        // Percentages and totals change every second; a cached copy is always wrong.
        cache: 'no-store',
        credentials: 'same-origin',
        signal: controller.signal,
      });
      text = await response.text();
    } catch (cause) {
      throw new ApiError(timedOut ? 'timeout' : 'network', { cause });
    }

    const data = parseBody(text);
    if (!response.ok) {
      throw new ApiError('http', {
        status: response.status,
        code: data && typeof data.error === 'string' ? data.error : null,
        detail: data && typeof data.message === 'string' ? data.message : '',
        retryAfter: parseRetryAfter(response.headers.get('retry-after')),
      });
    }
    if (data === undefined || data === null || typeof data !== 'object') {
      // A 2xx that is not JSON means something other than the API answered (a misrouted proxy).
      throw new ApiError('invalid_response', { status: response.status });
    }
    return data;
  } finally {
    clearTimeout(timer);
  }
}

function paredaoPath(id) {
  return `/api/paredoes/${encodeURIComponent(id)}`;
}

export function getParedao(id) {
  return request(paredaoPath(id));
}

export function getResults(id) {
  return request(`${paredaoPath(id)}/results`);
}

export function getStats(id) {
  return request(`${paredaoPath(id)}/stats`);
}

/**
 * Sends one vote. `captcha` is the anti-robot widget's payload; without one the field is left out
 * rather than sent empty (and the API answers `captcha_missing`).
 */
export function postVote(paredaoId, participantId, captcha) {
  const body = { participant_id: participantId };
  if (captcha) body.captcha = captcha;
  return request(`${paredaoPath(paredaoId)}/votes`, { method: 'POST', body, timeoutMs: VOTE_TIMEOUT_MS });
}

/** The query parameter `p` names the paredão; without it, the one the API calls current. */
export function paredaoIdFromLocation() {
  const id = new URLSearchParams(window.location.search).get('p');
  return id && id.trim() ? id.trim() : 'current';
}

const NETWORK_MESSAGE = 'Sem conexão com o servidor. Verifique sua internet e tente novamente.';
const TIMEOUT_MESSAGE = 'O servidor demorou demais para responder. Tente novamente em instantes.';

/**
 * What to tell the viewer when a vote was not accepted.
 * `opensAt` (a Date) tells "not open yet" from "already closed", which share one error code.
 */
export function voteErrorMessage(error, { opensAt } = {}) {
  if (!(error instanceof ApiError)) return 'Algo deu errado ao enviar seu voto. Tente novamente.';
  if (error.kind === 'network') return NETWORK_MESSAGE;
  if (error.kind === 'timeout') {
    // Nothing tells whether that vote arrived; votes are unlimited, so voting again is harmless.
    return 'O servidor demorou demais para responder. Tente votar novamente.';
  }

  switch (error.code) {
    case 'paredao_not_open':
      return opensAt instanceof Date && opensAt.getTime() > Date.now()
        ? 'A votação ainda não começou.'
        : 'A votação deste paredão está encerrada.';
    case 'unknown_participant':
      return 'Este participante não está neste paredão. Atualize a página e escolha novamente.';
    case 'unknown_paredao':
    case 'no_paredao':
      return 'Este paredão não foi encontrado. Atualize a página.';
    case 'overloaded':
      // Refused before it was read (the page has already retried a few times by then).
      return 'A votação está congestionada agora. Nada foi contado — tente novamente em instantes.';
    case 'captcha_missing':
    case 'captcha_malformed':
      return 'Resolva a verificação anti-robô antes de votar.';
    case 'captcha_expired':
      return 'A verificação expirou. Ela foi refeita — tente votar de novo.';
    case 'captcha_already_used':
    case 'captcha_bad_signature':
    case 'captcha_wrong_paredao':
      return 'A verificação não é válida. Ela foi refeita — tente votar de novo.';
    default:
      break;
  }

  if (error.isCaptchaError) {
    // A refusal this page does not know yet: the widget solves a new challenge all the same.
    return 'A verificação não é válida. Ela foi refeita — tente votar de novo.';
  }
  if (error.status === 429) {
    return 'Muitos votos em pouco tempo. Aguarde alguns segundos e tente de novo.';
  }
  if (error.status >= 500 || error.kind === 'invalid_response') {
    // After a 5xx the vote may have got through, and resending it is safe: it counts once.
    return 'Não conseguimos confirmar seu voto agora. Tente novamente — ele nunca é contado duas vezes.';
  }
  // 400/413/415/422: the request itself was refused; a fresh page sends a well-formed one.
  return 'Não foi possível enviar seu voto. Atualize a página e tente novamente.';
}

/** What to tell the viewer when a page could not load its data. */
export function loadErrorMessage(error) {
  if (!(error instanceof ApiError)) return 'Algo deu errado ao carregar a página. Tente novamente.';
  if (error.kind === 'network') return NETWORK_MESSAGE;
  if (error.kind === 'timeout') return TIMEOUT_MESSAGE;
  if (error.code === 'no_paredao') return 'Nenhum paredão aberto no momento.';
  if (error.code === 'unknown_paredao') return 'Paredão não encontrado.';
  if (error.status === 429) return 'Muitos acessos em pouco tempo. Aguarde alguns segundos e tente de novo.';
  return 'O serviço de votação está indisponível no momento. Tente novamente em instantes.';
}
