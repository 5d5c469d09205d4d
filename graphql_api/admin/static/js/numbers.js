// Counts as the operator's locale writes them: "20,000" (en), "20 000" (ru).

const counts = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

export function formatCount(n) {
  return counts.format(n);
}

// "1 client", "20,000 clients".
export function countOf(n, one, many = `${one}s`) {
  return `${formatCount(n)} ${n === 1 ? one : many}`;
}

// "26–50 of 1,204": the rows a page of a list shows.
export function rangeOf(first, last, total) {
  return `${formatCount(first)}–${formatCount(last)} of ${formatCount(total)}`;
}

const rates = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

// "12.5": a rate, one decimal at most.
export function formatRate(n) {
  return rates.format(n);
}

// "45 s", "12 min", "3 h": a length of time, rounded to what reads well.
export function formatDuration(ms) {
  const seconds = Math.round(ms / 1000);
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${formatCount(Math.round(seconds / 3600))} h`;
}
