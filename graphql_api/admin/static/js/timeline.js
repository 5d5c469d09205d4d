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
// The last bucket ends when the timeline was read (``readAt``), not in the
// future, so the live points after it are drawn.
export function timelinePoints(timeline, total, readAt = Infinity) {
  const step = timeline.bucketSeconds * 1000;
  const sums = { sent: 0, failed: 0, expired: 0, cancelled: 0 };
  const points = [];
  timeline.buckets.forEach((bucket, i) => {
    const start = Date.parse(bucket.start);
    if (i === 0) points.push({ t: start, total, ...sums });
    for (const key of KEYS) sums[key] += bucket[key];
    points.push({ t: Math.max(Math.min(start + step, readAt), start), total, ...sums });
  });
  return points;
}

// The timeline's points, then each live event since it was read (counters
// include what no bucket holds yet), so the line moves with the counts.
export function withLive(points, live) {
  const last = points[points.length - 1];
  return [...points, ...live.filter((point) => !last || point.t > last.t)];
}

// The rate is over the last minute, or since the first answer when that is
// later (the API's ratePerSecond): say which.
const MINUTE = 60000;

// "12.5 messages/s over the last minute · done in about 4 min (10:42 UTC+3)".
export function paceText(status, timeline, now = Date.now()) {
  if (status !== "RUNNING") return "";
  const first = timeline.buckets.length ? Date.parse(timeline.buckets[0].start) : now;
  const over = now - first < MINUTE ? "since the first send" : "over the last minute";
  const rate = `${formatRate(timeline.ratePerSecond)} messages/s ${over}`;
  if (!timeline.estimatedDoneAt) return `${rate} · no estimate while nothing goes out`;
  const left = Math.max(Date.parse(timeline.estimatedDoneAt) - now, 0);
  return `${rate} · done in about ${formatDuration(left)} (${formatInstant(timeline.estimatedDoneAt)})`;
}
