// Canonical JSON and hashes, byte for byte as the service computes them (unlearn_client.verify.canonical).
//
// JSON.parse turns 1.0 into 1 and loses digits of large integers, so documents to verify are parsed with
// parseExact(): numbers stay `Num` objects holding their text, which the service wrote as Python's shortest
// round-trip repr, exactly what the canonical form needs. Strings are escaped as JSON.stringify does, which
// matches Python's json.dumps(ensure_ascii=False); object keys are sorted by Unicode code point.

export class Num {
  constructor(text) { this.text = text; }
  valueOf() { return Number(this.text); }
  toString() { return this.text; }
  toJSON() { return Number(this.text); }
}

export class VerificationError extends Error {}

// --- exact parsing -----------------------------------------------------------------------------------------

export function parseExact(text) {
  let i = 0;
  const fail = (what) => { throw new VerificationError(`not valid JSON: ${what} at character ${i}`); };
  const ws = () => { while (i < text.length && " \t\n\r".includes(text[i])) i++; };
  const value = () => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++; const out = {}; ws();
      if (text[i] === "}") { i++; return out; }
      for (;;) {
        ws(); if (text[i] !== '"') fail("expected a key");
        const key = string(); ws();
        if (text[i++] !== ":") fail("expected ':'");
        out[key] = value(); ws();
        if (text[i] === ",") { i++; continue; }
        if (text[i++] === "}") return out;
        fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++; const out = []; ws();
      if (text[i] === "]") { i++; return out; }
      for (;;) {
        out.push(value()); ws();
        if (text[i] === ",") { i++; continue; }
        if (text[i++] === "]") return out;
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    for (const [word, v] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, i)) { i += word.length; return v; }
    }
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) fail("unexpected character");
    i += m[0].length;
    return new Num(m[0]);
  };
  const string = () => {
    const start = i++;
    while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    if (i >= text.length) fail("unterminated string");
    i++;
    return JSON.parse(text.slice(start, i));
  };
  const out = value(); ws();
  if (i !== text.length) fail("trailing characters");
  return out;
}

// --- canonical form ----------------------------------------------------------------------------------------

function byCodePoint(a, b) {
  const x = Array.from(a), y = Array.from(b);
  for (let k = 0; k < Math.min(x.length, y.length); k++) {
    const d = x[k].codePointAt(0) - y[k].codePointAt(0);
    if (d) return d;
  }
  return x.length - y.length;
}

export function canonical(value) {
  if (value === null) return "null";
  if (value === true) return "true";
  if (value === false) return "false";
  if (value instanceof Num) return value.text;
  if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new VerificationError("a float was parsed without parseExact");
    return String(value);
  }
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
  const keys = Object.keys(value).sort(byCodePoint);
  return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonical(value[k])).join(",") + "}";
}

export const utf8 = (text) => new TextEncoder().encode(text);

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

export function fromHex(text, what) {
  if (typeof text !== "string" || !/^[0-9a-f]{64}$/.test(text)) {
    throw new VerificationError(`${what} is not a 64-character hex sha256`);
  }
  return Uint8Array.from(text.match(/../g), (h) => parseInt(h, 16));
}

export function fromBase64(text, what) {
  if (typeof text !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4) {
    throw new VerificationError(`${what} is not valid base64`);
  }
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

// --- audit entries -----------------------------------------------------------------------------------------

export const GENESIS_HASH = "0".repeat(64);
export const ENTRY_FIELDS = ["seq", "created_at", "tenant_id", "actor", "event_type", "refs", "evidence", "prev_hash"];
export const SIGNED_ENTRY_FIELDS = [...ENTRY_FIELDS, "event_id", "signature"];
export const EVENT_FIELDS = ["event_id", "created_at", "tenant_id", "actor", "event_type", "refs", "evidence"];

export function pick(object, fields, what) {
  const missing = fields.filter((f) => !(f in object));
  if (missing.length) throw new VerificationError(`${what} lacks fields ${missing.join(", ")}`);
  return Object.fromEntries(fields.map((f) => [f, object[f]]));
}

export async function entryHash(entry) {
  const fields = entry.signature != null ? SIGNED_ENTRY_FIELDS : ENTRY_FIELDS;
  return hex(await sha256(utf8(canonical(pick(entry, fields, `entry ${entry.seq}`)))));
}

// sha256 of the sorted ids as Python's json.dumps writes them by default: ", " between items, ASCII only.
export async function commitSampleIds(ids) {
  const sorted = [...ids].sort(byCodePoint);
  const ascii = (s) => JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
  return hex(await sha256(utf8("[" + sorted.map(ascii).join(", ") + "]")));
}
