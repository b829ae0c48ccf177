// Participant pictures: the photo when there is one, otherwise a circle with the initials.
// The colour comes from the participant id, so a participant keeps the same colour on every page
// and every refresh without the API having to send one.

import { el } from './dom.js';

// Must match the .avatar--c{n} classes in site.css (all readable with white initials).
const PALETTE_SIZE = 10;

/** FNV-1a: tiny, stable across browsers, and spreads similar ids ("ana", "ana2") apart. */
function hash(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** "Ana Clara" → "AC", "Bruno" → "B", "" → "?" */
export function initials(name) {
  const words = String(name || '').trim().split(/\s+/).filter(Boolean);
  if (words.length === 0) return '?';
  const first = Array.from(words[0])[0];
  const last = words.length > 1 ? Array.from(words[words.length - 1])[0] : '';
  return (first + last).toLocaleUpperCase('pt-BR');
}

function initialsAvatar(participant, className) {
  const colour = `avatar--c${hash(participant.id || participant.name || '') % PALETTE_SIZE}`;
  return el('span', { className: `${className} avatar--initials ${colour}` },
    el('span', { className: 'avatar__initials' }, initials(participant.name)));
}

/**
 * An avatar element for `{id, name, photo_url?}`. It is decorative: the name is always written
 * next to it, so screen readers should not read it twice.
 * @param {string} size one of 'sm', 'md', 'lg' (see .avatar--* in site.css)
 */
export function createAvatar(participant, size = 'md') {
  const className = `avatar avatar--${size}`;
  const fallback = initialsAvatar(participant, className);
  fallback.setAttribute('aria-hidden', 'true');
  if (!participant.photo_url) return fallback;

  const img = el('img', { className: `${className} avatar--photo`, alt: '', decoding: 'async', src: participant.photo_url });
  // A missing photo (or one on another host, which the CSP blocks) must not leave a broken image.
  img.addEventListener('error', () => img.replaceWith(fallback), { once: true });
  return img;
}
