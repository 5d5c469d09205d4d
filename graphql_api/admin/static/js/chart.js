// Inline SVG charts: counts by status as bars, and progress over time.
import { formatCount, formatDuration } from "./numbers.js";
import { doneOf } from "./outcome.js";

const SVG = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, ...content) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, value);
  for (const item of content) {
    if (typeof item === "object") el.append(item);
    else if (item !== undefined) el.append(String(item));
  }
  return el;
}

export const STATUSES = ["pending", "sent", "failed", "expired", "cancelled"];

export function statusBars(stats) {
  const width = 520;
  const rowHeight = 30;
  const labelWidth = 90;
  const valueWidth = 90; // "1,000,000" in bold
  const height = STATUSES.length * rowHeight + 10;
  const scale = Math.max(stats.total, 1);
  const svg = s("svg", {
    class: "chart-bars",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `Messages by status: ${STATUSES.map((k) => `${k} ${formatCount(stats[k])}`).join(", ")}`,
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
    svg.append(s("text", { x: labelWidth + barSpace + 8, y: y + 19, class: "chart-value", "data-count": key }, formatCount(stats[key])));
  });
  return svg;
}

// A series this far above the axis at least while it is not zero: 163
// failed of 20,000 would otherwise lie under the axis, invisible.
const LIFT = 3;

// Each outcome over time: cumulative counts at each point, from the
// mailing's timeline and then the live events. The y-axis labels sit on
// their grid lines, left-aligned inside the plot, so a label of any length
// ("20,000", "1,000,000") is whole: none has to fit a margin. Under the axis,
// one kind of label at both ends: the wall-clock time of the first point
// (``startLabel``, with its date and zone) and of the last (``endLabel``).
export function progressLine(points, { startLabel = "", endLabel = "" } = {}) {
  const width = 520;
  const height = 136;
  const left = 4;
  const right = 8;
  const top = 20; // room for the label above the top line
  const bottom = 24; // room for the time under the axis
  const svg = s("svg", { class: "chart-line", viewBox: `0 0 ${width} ${height}`, role: "img" });
  if (points.length < 2 || !points.some((p) => p.total)) {
    svg.setAttribute("aria-label", "Progress over time: waiting for changes");
    svg.append(s("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "chart-empty" }, "Progress over time appears as messages go out"));
    return svg;
  }
  const t0 = points[0].t;
  const span = Math.max(points[points.length - 1].t - t0, 1);
  const most = Math.max(...points.map((p) => p.total));
  const x = (t) => left + ((width - left - right) * (t - t0)) / span;
  const linear = (v) => height - bottom - ((height - bottom - top) * v) / most;
  const y = (v) => (v > 0 ? Math.min(linear(v), linear(0) - LIFT) : linear(0));
  const last = points[points.length - 1];
  svg.setAttribute("aria-label", `Progress over time: ${formatCount(doneOf(last))} of ${formatCount(most)} done`);
  svg.append(s("line", { x1: left, y1: y(0), x2: width - right, y2: y(0), class: "chart-axis" }));
  svg.append(s("line", { x1: left, y1: y(most), x2: width - right, y2: y(most), class: "chart-grid" }));
  // The biggest first, so a small one is drawn over it where they meet.
  const keys = ["sent", "failed", "expired", "cancelled"].filter((key) => points.some((p) => p[key]));
  keys.sort((a, b) => last[b] - last[a]);
  for (const key of keys) {
    const path = points.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
    svg.append(s("path", { d: path, class: `chart-series stroke-${key}`, "data-series": key }));
  }
  // Drawn last, with a halo, so a line passing under a label leaves it legible.
  svg.append(s("text", { x: left, y: y(most) - 4, class: "chart-tick", "data-tick": "top" }, formatCount(most)));
  svg.append(s("text", { x: left, y: y(0) - 4, class: "chart-tick", "data-tick": "zero" }, "0"));
  if (startLabel) svg.append(s("text", { x: left, y: height - 8, class: "chart-tick", "data-tick": "start" }, startLabel));
  // The span on hover: a group's title, which is no part of the label's text.
  if (endLabel) {
    svg.append(s("g", { class: "tick-end" },
      s("title", {}, `${formatDuration(span)} after the first point`),
      s("text", { x: width - right, y: height - 8, "text-anchor": "end", class: "chart-tick", "data-tick": "end" }, endLabel)));
  }
  return svg;
}

// A stacked bar of a mailing's messages. Done parts are solid; cancelled
// ones are hatched, so a cancelled mailing's bar does not look complete.
export function progressBar(stats, summary = "") {
  const bar = document.createElement("div");
  bar.className = "progress";
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", String(stats.total));
  bar.setAttribute("aria-valuenow", String(doneOf(stats)));
  if (summary) bar.setAttribute("aria-valuetext", summary);
  bar.title = STATUSES.map((k) => `${k}: ${formatCount(stats[k])}`).join(", ");
  for (const key of ["sent", "failed", "expired", "cancelled"]) {
    if (!stats[key]) continue;
    const part = document.createElement("span");
    part.className = `progress-part fill-${key}`;
    part.dataset.status = key;
    part.style.width = `${(100 * stats[key]) / Math.max(stats.total, 1)}%`;
    bar.append(part);
  }
  return bar;
}
