// The admin page: sign-in, then a hash router over the views.
import { forget, loadConfig, needsSignIn, restoreSession, session, signOut } from "./auth.js";
import { clientsView } from "./clients.js";
import { h, mount, toast } from "./dom.js";
import { configureAuth, GraphQLError, renewSubscriptions, resetSubscriptions } from "./graphql.js";
import { importView } from "./import.js";
import { mailingView } from "./mailing.js";
import { mailingFormView } from "./mailing_form.js";
import { mailingsView } from "./mailings.js";
import { completeOidcSignIn } from "./oidc.js";
import { endIfExpired, planSession, renewalDue, renewNow, watchSession } from "./session_clock.js";
import { hideNotice, showNotice, showSignIn } from "./sign_in.js";

const view = document.getElementById("view");
const sessionBox = document.getElementById("session");

const ROUTES = [
  [/^#\/mailings\/new$/, () => mailingFormView(view), true],
  [/^#\/mailings\/([^/]+)\/edit$/, (m) => mailingFormView(view, { id: m[1] }), true],
  [/^#\/mailings\/([^/]+)$/, (m) => mailingView(view, { id: m[1] })],
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
    signIn();
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
    h("button", { type: "button", class: "small ghost", id: "sign-out", onclick: () => { signOut(); resetSubscriptions(); hideNotice(); route(); } }, "Sign out"),
  );
}

function signIn(message = "") {
  showSignIn({ message, signedIn: () => { planSession(); route(); } });
}

// The session is over (refused, or its token expired): the view goes, with
// its dialogs and subscriptions, and the sign-in says why.
function leave() {
  generation++;
  closeDialogs();
  cleanup?.();
  cleanup = null;
  resetSubscriptions();
  signIn();
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
    renew: async () => (await renewNow()) === "renewed",
    renewalDue,
    unauthorized: (refused) => {
      if (!session.config.authRequired) return;
      if (endIfExpired(refused)) return;
      if (forget(refused, "Your session has ended or the token was refused: sign in again.")) leave();
    },
    forbidden: () => {
      if (session.canMutate) {
        session.canMutate = false;
        toast("You may look but not change anything here (viewer role).", "error");
        route();
      }
    },
  });
  watchSession({
    renewed: () => {
      renewSubscriptions();
      hideNotice();
      if (!needsSignIn()) renderSession();
    },
    ending: (expiresAt) => showNotice(expiresAt),
    ended: () => leave(),
  });
  const oidcError = await completeOidcSignIn().catch((error) => `Sign-in failed: ${error.message}`);
  if (!session.token) restoreSession();
  window.addEventListener("hashchange", route);
  planSession();
  if (oidcError) signIn(oidcError);
  else route();
}

start();
