// The console is a client of the JSON API like any other: every call carries the API key the user signed in with
// (kept in sessionStorage, gone when the tab closes), so the console can show and do exactly what the key may.

const KEY = "unlearn.apiKey";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(value) { value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY); },
  me: null,
};

const ROLES = ["reader", "requester", "operator", "admin"];
export const allows = (role) => session.me && ROLES.indexOf(session.me.role) >= ROLES.indexOf(role);

function url(path, params) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
  return u;
}

async function send(path, { method = "GET", params, body, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json, application/problem+json", ...headers } };
  if (session.key) init.headers.Authorization = `Bearer ${session.key}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(url(path, params), init);
  if (!resp.ok) {
    let problem = null;
    try { problem = await resp.json(); } catch { /* not JSON */ }
    throw new ApiError(resp.status, problem);
  }
  return resp;
}

export async function get(path, params) {
  return (await send(path, { params })).json();
}

// The body as text: documents to verify are parsed exactly (verify/canonical.js parseExact).
export async function getText(path, params) {
  return (await send(path, { params })).text();
}

export async function post(path, body) {
  // A fresh Idempotency-Key per submission: a retried POST is answered with the first result.
  return (await send(path, { method: "POST", body, headers: { "Idempotency-Key": `console-${crypto.randomUUID?.() ?? `${Date.now().toString(16)}-${Math.random().toString(16).slice(2)}`}` } })).json();
}

export async function signIn(key) {
  session.key = key;
  try {
    session.me = await get("/v1/keys/current");
  } catch (err) {
    session.key = null;
    session.me = null;
    throw err;
  }
  return session.me;
}

export function signOut() {
  session.key = null;
  session.me = null;
}
