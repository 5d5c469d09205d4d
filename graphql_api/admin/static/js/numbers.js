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
