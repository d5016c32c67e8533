// What binds a receipt to the entries it proves (unlearn_client.verify.binding): every receipt field the log
// records must equal the logged value, so a receipt edited and signed again by the key holder is still refused.

import { Num, VerificationError, canonical, commitSampleIds } from "./canonical.js";

const TERMINAL = { succeeded: "deletion.succeeded", failed: "deletion.failed" };
const REQUEST_BINDINGS = [
  ["id", "deletion.requested", ["refs", "request_id"]],
  ["model_id", "deletion.requested", ["refs", "model_id"]],
  ["tenant_id", "deletion.requested", ["tenant_id"]],
  ["requester", "deletion.requested", ["actor"]],
  ["method", "deletion.requested", ["evidence", "method"]],
  ["sample_count", "deletion.requested", ["evidence", "sample_count"]],
  ["sample_ids_sha256", "deletion.requested", ["evidence", "sample_ids_sha256"]],
  ["created_at", "deletion.requested", ["created_at"]],
  ["started_at", "deletion.started", ["created_at"]],
];

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Num);
const norm = (v) => (v === undefined ? null : v);
const same = (a, b) => canonical(norm(a)) === canonical(norm(b));
const show = (v) => (v === undefined || v === null ? "None" : typeof v === "string" ? `'${v}'` : canonical(v));

function at(entry, path) {
  let value = entry;
  for (const key of path) {
    if (!isObject(value)) return null;
    value = value[key];
  }
  return norm(value);
}

function differs(field, value, logged, entry) {
  const where = entry ? `entry ${entry.seq} (${entry.event_type})` : "the log (no such entry)";
  return new VerificationError(`${field} in the receipt (${show(value)}) differs from ${where}: ${show(logged)}`);
}

function objectOrNull(value, what) {
  if (value != null && !isObject(value)) throw new VerificationError(`${what} is not a JSON object`);
  return value ?? null;
}

export async function checkBinding(receipt, entries) {
  const request = receipt.request;
  const first = {};
  for (const entry of entries) {
    if (!same(entry.tenant_id, request.tenant_id)) throw differs("request.tenant_id", request.tenant_id, entry.tenant_id, entry);
    if ((entry.refs || {}).request_id === request.id && !(entry.event_type in first)) first[entry.event_type] = entry;
  }
  if (!first["deletion.requested"]) throw new VerificationError("receipt lacks the deletion.requested entry");
  for (const [field, eventType, path] of REQUEST_BINDINGS) {
    const entry = first[eventType];
    const logged = at(entry, path);
    if (!same(request[field], logged)) throw differs(`request.${field}`, request[field], logged, entry);
  }
  const ids = request.sample_ids;
  if (ids != null) {
    if (!Array.isArray(ids) || ids.some((s) => typeof s !== "string") || (await commitSampleIds(ids)) !== request.sample_ids_sha256) {
      throw new VerificationError("request's sample_ids do not match its sample_ids_sha256");
    }
    if (!same(new Num(String(ids.length)), request.sample_count)) throw new VerificationError("request's sample_ids are not sample_count ids");
  }

  const status = request.status;
  const outcomes = Object.values(TERMINAL).filter((t) => t in first).sort();
  const expected = status in TERMINAL ? [TERMINAL[status]] : [];
  if (outcomes.join() !== expected.join()) {
    throw new VerificationError(`request.status '${status}' differs from the log: ${outcomes.join(", ") || "no outcome entry"}`);
  }
  const ended = first[TERMINAL[status]];
  if (!same(request.finished_at, at(ended, ["created_at"]))) {
    throw differs("request.finished_at", request.finished_at, at(ended, ["created_at"]), ended);
  }
  if (status in TERMINAL) {
    const loggedError = status === "failed" ? at(ended, ["evidence", "error"]) : null;
    if (!same(request.error, loggedError)) throw differs("request.error", request.error, loggedError, ended);
  }

  const succeeded = first["deletion.succeeded"];
  const loggedEvidence = objectOrNull(at(succeeded, ["evidence"]), "logged evidence");
  const evidence = objectOrNull(receipt.evidence, "evidence");
  if (!same(evidence, loggedEvidence)) {
    const mine = evidence || {}, logged = loggedEvidence || {};
    const keys = [...new Set([...Object.keys(mine), ...Object.keys(logged)])].filter((k) => !(k in mine) || !(k in logged) || !same(mine[k], logged[k])).sort();
    const where = succeeded ? `entry ${succeeded.seq} (deletion.succeeded)` : "the log (no deletion.succeeded)";
    throw new VerificationError(`evidence in the receipt differs from ${where}: ${evidence && loggedEvidence ? `fields ${keys.join(", ")}` : "presence"}`);
  }
  const loggedCommitment = norm((loggedEvidence || {}).forget_commitment);
  if (!same(receipt.forget_commitment, loggedCommitment)) throw differs("forget_commitment", receipt.forget_commitment, loggedCommitment, succeeded);
  checkVersions(receipt, entries, succeeded);
  checkVerdict(receipt, entries, first, loggedEvidence);
}

function removedBy(status, evidence) {
  if (status !== "succeeded" || evidence == null) return null;
  if ("escalated_from" in evidence) return "retrain_escalated";
  return same(evidence.method, "retrain") ? "retrain" : "iau";
}

function retrainedFromScratch(created, version) {
  const evidence = created.evidence || {};
  if (isObject(evidence.exact)) return same(evidence.exact.covers_requests_through_version, version);
  return same(evidence.method, "retrain") || same(evidence.method, "consolidation");
}

const isInt = (v) => v instanceof Num && /^-?\d+$/.test(v.text);

// The verdict: purpose, outcome, removed_by, and the exact version that made an approximate removal exact.
function checkVerdict(receipt, entries, first, loggedEvidence) {
  const request = receipt.request;
  const requested = first["deletion.requested"];
  const loggedPurpose = at(requested, ["evidence", "purpose"]) || "privacy";
  if (!same(request.purpose, loggedPurpose)) throw differs("request.purpose", request.purpose, loggedPurpose, requested);
  const succeeded = first["deletion.succeeded"];
  const loggedOutcome = norm((loggedEvidence || {}).outcome);
  if (!same(receipt.outcome, loggedOutcome)) throw differs("outcome", receipt.outcome, loggedOutcome, succeeded);
  const removed = removedBy(request.status, loggedEvidence);
  if (!same(request.removed_by, removed)) throw differs("request.removed_by", request.removed_by, removed, succeeded);

  const exact = norm(request.exact_as_of_version);
  const exactVersion = objectOrNull(receipt.exact_version, "exact_version");
  if (exact === null) {
    if (exactVersion !== null) throw new VerificationError("exact_version in the receipt, but request.exact_as_of_version is null");
    return;
  }
  const result = norm((objectOrNull(receipt.result_version, "result_version") || {}).version);
  if (!isInt(exact) || !isInt(result) || Number(exact) < Number(result)) {
    throw new VerificationError(`request.exact_as_of_version ${show(exact)} is not a version at or after the result`);
  }
  if ((removed === "retrain" || removed === "retrain_escalated") && !same(exact, result)) {
    throw new VerificationError("request.exact_as_of_version of a retrained request must be its result version");
  }
  if (exactVersion === null || !same(exactVersion.version, exact)) {
    throw new VerificationError("exact_version in the receipt does not name request.exact_as_of_version");
  }
  const made = entries.filter((e) => e.event_type === "version.created" && same((e.refs || {}).version, exact));
  if (!made.some((e) => retrainedFromScratch(e, exact))) {
    throw new VerificationError(`no entry shows version ${show(exact)} retrained from scratch (exact_as_of_version)`);
  }
  const parent = norm((made[0].refs || {}).parent_version);
  if (!same(exactVersion.parent_version, parent)) throw differs("exact_version.parent_version", exactVersion.parent_version, parent, made[0]);
  for (const e of entries) {
    const refs = e.refs || {};
    if ((e.event_type === "version.created" || e.event_type === "version.purged") && same(refs.version, exact)) {
      const logged = "checkpoint_sha256" in refs ? refs.checkpoint_sha256 : (e.evidence || {}).checkpoint_sha256;
      if (logged != null && !same(logged, exactVersion.checkpoint_sha256)) throw differs("exact_version.checkpoint_sha256", exactVersion.checkpoint_sha256, logged, e);
    }
  }
}

function checkVersions(receipt, entries, succeeded) {
  const base = objectOrNull(receipt.base_version, "base_version") || {};
  const result = objectOrNull(receipt.result_version, "result_version") || {};
  const created = new Map();
  for (const e of entries) if (e.event_type === "version.created") created.set(canonical(norm((e.refs || {}).version)), e);
  if (succeeded) {
    const logged = norm((succeeded.refs || {}).version);
    if (!same(result.version, logged)) throw differs("result_version", result.version, logged, succeeded);
    const made = created.get(canonical(logged));
    if (!made) throw new VerificationError(`result_version ${show(logged)}: the receipt lacks its version.created entry`);
    const parent = norm((made.refs || {}).parent_version);
    if (!same(base.version, parent)) throw differs("base_version", base.version, parent, made);
    if (!same(result.parent_version, parent)) throw differs("result_version.parent_version", result.parent_version, parent, made);
  } else if (Object.keys(result).length) {
    throw new VerificationError("result_version in the receipt, but the log holds no deletion.succeeded");
  }
  for (const [name, version] of [["base_version", base], ["result_version", result]]) {
    for (const e of entries) {
      const refs = e.refs || {};
      if ((e.event_type === "version.created" || e.event_type === "version.purged") && same(refs.version, version.version)) {
        const logged = "checkpoint_sha256" in refs ? refs.checkpoint_sha256 : (e.evidence || {}).checkpoint_sha256;
        if (logged != null && !same(logged, version.checkpoint_sha256)) throw differs(`${name}.checkpoint_sha256`, version.checkpoint_sha256, logged, e);
      }
    }
  }
}
