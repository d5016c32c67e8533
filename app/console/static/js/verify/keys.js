// The log's Ed25519 public key and the signatures it makes, checked with WebCrypto (unlearn_client.verify.keys).
// A signature covers a domain tag followed by the canonical JSON of the document without its `signature`.

import { EVENT_FIELDS, VerificationError, canonical, concat, fromBase64, hex, parseExact, pick, sha256, utf8 } from "./canonical.js";

export const TREE_HEAD_DOMAIN = utf8("unlearn-audit/tree-head/v1\n");
export const RECEIPT_DOMAIN = utf8("unlearn-audit/receipt/v1\n");
export const ENTRY_DOMAIN = utf8("unlearn-audit/entry/v1\n");

// A pinned key: { key: CryptoKey, keyId: hex sha256 of the raw key, raw: Uint8Array, origin?: string }.
export async function loadPublicKey(text) {
  let material = (text || "").trim();
  let origin = null;
  if (material.startsWith("{")) {
    let doc;
    try { doc = JSON.parse(material); } catch { throw new VerificationError("public key document is not valid JSON"); }
    material = (doc.public_key_pem || doc.public_key_raw_b64 || "").trim();
    origin = doc.origin || null;
  }
  let raw;
  if (material.startsWith("-----BEGIN PUBLIC KEY-----")) {
    const body = material.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, "").replace(/\s+/g, "");
    const der = fromBase64(body, "PEM body");
    // An Ed25519 SubjectPublicKeyInfo is a fixed 12-byte prefix (RFC 8410) and the 32-byte key.
    const prefix = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
    if (der.length !== 44 || !prefix.every((b, k) => der[k] === b)) throw new VerificationError("public key is not Ed25519");
    raw = der.slice(12);
  } else {
    raw = fromBase64(material, "public key");
    if (raw.length !== 32) throw new VerificationError("not an Ed25519 public key: it must be 32 bytes");
  }
  let key;
  try {
    key = await crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]);
  } catch (err) {
    throw new VerificationError(`this browser cannot use the key (WebCrypto Ed25519): ${err.message}`);
  }
  return { key, raw, keyId: hex(await sha256(raw)), origin };
}

async function verifyBytes(pinned, signatureB64, message, what) {
  const signature = fromBase64(signatureB64, `${what} signature`);
  const ok = await crypto.subtle.verify({ name: "Ed25519" }, pinned.key, signature, message);
  if (!ok) throw new VerificationError(`${what}: signature does not verify`);
}

export async function verifySignature(pinned, domain, doc, what) {
  if (doc.key_id !== pinned.keyId) {
    throw new VerificationError(`${what}: signed by key ${doc.key_id}, not by the pinned key ${pinned.keyId}`);
  }
  const body = Object.fromEntries(Object.entries(doc).filter(([k]) => k !== "signature"));
  await verifyBytes(pinned, doc.signature ?? "", concat(domain, utf8(canonical(body))), what);
}

export async function verifyEventSignature(pinned, entry) {
  if (typeof entry.signature !== "string") throw new VerificationError(`entry ${entry.seq} carries no signature`);
  const message = concat(ENTRY_DOMAIN, utf8(canonical(pick(entry, EVENT_FIELDS, `entry ${entry.seq}`))));
  await verifyBytes(pinned, entry.signature, message, `entry ${entry.seq}`);
}

export { parseExact };
