// A small GraphQL client: fetch for queries and mutations, and a minimal
// graphql-transport-ws client for subscriptions, sharing one WebSocket.

// `renew()` tries to replace a refused access token (true: retry with the new
// one); `renewalDue()` says the token is about to expire (or has);
// `unauthorized(token)` ends the session of a token the API refused.
let auth = {
  token: () => null,
  renew: async () => false,
  renewalDue: () => false,
  unauthorized: () => {},
  forbidden: () => {},
};

export function configureAuth(hooks) {
  auth = { ...auth, ...hooks };
}

export class GraphQLError extends Error {
  constructor(errors, status) {
    super(errors.map((error) => error.message).join("; ") || `HTTP ${status}`);
    this.errors = errors;
    this.status = status;
  }
}

function authorization(token = auth.token()) {
  return token ? `Bearer ${token}` : null;
}

// A request refused with 401 never ran: it may go again once, if the token
// was renewed meanwhile (or can be now). Otherwise that token's session ends.
async function withCredential(request) {
  let sent = auth.token();
  let response = await request(authorization(sent));
  if (response.status === 401 && sent && (auth.token() !== sent || (await auth.renew()))) {
    sent = auth.token();
    response = await request(authorization(sent));
  }
  if (response.status === 401) auth.unauthorized(sent);
  return response;
}

// Every mutation carries an Idempotency-Key of its own, the same on its retry
// after a renewal, so the API runs it at most once however it is repeated.
// (crypto.randomUUID exists only on https or localhost; getRandomValues everywhere.)
const MUTATION = /^\s*mutation\b/;

function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

export async function gql(query, variables = {}) {
  const key = MUTATION.test(query) ? newKey() : null;
  const response = await withCredential((credential) => {
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    if (credential) headers.Authorization = credential;
    if (key) headers["Idempotency-Key"] = key;
    return fetch("/graphql", { method: "POST", headers, body: JSON.stringify({ query, variables }) });
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (response.status === 401) {
    throw new GraphQLError(body?.errors ?? [{ message: "Sign in again" }], 401);
  }
  if (response.status === 403) auth.forbidden();
  if (!body || body.errors?.length) {
    throw new GraphQLError(body?.errors ?? [{ message: `HTTP ${response.status}` }], response.status);
  }
  return body.data;
}

// A view's own `gql` whose answers arrive in the order they were asked: a slow
// answer to an earlier request (the filter before the last keystroke, the page
// before "Next", a refresh that was overtaken) must never replace a newer one.
// An answer or error that a later call has superseded never arrives: that
// call's promise stays pending, so the loader awaiting it stops there.
export function latestOnly() {
  let asked = 0;
  return async (query, variables) => {
    const mine = ++asked;
    try {
      const data = await gql(query, variables);
      if (mine === asked) return data;
    } catch (error) {
      if (mine === asked) throw error;
    }
    return new Promise(() => {});
  };
}

// A CSV export through a signed link asked for just now: it needs no
// header, so the browser fetches it itself (streamed to disk, named by the
// server), as it would from a link opened in a tab.
export async function openExport(query, variables, pick) {
  const { url } = pick(await gql(query, variables));
  // The API names it by its absolute URL; behind a proxy that may not be how
  // the browser reaches us, and the same origin always is.
  const { pathname, search } = new URL(url, location.href);
  const link = document.createElement("a");
  link.href = `${pathname}${search}`;
  document.body.append(link);
  link.click();
  link.remove();
}

// graphql-transport-ws: connection_init (with the token), connection_ack,
// then subscribe/next/error/complete per operation id; ping is answered.
class SubscriptionSocket {
  constructor() {
    this.ws = null;
    this.acked = false;
    this.nextId = 1;
    this.active = new Map(); // id -> {payload, sink}
    this.retry = 0;
    this.idleTimer = null;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}/graphql`;
  }

  connect() {
    if (this.ws) return;
    const ws = new WebSocket(this.url(), "graphql-transport-ws");
    this.ws = ws;
    this.acked = false;
    this.token = auth.token();
    ws.onopen = () => {
      const credential = authorization(this.token);
      ws.send(JSON.stringify({ type: "connection_init", payload: credential ? { authorization: credential } : {} }));
    };
    // A connection replaced (by a renewed token) may still say something: old news.
    ws.onmessage = (event) => this.ws === ws && this.receive(JSON.parse(event.data));
    ws.onclose = (event) => this.closed(ws, event);
  }

  // A renewed token: the server checks a connection's token when it opens,
  // so move every subscription to a new connection that carries the new one.
  renew() {
    if (!this.ws) return;
    clearTimeout(this.idleTimer);
    const old = this.ws;
    this.ws = null;
    this.acked = false;
    old.close(1000, "renewed credential");
    if (this.active.size) this.connect();
  }

  // Refused for an expired token: kept, and subscribed again on a renewed
  // connection; without a renewal, the session ends.
  expired(id) {
    const entry = this.active.get(id);
    if (!entry || entry.stale) return;
    entry.stale = true;
    const refused = this.token;
    if (refused !== auth.token()) {
      this.renew(); // renewed since this connection opened
      return;
    }
    auth.renew().then((renewed) => {
      if (renewed || !this.active.has(id)) return;
      this.active.delete(id);
      entry.sink.error?.(new GraphQLError([{ message: "Your session has ended" }]));
      auth.unauthorized(refused);
    });
  }

  receive(message) {
    const entry = message.id ? this.active.get(message.id) : null;
    switch (message.type) {
      case "connection_ack":
        this.acked = true;
        this.retry = 0;
        for (const [id, entry] of this.active) {
          entry.stale = false;
          this.send({ id, type: "subscribe", payload: entry.payload });
        }
        break;
      case "ping":
        this.send({ type: "pong" });
        break;
      case "next":
        if (tokenExpired(message.payload?.errors)) this.expired(message.id);
        else if (message.payload?.errors?.length) entry?.sink.error?.(new GraphQLError(message.payload.errors));
        else entry?.sink.next(message.payload.data);
        break;
      case "error":
        if (tokenExpired(message.payload)) {
          this.expired(message.id);
          break;
        }
        this.active.delete(message.id);
        entry?.sink.error?.(new GraphQLError(message.payload ?? []));
        break;
      case "complete":
        if (entry?.stale) break; // to be subscribed again
        this.active.delete(message.id);
        entry?.sink.complete?.();
        break;
      default:
        break;
    }
  }

  closed(ws, event) {
    if (this.ws !== ws) return;
    this.ws = null;
    this.acked = false;
    if (event.code === 4403 || event.code === 4401) {
      // Refused as it opened. A token renewed since, or due for renewal (a
      // tab that slept), gets one more connection; any other refusal ends
      // the session.
      const refused = this.token;
      const changed = refused !== auth.token();
      if (!changed && !auth.renewalDue()) {
        this.refuse(refused);
        return;
      }
      (changed ? Promise.resolve(true) : auth.renew()).then((renewed) => {
        if (!renewed) this.refuse(refused);
        else if (this.active.size) this.connect();
      });
      return;
    }
    if (this.active.size === 0) return;
    // Lost: come back with backoff and subscribe again; the server answers
    // each subscription with its current state first, so nothing is missed.
    for (const { sink } of this.active.values()) sink.reconnecting?.();
    const delay = Math.min(10000, 500 * 2 ** this.retry++);
    setTimeout(() => this.active.size && this.connect(), delay);
  }

  refuse(token) {
    for (const { sink } of this.active.values()) sink.error?.(new GraphQLError([{ message: "Forbidden" }]));
    this.active.clear();
    auth.unauthorized(token);
  }

  send(message) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  subscribe(query, variables, sink) {
    clearTimeout(this.idleTimer);
    const id = String(this.nextId++);
    const payload = { query, variables };
    this.active.set(id, { payload, sink });
    if (!this.ws) this.connect();
    else if (this.acked) this.send({ id, type: "subscribe", payload });
    return () => {
      if (!this.active.delete(id)) return;
      if (this.acked) this.send({ id, type: "complete" });
      if (this.active.size === 0) {
        // Keep the socket a moment: the next view usually subscribes again.
        this.idleTimer = setTimeout(() => this.close(), 5000);
      }
    };
  }

  close() {
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000, "done");
  }

  reset() {
    this.active.clear();
    this.close();
  }
}

const socket = new SubscriptionSocket();

export function subscribe(query, variables, sink) {
  return socket.subscribe(query, variables, sink);
}

export function resetSubscriptions() {
  socket.reset();
}

export function renewSubscriptions() {
  socket.renew();
}

function tokenExpired(errors) {
  return Array.isArray(errors) && errors.some((error) => error?.extensions?.code === "UNAUTHENTICATED");
}

// Field errors of a ValidationError, by path ("input.phone", "input.17.phone").
export function fieldErrors(result) {
  const byField = new Map();
  for (const { field, message } of result?.errors ?? []) {
    if (!byField.has(field)) byField.set(field, []);
    byField.get(field).push(message);
  }
  return byField;
}

// What a person reads for an id: the API's ids are opaque (Relay global ids,
// base64 of "Type:key"), so pages show the key ("Mailing 42") and keep the
// id itself for links and requests.
export function shownId(id) {
  try {
    const [type, key] = atob(id).split(":");
    if (type && /^\d+$/.test(key ?? "")) return key;
  } catch {
    // Not base64: an id as given (an old integer key in an address).
  }
  return id;
}
