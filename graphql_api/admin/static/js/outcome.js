// What happened to a mailing's messages, in words and figures.
//
// A message is done when sending is over for it: sent, failed or expired.
// A cancelled message was withdrawn before it went out; it is final but not
// done, so a cancelled mailing never reads as complete.
import { formatCount } from "./numbers.js";

export const OUTCOMES = ["sent", "failed", "expired", "cancelled", "pending"];

export function doneOf(stats) {
  return stats.sent + stats.failed + stats.expired;
}

// "10,496 of 20,000 done · 9,504 cancelled"; "Cancelled: ..." once cancelled.
export function progressSummary(status, stats) {
  const parts = [`${formatCount(doneOf(stats))} of ${formatCount(stats.total)} done`];
  if (stats.cancelled) parts.push(`${formatCount(stats.cancelled)} cancelled`);
  if (stats.pending) parts.push(`${formatCount(stats.pending)} pending`);
  const text = parts.join(" · ");
  return status === "CANCELLED" ? `Cancelled: ${text}` : text;
}

// "10,000 sent · 496 failed · 9,504 cancelled": every status with a message.
export function breakdown(stats) {
  const parts = OUTCOMES.filter((key) => stats[key]).map((key) => `${formatCount(stats[key])} ${key}`);
  return parts.length ? parts.join(" · ") : "no messages yet";
}
