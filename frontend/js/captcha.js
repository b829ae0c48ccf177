// The anti-robot step of the vote page: the ALTCHA widget fetches a proof-of-work challenge from
// the API, solves it in a worker as soon as the page loads, and hands back the payload a vote
// must carry. The payload is single use, so every vote needs a fresh one.
//
// The widget comes from `npm ci` in frontend/, served by nginx under /vendor/altcha/. It is the
// build from the package's external/ folder: its CSS is a file (linked by the page) instead of an
// injected <style>, and it bundles no worker (the default build starts its worker from a blob:
// URL); we register the package's SHA-256 worker, a same-origin file. Both keep the pages' CSP
// strict.

const WIDGET_SCRIPT = '/vendor/altcha/external/altcha.min.js';
const PORTUGUESE = '/vendor/altcha/i18n/pt-br.js';
const SHA_WORKER = '/vendor/altcha/workers/sha.js';

/** The widget's state once a payload is ready (its `statechange` event tells it in `detail.state`). */
const VERIFIED = 'verified';

let loading = null;
// Told when the API says no captcha is needed (it answers the challenge with 404 captcha_off).
let captchaOff = () => {};

/** Loads the widget once; rejects when its files are not there (frontend/ not `npm ci`-ed). */
function loadWidget() {
  loading ??= (async () => {
    await import(WIDGET_SCRIPT);
    await import(PORTUGUESE);
    // The external build solves nothing until told which worker computes which algorithm. The
    // API's challenges are SHA-256 (ALTCHA v1).
    globalThis.$altcha.algorithms.set('SHA-256', () => new Worker(SHA_WORKER));
    globalThis.$altcha.defaults.set({
      fetch: fetchFresh,
      // Our server reads none of it: no need to record the viewer's pointer moves.
      humanInteractionSignature: false,
      // The step's own heading and text say what this is.
      hideFooter: true,
    });
  })();
  return loading;
}

// Challenges must never come from the HTTP cache: each one is valid for one vote only.
async function fetchFresh(url, init = {}) {
  const response = await fetch(url, { ...init, cache: 'no-store', headers: { accept: 'application/json', ...init.headers } });
  // A stack run with captchas off (for load tests) has no challenges and takes votes without one.
  if (response.status === 404) {
    const body = await response.clone().json().catch(() => null);
    if (body?.error === 'captcha_off') captchaOff();
  }
  return response;
}

/**
 * Mounts the widget in `container` and keeps `onChange` told whether a vote can be sent (a payload
 * is ready, or the API needs none). Returns the handle the vote form uses; until the widget has
 * loaded, it reports "not ready".
 */
export function createCaptcha(container, { challengeUrl, onChange, onLoadError, onNotRequired }) {
  let widget = null;
  let state = 'unverified';
  let payload = null;
  let required = true;

  const report = () => onChange(!required || (state === VERIFIED && payload !== null));

  captchaOff = () => {
    required = false;
    report();
    onNotRequired?.();
  };

  const ready = loadWidget().then(() => {
    widget = document.createElement('altcha-widget');
    // Solve right away: by the time the viewer has chosen, the vote is ready to go.
    widget.setAttribute('auto', 'onload');
    widget.setAttribute('challenge', challengeUrl);
    widget.setAttribute('language', 'pt-br');
    widget.setAttribute('name', 'captcha');
    widget.addEventListener('statechange', (event) => {
      state = event.detail.state;
      payload = state === VERIFIED ? event.detail.payload || null : null;
      report();
    });
    // A challenge lives a few minutes; a page left open solves a new one instead of showing a
    // stale tick.
    widget.addEventListener('expired', () => refresh());
    container.replaceChildren(widget);
  }, (error) => {
    onLoadError?.(error);
  });

  /** Drops the current payload and solves a new challenge. */
  function refresh() {
    if (!required) return;
    payload = null;
    state = 'unverified';
    report();
    ready.then(() => {
      if (!widget) return;
      widget.reset();
      widget.verify();
    });
  }

  return {
    /** The payload to send with the next vote, or null while there is none. */
    get payload() {
      return state === VERIFIED ? payload : null;
    },
    refresh,
    /** Points the widget at another paredão's challenges (a new paredão opened on this page). */
    setChallengeUrl(url) {
      ready.then(() => {
        if (!widget || widget.getAttribute('challenge') === url) return;
        widget.setAttribute('challenge', url);
        refresh();
      });
    },
  };
}
