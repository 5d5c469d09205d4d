// The admin page: sign-in, then a hash router over the views.
import {
  adopt,
  beginOidcSignIn,
  completeOidcSignIn,
  loadConfig,
  needsSignIn,
  restoreSession,
  session,
  signOut,
} from "./auth.js";
import { clientsView } from "./clients.js";
import { h, mount, toast } from "./dom.js";
import { configureAuth, GraphQLError, resetSubscriptions } from "./graphql.js";
import { importView } from "./import.js";
import { mailingView } from "./mailing.js";
import { mailingFormView } from "./mailing_form.js";
import { mailingsView } from "./mailings.js";

const view = document.getElementById("view");
const sessionBox = document.getElementById("session");

const ROUTES = [
  [/^#\/mailings\/new$/, () => mailingFormView(view), true],
  [/^#\/mailings\/(\d+)\/edit$/, (m) => mailingFormView(view, { id: m[1] }), true],
  [/^#\/mailings\/(\d+)$/, (m) => mailingView(view, { id: m[1] })],
  [/^#\/clients\/import$/, () => importView(view), true],
  [/^#\/clients$/, () => clientsView(view)],
  [/^#\/mailings$/, () => mailingsView(view)],
];

let cleanup = null;
let generation = 0;

async function route() {
  const mine = ++generation;
  closeDialogs();
  cleanup?.();
  cleanup = null;
  if (needsSignIn()) {
    showSignIn();
    return;
  }
  document.body.classList.remove("signed-out");
  renderSession();
  const hash = location.hash || "#/mailings";
  const match = ROUTES.map(([pattern, render, mutates]) => [pattern.exec(hash), render, mutates]).find(([m]) => m);
  if (!match || (match[2] && !session.canMutate)) {
    location.replace("#/mailings");
    return;
  }
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("current", hash.startsWith(link.getAttribute("href")));
  }
  mount(view, h("p", { class: "muted" }, "Loading…"));
  try {
    const stop = await match[1](match[0]);
    if (mine === generation) cleanup = stop ?? null;
    else stop?.();
  } catch (error) {
    if (error instanceof GraphQLError && error.status === 401) return;
    mount(view, h("p", { class: "error" }, error.message));
  }
}

// A dialog belongs to the view it was opened over: leaving that view (a
// link, Back or Forward, a sign-out) closes it, and a form in it is dropped.
function closeDialogs() {
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
}

function renderSession() {
  if (!session.config.authRequired) {
    mount(sessionBox, h("span", { class: "muted", title: "Neither API_TOKEN nor OIDC is configured" }, "Open access"));
    return;
  }
  mount(
    sessionBox,
    h("span", { class: "who", id: "who" }, session.who || "Signed in", session.canMutate ? "" : " · viewer"),
    h("button", { type: "button", class: "small ghost", id: "sign-out", onclick: () => { signOut(); resetSubscriptions(); route(); } }, "Sign out"),
  );
}

function showSignIn(message = "") {
  document.body.classList.add("signed-out");
  mount(sessionBox);
  const config = session.config;
  const token = h("input", { type: "password", id: "token", name: "token", autocomplete: "current-password", required: true });
  const error = h("p", { class: "error", id: "sign-in-error", role: "alert", hidden: !message }, message);
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
      route();
    } else {
      error.textContent = response.status === 401 ? "That token was refused." : `The API answered HTTP ${response.status}.`;
      error.hidden = false;
      token.select();
    }
  });
  mount(
    view,
    h(
      "section",
      { class: "card sign-in" },
      h("h1", {}, "Sign in"),
      error,
      config.oidc?.clientId
        ? [
            h("button", { type: "button", id: "oidc-sign-in", class: "wide", onclick: () => beginOidcSignIn().catch((e) => { error.textContent = e.message; error.hidden = false; }) },
              `Sign in with ${new URL(config.oidc.issuer).host}`),
            h("p", { class: "divider" }, "or paste a token"),
          ]
        : null,
      form,
    ),
  );
  (config.oidc?.clientId ? document.getElementById("oidc-sign-in") : token).focus();
}

async function start() {
  try {
    await loadConfig();
  } catch (error) {
    mount(view, h("p", { class: "error" }, `The API did not answer: ${error.message}`));
    return;
  }
  configureAuth({
    token: () => session.token,
    unauthorized: () => {
      if (!session.config.authRequired) return;
      signOut();
      resetSubscriptions();
      generation++;
      closeDialogs();
      showSignIn("Your session has ended or the token was refused: sign in again.");
    },
    forbidden: () => {
      if (session.canMutate) {
        session.canMutate = false;
        toast("You may look but not change anything here (viewer role).", "error");
        route();
      }
    },
  });
  const oidcError = await completeOidcSignIn().catch((error) => `Sign-in failed: ${error.message}`);
  if (!session.token) restoreSession();
  window.addEventListener("hashchange", route);
  if (oidcError) showSignIn(oidcError);
  else route();
}

start();
