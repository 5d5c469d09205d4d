// OAuth2 with the provider: the authorization-code flow with PKCE to sign
// in, and the refresh-token grant to renew the session before its access
// token expires (when the provider gave a refresh token).
import { adopt, dropRefreshToken, session } from "./auth.js";

const PKCE_KEY = "mailings.pkce";

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

// Off to the provider; back on this page's current view once signed in.
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

async function tokenRequest(endpoint, form) {
  const response = await fetch(endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
    body: new URLSearchParams(form),
  });
  const body = await response.json().catch(() => ({}));
  return { response, body };
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
  const { response, body } = await tokenRequest(pending.tokenEndpoint, {
    grant_type: "authorization_code",
    code: params.get("code"),
    redirect_uri: redirectUri(),
    client_id: session.config.oidc.clientId,
    code_verifier: pending.verifier,
  });
  if (!response.ok || !body.access_token) {
    return `Sign-in failed: ${body.error_description ?? body.error ?? `HTTP ${response.status}`}`;
  }
  adopt(body.access_token, "oidc", {
    refreshToken: body.refresh_token,
    tokenEndpoint: pending.tokenEndpoint,
    expiresIn: body.expires_in,
  });
  return "";
}

// One refresh-token grant. "renewed": a new access token is in the session;
// "refused": the provider will not renew it (the session lasts until its
// token expires); "unreachable": worth trying again.
export async function renewWithRefreshToken() {
  const { refreshToken, tokenEndpoint } = session;
  if (!refreshToken || !tokenEndpoint) return "refused";
  let answer;
  try {
    answer = await tokenRequest(tokenEndpoint, {
      grant_type: "refresh_token",
      refresh_token: refreshToken,
      client_id: session.config.oidc.clientId,
    });
  } catch {
    return "unreachable";
  }
  // Signed out (or in again) meanwhile: this answer is about a session gone.
  if (session.refreshToken !== refreshToken) return session.token ? "renewed" : "refused";
  const { response, body } = answer;
  if (response.ok && body.access_token) {
    // A provider that rotates refresh tokens sends a new one; the others
    // let the old one be used again (RFC 6749, section 6).
    adopt(body.access_token, "oidc", {
      refreshToken: body.refresh_token ?? refreshToken,
      tokenEndpoint,
      expiresIn: body.expires_in,
    });
    return "renewed";
  }
  if (response.status >= 500 || response.status === 429) return "unreachable";
  dropRefreshToken();
  return "refused";
}
