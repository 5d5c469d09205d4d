// Times as the operator reads them: in a time zone of their choice (the
// browser's by default), turned into ISO 8601 instants with an offset.
import { h } from "./dom.js";

const ZONE_KEY = "mailings.zone";

export const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

export function operatorZone() {
  return localStorage.getItem(ZONE_KEY) || browserZone;
}

export function setOperatorZone(zone) {
  localStorage.setItem(ZONE_KEY, zone);
}

export function zoneNames() {
  const names = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  return Array.from(new Set(["UTC", browserZone, ...names]));
}

export function isZone(zone) {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const partsFormats = new Map();

function wallClock(instantMs, zone) {
  if (!partsFormats.has(zone)) {
    partsFormats.set(
      zone,
      new Intl.DateTimeFormat("en-US", {
        timeZone: zone,
        hourCycle: "h23",
        year: "numeric",
        month: "2-digit",
        day: "2-digit",
        hour: "2-digit",
        minute: "2-digit",
        second: "2-digit",
      }),
    );
  }
  const parts = Object.fromEntries(
    partsFormats
      .get(zone)
      .formatToParts(new Date(instantMs))
      .map((p) => [p.type, p.value]),
  );
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    hour: Number(parts.hour),
    minute: Number(parts.minute),
    second: Number(parts.second),
  };
}

// Minutes the zone is ahead of UTC at that instant.
function offsetMinutes(instantMs, zone) {
  const w = wallClock(instantMs, zone);
  const asUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
  return Math.round((asUtc - Math.floor(instantMs / 1000) * 1000) / 60000);
}

const pad = (n, size = 2) => String(Math.abs(n)).padStart(size, "0");

function formatOffset(minutes) {
  const sign = minutes < 0 ? "-" : "+";
  return `${sign}${pad(Math.trunc(Math.abs(minutes) / 60))}:${pad(Math.abs(minutes) % 60)}`;
}

// "2030-01-01 09:00" (or "2030-01-01T09:00") in Europe/Moscow -> "2030-01-01T09:00:00+03:00".
// As Temporal's "compatible": a wall time that a DST change repeats is the
// earlier instant; one it skips moves forward by the jump, as clocks do.
export function localToIso(local, zone) {
  const match = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?$/.exec((local ?? "").trim());
  if (!match) return null;
  const [year, month, day, hour, minute, second] = match.slice(1).map((v) => Number(v ?? 0));
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) return null;
  const asUtc = Date.UTC(year, month - 1, day, hour, minute, second);
  if (new Date(asUtc).getUTCDate() !== day) return null; // 2030-02-30
  const candidates = new Set();
  for (const probe of [asUtc - 86400000, asUtc + 86400000]) {
    candidates.add(asUtc - offsetMinutes(probe, zone) * 60000);
  }
  const valid = [...candidates].filter((instant) => instant - asUtc === -offsetMinutes(instant, zone) * 60000);
  const instant = valid.length ? Math.min(...valid) : Math.max(...candidates);
  return instantToIso(instant, zone);
}

export function instantToIso(instantMs, zone) {
  const w = wallClock(instantMs, zone);
  const date = `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)}`;
  const time = `${pad(w.hour)}:${pad(w.minute)}:${pad(w.second)}`;
  return `${date}T${time}${formatOffset(offsetMinutes(instantMs, zone))}`;
}

// An API instant as a form shows it, "2030-01-01 09:00": the same 24-hour
// ISO form as every time on the page. (A native datetime-local picker
// follows the browser's locale: 12-hour "01/01/2030, 09:00 AM" in en-US.)
export function isoToLocal(iso, zone) {
  return instantToIso(Date.parse(iso), zone).slice(0, 16).replace("T", " ");
}

// "09:00": a time of day as the API takes it, 24-hour; null if it is not one.
export function clockTime(text) {
  const match = /^(\d{1,2}):(\d{2})$/.exec((text ?? "").trim());
  if (!match || Number(match[1]) > 23 || Number(match[2]) > 59) return null;
  return `${match[1].padStart(2, "0")}:${match[2]}`;
}

// "UTC+3", "UTC-3:30", "UTC": the zone as its offset at that instant. An
// offset is exact and the same in every locale; abbreviations are not (CST is
// three zones, and Intl gives most zones only "GMT+3" anyway).
export function zoneLabel(minutes) {
  if (!minutes) return "UTC";
  const sign = minutes < 0 ? "-" : "+";
  const hours = Math.trunc(Math.abs(minutes) / 60);
  const rest = Math.abs(minutes) % 60;
  return `UTC${sign}${hours}${rest ? `:${pad(rest)}` : ""}`;
}

// "2026-12-01 09:00 UTC+3": an instant in the operator's zone, with the zone.
// With ``seconds``: "2026-12-01 09:00:05 UTC+3".
export function formatInstant(iso, zone = operatorZone(), { seconds = false } = {}) {
  if (!iso) return "";
  const instant = Date.parse(iso);
  const w = wallClock(instant, zone);
  const date = `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)}`;
  const time = `${pad(w.hour)}:${pad(w.minute)}${seconds ? `:${pad(w.second)}` : ""}`;
  return `${date} ${time} ${zoneLabel(offsetMinutes(instant, zone))}`;
}

// "14:05" or, with seconds, "14:05:40": the wall-clock time of an instant in
// the operator's zone, its date first ("2026-12-08 09:00") unless it is ``sameDayAs``'s.
export function formatWallTime(iso, { seconds = false, sameDayAs = iso, zone = operatorZone() } = {}) {
  const w = wallClock(Date.parse(iso), zone);
  const d = wallClock(Date.parse(sameDayAs), zone);
  const date = w.year === d.year && w.month === d.month && w.day === d.day ? "" : `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)} `;
  return `${date}${pad(w.hour)}:${pad(w.minute)}${seconds ? `:${pad(w.second)}` : ""}`;
}

// The same as a <time> element, naming the zone in full on hover.
export function timeElement(iso, zone = operatorZone()) {
  if (!iso) return "";
  return h("time", { datetime: iso, title: zone }, formatInstant(iso, zone));
}

export function nowLocal(zone, plusMinutes = 0) {
  const minute = 60000;
  // Down to the minute: a start of "now" must not wait for the next minute.
  const instant = Math.floor((Date.now() + plusMinutes * minute) / minute) * minute;
  return isoToLocal(new Date(instant).toISOString(), zone);
}
