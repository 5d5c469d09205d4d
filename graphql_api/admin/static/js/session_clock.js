// What happens as the access token runs out: with a refresh token, the
// session is renewed a little before; without one (or once the provider
// refuses), the operator is warned, and when the token expires the session
// ends with a sign-in that says so. Never a silent sign-out.
import { endSession, session } from "./auth.js";
import { renewWithRefreshToken } from "./oidc.js";
import { formatInstant } from "./time.js";

// Before expiry, at most: a quarter (renew) or half (warn) of a short token's life.
const RENEW_LEAD_MS = 60_000;
const WARN_LEAD_MS = 120_000;
const RETRY_MS = 5_000;
const EXPIRY_SLACK_MS = 5_000;
const LONGEST_TIMER_MS = 2 ** 31 - 1;

let hooks = { renewed: () => {}, ending: () => {}, ended: () => {} };
let timer = null;
let warned = false;
let renewing = null;

function end() {
  clearTimeout(timer);
  timer = null;
  const ended = session.expiresAt;
  endSession(`It ended at ${endsAt(ended)}. Sign in again to carry on: you come back to this page.`, "Your session ended");
  hooks.ended();
}

// The API refused the session's token (a request's 401, or the server
// closing the live connection as the token expires): if its time is up, or
// all but up, that is the session's end, said as such. True if it ended.
export function endIfExpired(refused) {
  if (!session.token || refused !== session.token || !session.expiresAt) return false;
  // expiresAt counts from when the token arrived, so it runs a little late.
  if (Date.now() < session.expiresAt - EXPIRY_SLACK_MS) return false;
  end();
  return true;
}

export function watchSession(handlers) {
  hooks = { ...hooks, ...handlers };
  // Timers of a hidden tab are throttled: catch up as soon as it is seen.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") check();
  });
}

// After each sign-in: plan the session's renewal or its end.
export function planSession() {
  warned = false;
  check();
}

// Renew now, once however many callers ask at the same time (a 401 on
// several requests, the timer). True when a new access token is in place.
export function renewNow() {
  renewing ??= (async () => {
    const outcome = await renewWithRefreshToken();
    if (outcome === "renewed") {
      warned = false;
      hooks.renewed();
      setTimeout(check); // the next renewal, planned once this one is over
    }
    return outcome;
  })().finally(() => {
    renewing = null;
  });
  return renewing;
}

// The token is at (or past) the time to renew it.
export function renewalDue() {
  return Boolean(session.token && session.expiresAt && session.refreshToken) && Date.now() >= milestones().renewAt;
}

export function endsAt(instantMs) {
  return formatInstant(new Date(instantMs).toISOString());
}

function milestones() {
  const lifetime = session.expiresAt - session.issuedAt;
  return {
    renewAt: session.expiresAt - Math.min(RENEW_LEAD_MS, lifetime / 4),
    warnAt: session.expiresAt - Math.min(WARN_LEAD_MS, lifetime / 2),
  };
}

async function check() {
  clearTimeout(timer);
  timer = null;
  if (!session.token || !session.expiresAt) return;
  const { renewAt, warnAt } = milestones();
  let retryAt = null;
  if (session.refreshToken && Date.now() >= renewAt) {
    const outcome = await renewNow();
    if (outcome === "renewed") return; // renewNow plans the next one
    if (outcome === "unreachable") retryAt = Date.now() + RETRY_MS;
  }
  if (!session.token) return;
  const now = Date.now();
  if (now >= session.expiresAt) {
    end();
    return;
  }
  const renewalPlanned = session.refreshToken && retryAt === null;
  if (!renewalPlanned && now >= warnAt && !warned) {
    warned = true;
    hooks.ending(session.expiresAt);
  }
  const next = [session.expiresAt, session.refreshToken ? retryAt ?? renewAt : null, warned ? null : warnAt]
    .filter((at) => at !== null && at > now);
  timer = setTimeout(check, Math.min(Math.min(...next) - now, LONGEST_TIMER_MS));
}
