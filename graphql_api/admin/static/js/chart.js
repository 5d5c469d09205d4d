// Inline SVG charts: counts by status as bars, and progress over time.
const SVG = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, value);
  if (text !== undefined) el.textContent = text;
  return el;
}

export const STATUSES = ["pending", "sent", "failed", "expired", "cancelled"];

export function statusBars(stats) {
  const width = 520;
  const rowHeight = 30;
  const labelWidth = 90;
  const valueWidth = 70;
  const height = STATUSES.length * rowHeight + 10;
  const scale = Math.max(stats.total, 1);
  const svg = s("svg", {
    class: "chart-bars",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `Messages by status: ${STATUSES.map((k) => `${k} ${stats[k]}`).join(", ")}`,
  });
  const barSpace = width - labelWidth - valueWidth;
  STATUSES.forEach((key, i) => {
    const y = 5 + i * rowHeight;
    svg.append(s("text", { x: labelWidth - 10, y: y + 19, "text-anchor": "end", class: "chart-label" }, key));
    svg.append(s("rect", { x: labelWidth, y: y + 4, width: barSpace, height: 20, rx: 3, class: "chart-track" }));
    const bar = s("rect", {
      x: labelWidth,
      y: y + 4,
      width: Math.max((barSpace * stats[key]) / scale, stats[key] ? 2 : 0),
      height: 20,
      rx: 3,
      class: `chart-bar fill-${key}`,
      "data-status": key,
    });
    svg.append(bar);
    svg.append(s("text", { x: labelWidth + barSpace + 8, y: y + 19, class: "chart-value", "data-count": key }, String(stats[key])));
  });
  return svg;
}

// Messages done (not pending) over time, from the events seen on this page.
export function progressLine(points) {
  const width = 520;
  const height = 120;
  const pad = 28;
  const svg = s("svg", { class: "chart-line", viewBox: `0 0 ${width} ${height}`, role: "img" });
  if (points.length < 2) {
    svg.setAttribute("aria-label", "Progress over time: waiting for changes");
    svg.append(s("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "chart-empty" }, "Progress over time appears as messages go out"));
    return svg;
  }
  const t0 = points[0].t;
  const span = Math.max(points[points.length - 1].t - t0, 1);
  const top = Math.max(...points.map((p) => p.total), 1);
  const x = (t) => pad + ((width - 2 * pad) * (t - t0)) / span;
  const y = (v) => height - pad + 8 - ((height - pad - 8) * v) / top;
  svg.setAttribute("aria-label", `Progress over time: ${points[points.length - 1].done} of ${top} done`);
  svg.append(s("line", { x1: pad, y1: y(0), x2: width - pad, y2: y(0), class: "chart-axis" }));
  svg.append(s("line", { x1: pad, y1: y(top), x2: width - pad, y2: y(top), class: "chart-grid" }));
  svg.append(s("text", { x: pad - 4, y: y(top) + 4, "text-anchor": "end", class: "chart-tick" }, String(top)));
  svg.append(s("text", { x: pad - 4, y: y(0) + 4, "text-anchor": "end", class: "chart-tick" }, "0"));
  svg.append(s("text", { x: width - pad, y: height - 4, "text-anchor": "end", class: "chart-tick" }, `${Math.round(span / 1000)} s`));
  for (const key of ["sent", "failed", "expired", "cancelled"]) {
    if (!points.some((p) => p[key])) continue;
    const path = points.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
    svg.append(s("path", { d: path, class: `chart-series stroke-${key}` }));
  }
  return svg;
}

// A stacked bar of a mailing's messages by status.
export function progressBar(stats) {
  const bar = document.createElement("div");
  bar.className = "progress";
  bar.setAttribute("role", "progressbar");
  const done = stats.total - stats.pending;
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", String(stats.total));
  bar.setAttribute("aria-valuenow", String(done));
  bar.title = STATUSES.map((k) => `${k}: ${stats[k]}`).join(", ");
  for (const key of ["sent", "failed", "expired", "cancelled"]) {
    if (!stats[key]) continue;
    const part = document.createElement("span");
    part.className = `progress-part fill-${key}`;
    part.style.width = `${(100 * stats[key]) / Math.max(stats.total, 1)}%`;
    bar.append(part);
  }
  return bar;
}
