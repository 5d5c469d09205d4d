// A mailing's whole life, from Mailing.timeline: its line chart's points,
// and for a running mailing its rate and when it should be done.
import { formatDuration, formatRate } from "./numbers.js";
import { formatInstant } from "./time.js";

export const TIMELINE_FIELDS = `timeline {
  bucketSeconds undated ratePerSecond estimatedDoneAt
  buckets { start sent failed expired cancelled }
}`;

const KEYS = ["sent", "failed", "expired", "cancelled"];

// Cumulative counts at the start of the first bucket and at the end of
// each: the line over the mailing's whole life, whenever the page opened.
export function timelinePoints(timeline, total) {
  const step = timeline.bucketSeconds * 1000;
  const sums = { sent: 0, failed: 0, expired: 0, cancelled: 0 };
  const points = [];
  timeline.buckets.forEach((bucket, i) => {
    const start = Date.parse(bucket.start);
    if (i === 0) points.push({ t: start, total, ...sums });
    for (const key of KEYS) sums[key] += bucket[key];
    points.push({ t: start + step, total, ...sums });
  });
  return points;
}

// The timeline's points, then what the live events said since (counters
// include what no bucket holds yet).
export function withLive(points, live) {
  if (!live) return points;
  const last = points[points.length - 1];
  return last && last.t >= live.t ? points : [...points, live];
}

// "12.5 messages/s over the last minute · done in about 4 min (10:42 UTC+3)".
export function paceText(status, timeline, now = Date.now()) {
  if (status !== "RUNNING") return "";
  const rate = `${formatRate(timeline.ratePerSecond)} messages/s over the last minute`;
  if (!timeline.estimatedDoneAt) return `${rate} · no estimate while nothing goes out`;
  const left = Math.max(Date.parse(timeline.estimatedDoneAt) - now, 0);
  return `${rate} · done in about ${formatDuration(left)} (${formatInstant(timeline.estimatedDoneAt)})`;
}
