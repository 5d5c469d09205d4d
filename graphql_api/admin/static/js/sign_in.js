// The sign-in screen (a token, or the provider in one click), and the notice
// that a session which cannot be renewed is about to end.
import { adopt, session } from "./auth.js";
import { h, mount, toast } from "./dom.js";
import { beginOidcSignIn } from "./oidc.js";
import { endsAt } from "./session_clock.js";

const view = document.getElementById("view");
const sessionBox = document.getElementById("session");
const notice = document.getElementById("notice");

// `signedIn()` carries on once a pasted token is accepted; the provider's
// sign-in comes back through a new page load instead.
export function showSignIn({ message = "", signedIn }) {
  hideNotice();
  document.body.classList.add("signed-out");
  mount(sessionBox);
  const config = session.config;
  const title = message ? "Sign in" : session.ended?.title ?? "Sign in";
  const reason = message || session.ended?.reason || "";
  const again = Boolean(session.ended) && !message;
  const token = h("input", { type: "password", id: "token", name: "token", autocomplete: "current-password", required: true });
  const error = h("p", { class: again ? "ended" : "error", id: "sign-in-error", role: "alert", hidden: !reason }, reason);
  const form = h(
    "form",
    { class: "stack", id: "token-form" },
    h("label", { for: "token" }, config.apiToken ? "API token" : "Bearer token"),
    token,
    h("p", { class: "hint" }, "Kept in this browser tab only, until you sign out or close it."),
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const candidate = token.value.trim();
    const response = await fetch("/graphql", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${candidate}` },
      body: JSON.stringify({ query: "{ __typename }" }),
    });
    if (response.ok) {
      adopt(candidate, config.oidc && candidate.split(".").length === 3 ? "oidc" : "token");
      signedIn();
    } else {
      error.className = "error";
      error.textContent = response.status === 401 ? "That token was refused." : `The API answered HTTP ${response.status}.`;
      error.hidden = false;
      token.select();
    }
  });
  const provider = config.oidc?.clientId ? new URL(config.oidc.issuer).host : null;
  mount(
    view,
    h(
      "section",
      { class: "card sign-in" },
      h("h1", {}, title),
      error,
      provider
        ? [
            h("button", { type: "button", id: "oidc-sign-in", class: "wide", onclick: () => goToProvider(error) },
              again ? `Sign in again with ${provider}` : `Sign in with ${provider}`),
            h("p", { class: "divider" }, "or paste a token"),
          ]
        : null,
      form,
    ),
  );
  (provider ? document.getElementById("oidc-sign-in") : token).focus();
}

function goToProvider(error) {
  beginOidcSignIn().catch((e) => {
    error.className = "error";
    error.textContent = e.message;
    error.hidden = false;
  });
}

// Shown while a session that will not be renewed runs out.
export function showNotice(expiresAt) {
  const provider = session.via === "oidc" && session.config.oidc?.clientId;
  mount(
    notice,
    h("span", {}, `Your session ends at ${endsAt(expiresAt)}.`),
    provider
      ? [
          h("span", {}, " Sign in again to keep working; you come back to this page."),
          h("button", { type: "button", class: "small", id: "sign-in-again", onclick: () => beginOidcSignIn().catch((e) => toast(e.message, "error")) }, "Sign in again"),
        ]
      : h("span", {}, " Then sign in with a new token."),
  );
  notice.hidden = false;
}

export function hideNotice() {
  notice.hidden = true;
  mount(notice);
}
