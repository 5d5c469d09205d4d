// The operator's session: an API token typed once, or the provider's tokens
// (oidc.js), kept for the browser tab in sessionStorage.
//
// `session.canMutate` is the one value the views ask before showing a button
// that changes something: a viewer never sees a button the API would refuse.

const TOKEN_KEY = "mailings.token";

// What the page starts with, and what signing out leaves.
const SIGNED_OUT = Object.freeze({
  token: null,
  via: "open", // open | token | oidc
  who: "",
  canMutate: true,
  // From the provider's token response: what renews the session, and when
  // its access token runs out (ms on this browser's clock).
  refreshToken: null,
  tokenEndpoint: null,
  issuedAt: null,
  expiresAt: null,
  // Why the last session ended ({title, reason}), shown with the sign-in
  // until the next one.
  ended: null,
});

export const session = { config: null, ...SIGNED_OUT };

export async function loadConfig() {
  const response = await fetch("/admin/config.json", { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`config: HTTP ${response.status}`);
  session.config = await response.json();
  return session.config;
}

// The tab's saved sign-in, read once as this document starts, before anything
// awaits. A document still starting up (waiting for its config) must not pick
// up a sign-in stored after it loaded: it would act on it (send it, and on a
// 401 erase it) while the document that stored it, or the next one in this
// tab after a reload, relies on it.
const savedAtStart = sessionStorage.getItem(TOKEN_KEY);

export function restoreSession() {
  if (!savedAtStart) return false;
  try {
    const saved = JSON.parse(savedAtStart);
    adopt(saved.token, saved.via, { refreshToken: saved.refreshToken, tokenEndpoint: saved.tokenEndpoint });
    if (saved.expiresAt) {
      session.issuedAt = saved.issuedAt;
      session.expiresAt = saved.expiresAt;
      save();
    }
    return true;
  } catch {
    sessionStorage.removeItem(TOKEN_KEY);
    return false;
  }
}

// `grant`: what the provider's token endpoint answered besides the token.
export function adopt(token, via, { refreshToken = null, tokenEndpoint = null, expiresIn = null } = {}) {
  const claims = jwtClaims(token);
  const now = Date.now();
  Object.assign(session, {
    token,
    via,
    who: claims?.preferred_username ?? claims?.email ?? claims?.sub ?? (via === "token" ? "API token" : ""),
    canMutate: permitted(claims),
    refreshToken: refreshToken || null,
    tokenEndpoint: tokenEndpoint || null,
    issuedAt: now,
    expiresAt: expiry(claims, expiresIn, now),
    ended: null,
  });
  save();
}

// `expires_in` counts from now, so a browser clock that is off does not
// matter; a token pasted by hand has only its `exp` claim.
function expiry(claims, expiresIn, now) {
  const seconds = Number(expiresIn);
  if (Number.isFinite(seconds) && seconds > 0) return now + seconds * 1000;
  if (Number.isFinite(claims?.exp)) return claims.exp * 1000;
  return null;
}

function save() {
  const { token, via, refreshToken, tokenEndpoint, issuedAt, expiresAt } = session;
  sessionStorage.setItem(TOKEN_KEY, JSON.stringify({ token, via, refreshToken, tokenEndpoint, issuedAt, expiresAt }));
}

// The provider will not renew this session: it lasts until its token expires.
export function dropRefreshToken() {
  session.refreshToken = null;
  if (session.token) save();
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  Object.assign(session, SIGNED_OUT);
}

// Ends the session, saying why on the sign-in that follows.
export function endSession(reason, title = "Sign in") {
  signOut();
  session.ended = { title, reason };
}

// The API refused `token`. Only that token's session ends: a request sent
// before a renewal may come back refused after it, and must not end the
// renewed session.
export function forget(token, reason) {
  if (!token || token !== session.token) return false;
  endSession(reason);
  return true;
}

export function needsSignIn() {
  return Boolean(session.config?.authRequired) && !session.token;
}

// The API decides; this only mirrors its rule for the buttons. A JWT from
// the provider carries the roles in the configured claim; the API token (or
// an open API) is an operator.
function permitted(claims) {
  const oidc = session.config?.oidc;
  if (!claims || !oidc) return true;
  const roles = rolesAt(claims, oidc.rolesClaim);
  return roles.includes(oidc.operatorRole);
}

function rolesAt(claims, path) {
  let value = claims;
  for (const part of String(path).split(".")) value = value?.[part];
  if (Array.isArray(value)) return value.map(String);
  if (typeof value === "string") return value.split(/[\s,]+/).filter(Boolean);
  return [];
}

function base64UrlDecode(text) {
  const padded = text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "=");
  return new TextDecoder().decode(Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)));
}

function jwtClaims(token) {
  const parts = String(token ?? "").split(".");
  if (parts.length !== 3) return null;
  try {
    return JSON.parse(base64UrlDecode(parts[1]));
  } catch {
    return null;
  }
}
