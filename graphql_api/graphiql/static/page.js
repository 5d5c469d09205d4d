// GraphiQL for this API, every file from this origin (no CDN; the CSP allows no other).
// Queries and mutations are POSTed to /graphql asking for
// application/graphql-response+json; subscriptions use graphql-ws on the
// same /graphql. The page holds no data and needs no credential: a token goes
// in the Headers editor, or is the admin page's sign-in in this browser tab.
"use strict";

// GraphiQL's menus and dialogs add a <style> element (react-remove-scroll),
// which the page's CSP admits by this response's nonce; they read it here.
globalThis.__webpack_nonce__ = document.querySelector('meta[name="csp-nonce"]')?.content;

const TOKEN_KEY = "mailings.token"; // where graphql_api/admin/static/js/auth.js keeps the sign-in
const ACCEPT = "application/graphql-response+json, application/json;q=0.9";
const TOKEN_TEMPLATE = '{\n  "authorization": "Bearer <your API token or access token>"\n}';
const EXAMPLE = `# The mailings API. Ctrl-Enter runs the operation
# under the cursor; Docs and Explorer (left) show
# everything it offers.
#
# With API_TOKEN or OIDC on, put the token in Headers:
#   {"authorization": "Bearer <token>"}
# or sign in on the admin page (/) and open
# GraphiQL from its menu.

query Mailings {
  mailings(first: 10) {
    totalCount
    edges {
      node { id text status startAt endAt stats { total sent failed } }
    }
  }
}

subscription Progress($id: ID!) {
  mailingProgress(id: $id) {
    status
    stats { total pending sent failed }
  }
}
`;

function adminSignIn() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(TOKEN_KEY) ?? "null");
    return typeof saved?.token === "string" && saved.token ? saved : null;
  } catch {
    return null;
  }
}

async function authRequired() {
  try {
    const response = await fetch("/admin/config.json", { headers: { Accept: "application/json" } });
    return response.ok ? Boolean((await response.json()).authRequired) : false;
  } catch {
    return false;
  }
}

// Header names are case-insensitive over HTTP, but graphql-ws sends the
// headers as connectionParams, where the API reads `authorization`.
function withCredentials(headers) {
  const sent = {};
  for (const [name, value] of Object.entries(headers ?? {})) sent[name.toLowerCase()] = value;
  const signIn = adminSignIn();
  if (!sent.authorization && signIn) sent.authorization = `Bearer ${signIn.token}`;
  return sent;
}

function isSubscription(params, options) {
  const wanted = params.operationName || undefined;
  return (options?.documentAST?.definitions ?? []).some(
    (node) => node.kind === "OperationDefinition" && node.operation === "subscription" && node.name?.value === wanted,
  );
}

function makeFetcher() {
  const here = new URL("/graphql", location.href);
  const socket = new URL(here);
  socket.protocol = here.protocol === "https:" ? "wss:" : "ws:";
  const fetcher = GraphiQL.createFetcher({
    url: here.toString(),
    subscriptionUrl: socket.toString(),
    headers: { accept: ACCEPT },
    enableIncrementalDelivery: false,
  });
  return async (params, options) => {
    const headers = withCredentials(options?.headers);
    if (isSubscription(params, options)) {
      // graphql-ws retries a refused connection (4403) for most of a minute
      // before it reports it: ask over HTTP first, and show a refusal at once.
      const check = await fetch(here, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json", accept: ACCEPT },
        body: JSON.stringify({ query: "{ __typename }" }),
      });
      if (check.status === 401 || check.status === 403) return check.json();
    }
    return fetcher(params, { ...options, headers });
  };
}

function signInNote(required) {
  const signIn = adminSignIn();
  if (signIn) return `signed in on the admin page (${signIn.via === "oidc" ? "access token" : "API token"})`;
  return required ? "token needed: see Headers" : "";
}

async function main() {
  const required = await authRequired();
  const note = signInNote(required);
  const logo = React.createElement(
    GraphiQL.Logo,
    null,
    "Mailings API",
    note ? React.createElement("small", { className: "sign-in-note" }, note) : null,
  );
  const needsHeaders = required && !adminSignIn();
  const root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(
      GraphiQL,
      {
        fetcher: makeFetcher(),
        plugins: [GraphiQLPluginExplorer.explorerPlugin()],
        defaultQuery: EXAMPLE,
        defaultHeaders: needsHeaders ? TOKEN_TEMPLATE : undefined,
        defaultEditorToolsVisibility: needsHeaders ? "headers" : false,
        isHeadersEditorEnabled: true,
        // Never keep a token in localStorage (the admin page keeps it per tab).
        shouldPersistHeaders: false,
        showPersistHeadersSettings: false,
        inputValueDeprecation: true,
      },
      logo,
    ),
  );
}

main().catch((error) => {
  document.getElementById("graphiql").textContent = `GraphiQL failed to start: ${error}`;
  throw error;
});
