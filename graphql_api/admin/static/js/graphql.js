// A small GraphQL client: fetch for queries and mutations, and a minimal
// graphql-transport-ws client for subscriptions, sharing one WebSocket.

let auth = { token: () => null, unauthorized: () => {}, forbidden: () => {} };

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

function authorization() {
  const token = auth.token();
  return token ? `Bearer ${token}` : null;
}

export async function gql(query, variables = {}) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  const credential = authorization();
  if (credential) headers.Authorization = credential;
  const response = await fetch("/graphql", {
    method: "POST",
    headers,
    body: JSON.stringify({ query, variables }),
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (response.status === 401) {
    auth.unauthorized();
    throw new GraphQLError(body?.errors ?? [{ message: "Sign in again" }], 401);
  }
  if (response.status === 403) auth.forbidden();
  if (!body || body.errors?.length) {
    throw new GraphQLError(body?.errors ?? [{ message: `HTTP ${response.status}` }], response.status);
  }
  return body.data;
}

// A CSV export (behind the same credentials), saved under its own name.
export async function download(url) {
  const headers = {};
  const credential = authorization();
  if (credential) headers.Authorization = credential;
  // The API names it by its absolute URL; behind a proxy that may not be how
  // the browser reaches us, and the same origin always is.
  const { pathname, search } = new URL(url, location.href);
  const response = await fetch(`${pathname}${search}`, { headers });
  if (response.status === 401) auth.unauthorized();
  if (!response.ok) throw new Error(`The download failed: HTTP ${response.status}`);
  const disposition = response.headers.get("Content-Disposition") ?? "";
  const name = /filename="([^"]+)"/.exec(disposition)?.[1] ?? "export.csv";
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
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
    ws.onopen = () => {
      const credential = authorization();
      ws.send(JSON.stringify({ type: "connection_init", payload: credential ? { authorization: credential } : {} }));
    };
    ws.onmessage = (event) => this.receive(JSON.parse(event.data));
    ws.onclose = (event) => this.closed(ws, event);
  }

  receive(message) {
    const entry = message.id ? this.active.get(message.id) : null;
    switch (message.type) {
      case "connection_ack":
        this.acked = true;
        this.retry = 0;
        for (const [id, { payload }] of this.active) this.send({ id, type: "subscribe", payload });
        break;
      case "ping":
        this.send({ type: "pong" });
        break;
      case "next":
        if (message.payload?.errors?.length) entry?.sink.error?.(new GraphQLError(message.payload.errors));
        else entry?.sink.next(message.payload.data);
        break;
      case "error":
        this.active.delete(message.id);
        entry?.sink.error?.(new GraphQLError(message.payload ?? []));
        break;
      case "complete":
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
      for (const { sink } of this.active.values()) sink.error?.(new GraphQLError([{ message: "Forbidden" }]));
      this.active.clear();
      auth.unauthorized();
      return;
    }
    if (this.active.size === 0) return;
    // Lost: come back with backoff and subscribe again; the server answers
    // each subscription with its current state first, so nothing is missed.
    for (const { sink } of this.active.values()) sink.reconnecting?.();
    const delay = Math.min(10000, 500 * 2 ** this.retry++);
    setTimeout(() => this.active.size && this.connect(), delay);
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

// Field errors of a ValidationError, by path ("input.phone", "input.17.phone").
export function fieldErrors(result) {
  const byField = new Map();
  for (const { field, message } of result?.errors ?? []) {
    if (!byField.has(field)) byField.set(field, []);
    byField.get(field).push(message);
  }
  return byField;
}
