// Sign-in: an API token typed once and kept for the browser tab
// (sessionStorage), or OAuth2's authorization-code flow with PKCE.
//
// `session.canMutate` is the one value the views ask before showing a button
// that changes something: a viewer never sees a button the API would refuse.

const TOKEN_KEY = "mailings.token";
const PKCE_KEY = "mailings.pkce";

export const session = {
  config: null,
  token: null,
  via: "open", // open | token | oidc
  who: "",
  canMutate: true,
};

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
    const { token, via } = JSON.parse(savedAtStart);
    adopt(token, via);
    return true;
  } catch {
    sessionStorage.removeItem(TOKEN_KEY);
    return false;
  }
}

export function adopt(token, via) {
  session.token = token;
  session.via = via;
  const claims = jwtClaims(token);
  session.who = claims?.preferred_username ?? claims?.email ?? claims?.sub ?? (via === "token" ? "API token" : "");
  session.canMutate = permitted(claims);
  sessionStorage.setItem(TOKEN_KEY, JSON.stringify({ token, via }));
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  session.token = null;
  session.via = "open";
  session.who = "";
  session.canMutate = true;
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

function base64Url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

function randomString(size = 32) {
  return base64Url(crypto.getRandomValues(new Uint8Array(size)));
}

async function discovery(issuer) {
  const url = `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`the provider's discovery document answered HTTP ${response.status}`);
  return response.json();
}

function redirectUri() {
  return `${location.origin}${location.pathname}`;
}

export async function beginOidcSignIn() {
  const oidc = session.config.oidc;
  const provider = await discovery(oidc.issuer);
  const verifier = randomString(48);
  const challenge = base64Url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const state = randomString(16);
  sessionStorage.setItem(
    PKCE_KEY,
    JSON.stringify({ verifier, state, tokenEndpoint: provider.token_endpoint, returnTo: location.hash }),
  );
  const url = new URL(provider.authorization_endpoint);
  const params = new URLSearchParams({
    response_type: "code",
    client_id: oidc.clientId,
    redirect_uri: redirectUri(),
    scope: oidc.scopes.join(" "),
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  // Some providers (Auth0) issue a JWT for our API only when asked by audience;
  // the others ignore the parameter, as OAuth2 requires.
  if (oidc.audience) params.set("audience", oidc.audience);
  url.search = params.toString();
  location.assign(url.toString());
}

// Back from the provider with ?code=...&state=...: trade the code for a token.
// Returns null when this load is not such a return, else an error text or "".
export async function completeOidcSignIn() {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return null;
  const pending = JSON.parse(sessionStorage.getItem(PKCE_KEY) ?? "null");
  sessionStorage.removeItem(PKCE_KEY);
  history.replaceState(null, "", `${location.pathname}${pending?.returnTo ?? ""}`);
  if (params.has("error")) return `Sign-in failed: ${params.get("error_description") ?? params.get("error")}`;
  if (!pending || pending.state !== params.get("state")) return "Sign-in failed: the answer did not match this sign-in";
  const response = await fetch(pending.tokenEndpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: params.get("code"),
      redirect_uri: redirectUri(),
      client_id: session.config.oidc.clientId,
      code_verifier: pending.verifier,
    }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok || !body.access_token) {
    return `Sign-in failed: ${body.error_description ?? body.error ?? `HTTP ${response.status}`}`;
  }
  adopt(body.access_token, "oidc");
  return "";
}
