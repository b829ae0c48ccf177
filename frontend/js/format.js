// pt-BR formatting shared by the pages, built once: Intl formatters are costly to create and the
// results and production pages format numbers several times a second.

const integer = new Intl.NumberFormat('pt-BR', { maximumFractionDigits: 0 });
const twoDecimals = new Intl.NumberFormat('pt-BR', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const compact = new Intl.NumberFormat('pt-BR', { notation: 'compact', maximumFractionDigits: 1 });
const clock = new Intl.DateTimeFormat('pt-BR', { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const hourMinute = new Intl.DateTimeFormat('pt-BR', { hour: '2-digit', minute: '2-digit' });
const dayMonth = new Intl.DateTimeFormat('pt-BR', { day: '2-digit', month: '2-digit' });
const longDateTime = new Intl.DateTimeFormat('pt-BR', { dateStyle: 'long', timeStyle: 'short' });

/** 123839 → "123.839" */
export function formatInteger(n) {
  return integer.format(Number(n) || 0);
}

/** 52.31 → "52,31%" */
export function formatPercentage(n) {
  return `${twoDecimals.format(Number(n) || 0)}%`;
}

/** 1200 → "1,2 mil": axis labels have little room. */
export function formatCompact(n) {
  return compact.format(n);
}

/** An ISO instant → "17:19:40" in the viewer's time zone. */
export function formatClock(date) {
  return clock.format(date);
}

/** An hour bucket → "17:00" in the viewer's time zone. */
export function formatHour(date) {
  return hourMinute.format(date);
}

/** → "22/11" */
export function formatDayMonth(date) {
  return dayMonth.format(date);
}

/** → "22 de novembro de 2026 às 20:00" */
export function formatLongDateTime(date) {
  return longDateTime.format(date);
}

/** Parses an ISO instant from the API; null when absent or unreadable. */
export function parseInstant(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/**
 * Fills a <time> with "Atualizado às HH:MM:SS". Without an instant (no vote counted yet) it says
 * so instead of showing a time that would look like a stale refresh.
 */
export function showUpdatedAt(timeElement, isoInstant) {
  const date = parseInstant(isoInstant);
  if (date) {
    timeElement.dateTime = isoInstant;
    timeElement.textContent = `Atualizado às ${formatClock(date)}`;
  } else {
    timeElement.removeAttribute('datetime');
    timeElement.textContent = 'Aguardando os primeiros votos';
  }
}
