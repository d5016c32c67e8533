// The receipt checker: the user pins the audit log's public key (pasted from a copy they trust, or fetched from the
// service and compared by key id), then checks a receipt, fetched by deletion id or pasted, entirely in this
// browser: signatures (Ed25519), entry hashes, inclusion proofs, consistency with a pinned tree head, and the
// binding of every receipt field to the logged value.

import { get, getText } from "../api.js";
import { h, notice } from "../dom.js";
import { pinKey, pinnedHead, pinnedKey, pinnedKeyText } from "../pins.js";
import { VerificationError, parseExact } from "../verify/canonical.js";
import { verifyConsistencyDocument, verifyReceipt } from "../verify/checks.js";

// Checks a parsed receipt; { ok, lines, error }. With a pinned head, also checks that the receipt's tree and the
// pinned one are the same log (one is a prefix of the other), with a consistency proof fetched from the service.
export async function checkReceipt(receipt, key, head) {
  const lines = [];
  try {
    await verifyReceipt(receipt, key, { report: (line) => lines.push(line) });
    if (head) {
      const mine = receipt.tree_head, [older, newer] = Number(head.tree_size) <= Number(mine.tree_size) ? [head, mine] : [mine, head];
      const proof = parseExact(await getText("/v1/audit/consistency", { from: String(older.tree_size), to: String(newer.tree_size) }));
      await verifyConsistencyDocument(proof, key, older, newer);
      lines.push(`the receipt's tree and your pinned tree head (${head.tree_size} entries) are one log: consistency proof checked`);
    }
    return { ok: true, lines };
  } catch (err) {
    return { ok: false, lines, error: err instanceof VerificationError ? err.message : `could not check: ${err.message}` };
  }
}

export function reportList(ok, lines, error) {
  return h(
    "div",
    { class: `report ${ok ? "report-ok" : "report-bad"}`, "data-testid": "verify-report", "data-verified": String(ok) },
    h("strong", { class: "report-verdict" }, ok ? "VERIFIED" : "REJECTED"),
    error ? h("div", { class: "report-error" }, error) : null,
    h("ul", {}, lines.map((line) => h("li", { class: "ok" }, line)), error ? h("li", { class: "bad" }, error) : null),
  );
}

function keyCard(onPinned) {
  const area = h("textarea", { rows: 5, placeholder: "-----BEGIN PUBLIC KEY-----… or the JSON of GET /v1/audit/public-key", "data-testid": "pin-key-text" });
  const state = h("div", { "data-testid": "pinned-key" });
  const show = async () => {
    const key = await pinnedKey().catch(() => null);
    state.replaceChildren(key ? notice("ok", "Pinned key id ", h("code", {}, key.keyId)) : notice("info", "No key pinned in this browser yet."));
  };
  const fetchBtn = h("button", { type: "button", class: "secondary" }, "Fetch the service's key");
  fetchBtn.addEventListener("click", async () => {
    const doc = await get("/v1/audit/public-key");
    area.value = JSON.stringify(doc, null, 2);
    state.replaceChildren(notice("warn", `Fetched key id ${doc.key_id}. Compare it with the key id your operator published before pinning it: a key fetched from the service proves only that the service signed.`));
  });
  const pinBtn = h("button", { type: "button", "data-testid": "pin-key" }, "Pin this key");
  pinBtn.addEventListener("click", async () => {
    try {
      await pinKey(area.value);
      await show();
      onPinned?.();
    } catch (err) {
      state.replaceChildren(notice("error", err.message));
    }
  });
  if (pinnedKeyText()) area.value = pinnedKeyText();
  show();
  return h("section", { class: "card" }, h("h2", {}, "1. The log's public key"), area, h("div", { class: "row" }, pinBtn, fetchBtn), state);
}

export function verifyView() {
  const id = h("input", { placeholder: "deletion_id", "data-testid": "receipt-deletion-id" });
  const area = h("textarea", { rows: 10, placeholder: "…or paste a receipt (JSON) saved earlier", "data-testid": "receipt-text" });
  const out = h("div", { "data-testid": "receipt-result" });
  const fetchBtn = h("button", { type: "button", class: "secondary", "data-testid": "fetch-receipt" }, "Fetch receipt");
  fetchBtn.addEventListener("click", async () => {
    try {
      area.value = await getText(`/v1/deletions/${encodeURIComponent(id.value.trim())}/receipt`);
    } catch (err) {
      out.replaceChildren(notice("error", err.message));
    }
  });
  const checkBtn = h("button", { type: "button", "data-testid": "verify-receipt" }, "Verify");
  checkBtn.addEventListener("click", async () => {
    const key = await pinnedKey().catch(() => null);
    if (!key) { out.replaceChildren(notice("error", "Pin the log's public key first.")); return; }
    let receipt;
    try { receipt = parseExact(area.value); } catch (err) { out.replaceChildren(reportList(false, [], err.message)); return; }
    const { ok, lines, error } = await checkReceipt(receipt, key, pinnedHead());
    out.replaceChildren(reportList(ok, lines, error));
  });
  return h(
    "div",
    {},
    h("h1", {}, "Receipt checker"),
    h("p", {}, "Everything below runs in this browser (WebCrypto Ed25519 and SHA-256): the service only hands over documents. A receipt verifies when its signature and its tree head are the pinned key's, each audit entry hashes to its hash, carries the key's signature and is in the signed tree, and every receipt field the log records equals the logged value. With a tree head pinned (Audit log page), the receipt's tree must also extend or be extended by it."),
    keyCard(),
    h("section", { class: "card" }, h("h2", {}, "2. The receipt"), h("div", { class: "row" }, id, fetchBtn), area, checkBtn, out),
  );
}
