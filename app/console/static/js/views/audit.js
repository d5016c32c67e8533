// The audit log: its signed tree head (checked against the pinned key), a head pinned in this browser to check
// later that the log only grew (consistency proof), and the entries, each checkable for inclusion.

import { getText } from "../api.js";
import { fmtTime, h, link, notice } from "../dom.js";
import { pinHead, pinnedHead, pinnedKey } from "../pins.js";
import { VerificationError, parseExact } from "../verify/canonical.js";
import { verifyConsistencyDocument, verifyEntryDocument, verifyTreeHead } from "../verify/checks.js";
import { pagedTable } from "./lists.js";

const why = (err) => (err instanceof VerificationError ? `REJECTED: ${err.message}` : `could not check: ${err.message}`);

async function headCard() {
  const text = await getText("/v1/audit/tree-head");
  const head = parseExact(text);
  const key = await pinnedKey().catch(() => null);
  const status = h("div", { "data-testid": "head-status" });
  if (!key) status.append(notice("info", "Pin the log's public key (", link("#/verify", "receipt checker"), ") to check these signatures here."));
  else {
    try {
      await verifyTreeHead(head, key);
      status.append(notice("ok", `Signed by the pinned key ${key.keyId.slice(0, 16)}…`));
    } catch (err) { status.append(notice("error", why(err))); }
  }
  const pinned = pinnedHead();
  const pinBtn = h("button", { type: "button", class: "secondary", "data-testid": "pin-head" }, "Pin this tree head");
  const pinState = h("div", { "data-testid": "pinned-head" }, pinned ? `Pinned: ${pinned.tree_size} entries, root ${String(pinned.root_hash).slice(0, 16)}…` : "No tree head pinned in this browser.");
  pinBtn.addEventListener("click", () => { pinHead(text); pinState.textContent = `Pinned: ${head.tree_size} entries, root ${head.root_hash.slice(0, 16)}…`; });
  const checkBtn = h("button", { type: "button", "data-testid": "check-consistency" }, "Check the log only grew since the pinned head");
  const result = h("div", { "data-testid": "consistency-result" });
  checkBtn.addEventListener("click", async () => {
    const old = pinnedHead();
    if (!old || !key) { result.replaceChildren(notice("info", "Pin a key and a tree head first.")); return; }
    try {
      const doc = parseExact(await getText("/v1/audit/consistency", { from: String(old.tree_size) }));
      const { from, to } = await verifyConsistencyDocument(doc, key, old, doc.tree_head);
      result.replaceChildren(notice("ok", `Consistent: the log of ${from} entries you pinned is a prefix of today's ${to} entries.`));
    } catch (err) { result.replaceChildren(notice("error", why(err))); }
  });
  return h(
    "section",
    { class: "card", "data-testid": "tree-head" },
    h("h2", {}, "Signed tree head"),
    h("dl", { class: "facts" }, h("dt", {}, "entries"), h("dd", {}, String(head.tree_size)), h("dt", {}, "root"), h("dd", {}, h("code", {}, head.root_hash)), h("dt", {}, "signed at"), h("dd", {}, fmtTime(new Date(Number(head.timestamp)).toISOString())), h("dt", {}, "key id"), h("dd", {}, h("code", {}, head.key_id))),
    status,
    h("div", { class: "row" }, pinBtn, checkBtn),
    pinState,
    result,
  );
}

function inclusionButton(seq) {
  const cell = h("span");
  const btn = h("button", { type: "button", class: "small secondary", "data-testid": `check-entry-${seq}` }, "check");
  btn.addEventListener("click", async () => {
    const key = await pinnedKey().catch(() => null);
    if (!key) { cell.replaceChildren("pin a key first"); return; }
    try {
      const size = await verifyEntryDocument(parseExact(await getText(`/v1/audit/${seq}`)), key);
      cell.replaceChildren(h("span", { class: "ok" }, `✓ signed, in the tree of ${size}`));
    } catch (err) { cell.replaceChildren(h("span", { class: "bad" }, why(err))); }
  });
  cell.append(btn);
  return cell;
}

export async function auditView() {
  const entries = pagedTable({
    path: "/v1/audit",
    testid: "audit",
    limit: 25,
    columns: [
      { label: "seq", cell: (e) => e.seq },
      { label: "time", cell: (e) => fmtTime(e.created_at) },
      { label: "event", cell: (e) => e.event_type },
      { label: "about", cell: (e) => (e.refs?.request_id ? link(`#/deletions/${e.refs.request_id}`, "deletion " + e.refs.request_id.slice(0, 8)) : e.refs?.model_id ? link(`#/models/${e.refs.model_id}`, "model " + e.refs.model_id.slice(0, 8)) : Object.keys(e.refs || {}).join(", ")) },
      { label: "actor", cell: (e) => String(e.actor).slice(0, 12) },
      { label: "inclusion", cell: (e) => inclusionButton(e.seq) },
    ],
  });
  entries.load(true);
  return h("div", {}, h("h1", {}, "Audit log"), await headCard(), h("h2", {}, "Entries (oldest first)"), entries.el);
}

