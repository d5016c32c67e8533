// Tree heads, inclusion, consistency and receipts, checked as unlearn_client.verify.checks checks them. Every
// function throws VerificationError naming the first check that failed; `report(label)` is told each one passed.

import { Num, VerificationError, entryHash, fromHex } from "./canonical.js";
import { RECEIPT_DOMAIN, TREE_HEAD_DOMAIN, verifyEventSignature, verifySignature } from "./keys.js";
import { leafHash, verifyConsistency, verifyInclusion } from "./merkle.js";
import { checkBinding } from "./binding.js";

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Num);

function int(value, what) {
  if (!(value instanceof Num) || !/^(0|[1-9]\d*)$/.test(value.text)) throw new VerificationError(`${what} is not a non-negative integer`);
  const n = Number(value.text);
  if (!Number.isSafeInteger(n)) throw new VerificationError(`${what} is too large`);
  return n;
}

function get(doc, key, what) {
  if (!isObject(doc) || !(key in doc)) throw new VerificationError(`${what} lacks '${key}'`);
  return doc[key];
}

export async function verifyTreeHead(head, pinned) {
  const size = int(get(head, "tree_size", "tree head"), "tree_size");
  const root = fromHex(get(head, "root_hash", "tree head"), "root_hash");
  int(get(head, "timestamp", "tree head"), "timestamp");
  await verifySignature(pinned, TREE_HEAD_DOMAIN, head, "tree head");
  return { size, root };
}

export async function checkInclusion(entry, proof, size, root) {
  const seq = int(get(entry, "seq", "entry"), "seq");
  for (const part of ["refs", "evidence"]) {
    if (!isObject(entry[part])) throw new VerificationError(`entry ${seq}: ${part} is not a JSON object`);
  }
  const computed = await entryHash(entry);
  if (computed !== get(entry, "entry_hash", "entry")) throw new VerificationError(`entry ${seq}: entry_hash does not match the entry's contents`);
  const index = int(get(proof, "leaf_index", "inclusion proof"), "leaf_index");
  if (index !== seq - 1) throw new VerificationError(`entry ${seq}: inclusion proof is for leaf ${index}, not ${seq - 1}`);
  if (int(get(proof, "tree_size", "inclusion proof"), "tree_size") !== size) {
    throw new VerificationError(`entry ${seq}: inclusion proof is for another tree size than the tree head`);
  }
  const path = get(proof, "audit_path", "inclusion proof");
  if (!Array.isArray(path)) throw new VerificationError("audit_path is not a list");
  await verifyInclusion(index, size, await leafHash(fromHex(computed, "entry_hash")), path.map((p) => fromHex(p, "audit_path node")), root);
  return seq;
}

async function checkEntrySignature(entry, pinned, legacyEntries) {
  const seq = Number(entry.seq);
  if (entry.signature == null && seq > 0 && seq <= legacyEntries) return;
  await verifyEventSignature(pinned, entry);
}

// GET /v1/audit/{seq}: {entry, inclusion_proof, tree_head}
export async function verifyEntryDocument(doc, pinned, legacyEntries = 0) {
  const { size, root } = await verifyTreeHead(get(doc, "tree_head", "document"), pinned);
  const entry = get(doc, "entry", "document");
  await checkInclusion(entry, get(doc, "inclusion_proof", "document"), size, root);
  await checkEntrySignature(entry, pinned, legacyEntries);
  return size;
}

// GET /v1/audit/consistency, with the signed heads of both sizes pinning the roots.
export async function verifyConsistencyDocument(doc, pinned, oldHead, newHead) {
  const m = int(get(doc, "first_size", "consistency document"), "first_size");
  const n = int(get(doc, "second_size", "consistency document"), "second_size");
  const r1 = fromHex(get(doc, "first_root", "consistency document"), "first_root");
  const r2 = fromHex(get(doc, "second_root", "consistency document"), "second_root");
  for (const [head, size, root, label] of [[oldHead, m, r1, "old"], [newHead, n, r2, "new"]]) {
    const signed = await verifyTreeHead(head, pinned);
    if (signed.size !== size || signed.root.some((b, k) => b !== root[k])) {
      throw new VerificationError(`${label} tree head does not match the proof's size and root`);
    }
  }
  const proof = get(doc, "proof", "consistency document");
  if (!Array.isArray(proof)) throw new VerificationError("proof is not a list");
  await verifyConsistency(m, n, r1, r2, proof.map((p) => fromHex(p, "consistency proof node")));
  return { from: m, to: n };
}

function concerns(entry, request) {
  const refs = entry.refs || {};
  if (refs.request_id === request.id) return (refs.model_id ?? request.model_id) === request.model_id;
  return String(entry.event_type || "").startsWith("version.") && refs.model_id === request.model_id;
}

export async function verifyReceipt(receipt, pinned, { legacyEntries = 0, report = () => {} } = {}) {
  await verifySignature(pinned, RECEIPT_DOMAIN, receipt, "receipt");
  report("receipt signed by the pinned key");
  const { size, root } = await verifyTreeHead(get(receipt, "tree_head", "receipt"), pinned);
  report(`tree head of ${size} entries signed by the pinned key`);
  const request = get(receipt, "request", "receipt");
  if (!isObject(request)) throw new VerificationError("request is not a JSON object");
  for (const key of ["base_version", "result_version", "evidence"]) {
    if (receipt[key] != null && !isObject(receipt[key])) throw new VerificationError(`${key} is not a JSON object`);
  }
  const items = get(receipt, "audit", "receipt");
  if (!Array.isArray(items) || !items.length) throw new VerificationError("receipt holds no audit entries");
  const entries = [];
  for (const item of items) {
    const entry = get(item, "entry", "audit item");
    if (!isObject(entry)) throw new VerificationError("audit entry is not a JSON object");
    const seq = await checkInclusion(entry, get(item, "inclusion_proof", "audit item"), size, root);
    await checkEntrySignature(entry, pinned, legacyEntries);
    if (!concerns(entry, request)) throw new VerificationError(`entry ${seq} does not concern request ${request.id}`);
    report(`entry ${seq} (${entry.event_type}): hash, signature, inclusion in the signed tree`);
    entries.push(entry);
  }
  const seqs = entries.map((e) => Number(e.seq));
  if (seqs.some((s, k) => k && s <= seqs[k - 1])) throw new VerificationError("receipt's audit entries are not in increasing seq order");
  await checkBinding(receipt, entries);
  report("every field the log records equals the logged value (request, outcome, evidence, versions)");
  return { size, root };
}
