// Building the pages' elements in one expression each: a tag, its attributes, its children.
//
// Participant names and titles come from the API, so text is only ever set as text: a string
// child becomes a text node (as textContent would make it), and no markup is ever parsed.

const SVG_NS = 'http://www.w3.org/2000/svg';

// Properties that parse the string they are given as markup.
const MARKUP = new Set(['innerHTML', 'outerHTML']);

function appendChildren(element, children) {
  // null, undefined and false stand for "no child here": `el('div', {}, action || null)`.
  element.append(...children.filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

/**
 * An HTML element: `el('span', { className: 'tally__votes', dataset: { role: 'votes' } }, '12')`.
 * `dataset` is copied into data-* attributes; a key the element has as a property (className,
 * htmlFor, type, hidden, scope, textContent…) is set as that property; any other key (aria-*,
 * role) is set as an attribute.
 */
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (MARKUP.has(key)) throw new Error(`el(): ${key} parses markup; pass the text as a child`);
    if (key === 'dataset') Object.assign(element.dataset, value);
    else if (key in element) element[key] = value;
    else element.setAttribute(key, String(value));
  }
  return appendChildren(element, children);
}

/** An SVG element: `svg('rect', { class: 'series-0', x: 4, width: 20 })`; every key is an attribute. */
export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return appendChildren(element, children);
}
