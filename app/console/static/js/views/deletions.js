// Deletion requests: the tenant's list (live while any is unfinished) and one deletion, with its stage and
// progress refreshed as it runs, its verdict, its evidence as plots, and its receipt checked in this browser.

import { get, getText } from "../api.js";
import { badge, fmtTime, h, link, notice, progressBar } from "../dom.js";
import { pinnedHead, pinnedKey } from "../pins.js";
import { parseExact } from "../verify/canonical.js";
import { evidenceSection, verdictCard } from "./evidence.js";
import { pagedTable } from "./lists.js";
import { deletionColumns, facts } from "./resources.js";
import { checkReceipt, reportList } from "./verify.js";

const LIVE_MS = 1500; // refresh interval while a deletion is queued or running
const unfinished = (d) => d.status === "queued" || d.status === "running";

export function deletionsView(onCleanup) {
  const status = h("select", { name: "status", "data-testid": "status-filter" }, ["", "queued", "running", "succeeded", "failed"].map((s) => h("option", { value: s }, s || "any status")));
  const holder = h("div");
  let list;
  const load = () => {
    list = pagedTable({ path: "/v1/deletions", params: { status: status.value }, columns: deletionColumns, testid: "deletions", empty: "No deletion requests." });
    holder.replaceChildren(list.el);
    return list.load(true);
  };
  status.addEventListener("change", load);
  load();
  const timer = setInterval(() => { if (list.rows.some(unfinished)) list.load(true); }, LIVE_MS * 2);
  onCleanup(() => clearInterval(timer));
  return h("div", {}, h("h1", {}, "Deletion requests"), h("label", { class: "inline" }, "Show ", status), holder);
}

function header(d) {
  const rows = [
    ["deletion_id", h("code", {}, d.id)],
    ["model", link(`#/models/${d.model_id}`, d.model_id)],
    ["status", badge(d.status)],
    ["stage", d.stage || "-"],
    ["method", `${d.method}${d.purpose ? ` (purpose: ${d.purpose})` : ""}`],
    ["removed by", d.removed_by || "-"],
    ["exact as of version", d.exact_as_of_version ?? "not yet: the removal is approximate until a retrain covers it"],
    ["sample ids", `${d.sample_count} (committed as ${d.sample_ids_sha256 ? d.sample_ids_sha256.slice(0, 16) + "…" : "-"})`],
    ["versions", d.result_version ? `${d.base_version} → ${d.result_version}` : d.base_version ? `from ${d.base_version}` : "-"],
    ["reason", d.reason || "-"],
    ["attempts", d.attempts],
    ["created", fmtTime(d.created_at)],
    ["finished", fmtTime(d.finished_at)],
  ];
  if (d.error) rows.push(["error", d.error]);
  return facts(rows);
}

export async function deletionView(id, onCleanup) {
  const live = h("div", { "data-testid": "deletion-live" });
  const evidence = h("div");
  const receipt = h("section", { class: "card" });
  let last = null;

  async function refresh() {
    const d = await get(`/v1/deletions/${encodeURIComponent(id)}`);
    const changed = !last || last.status !== d.status || last.progress !== d.progress || last.stage !== d.stage;
    if (changed) {
      live.replaceChildren(
        progressBar(d.status === "succeeded" ? 1 : d.progress, `${d.status}${d.stage && d.stage !== d.status ? `: ${d.stage}` : ""}`),
        header(d),
        verdictCard(d),
      );
    }
    if (!last || last.status !== d.status) evidence.replaceChildren(await evidenceSection(d));
    last = d;
    return d;
  }
  const first = await refresh();
  if (unfinished(first)) {
    const timer = setInterval(async () => {
      try {
        if (!unfinished(await refresh())) clearInterval(timer);
      } catch { /* shown on the next successful refresh */ }
    }, LIVE_MS);
    onCleanup(() => clearInterval(timer));
  }

  const run = h("button", { type: "button", "data-testid": "check-receipt" }, "Check the receipt in this browser");
  const out = h("div", { "data-testid": "receipt-result" });
  run.addEventListener("click", async () => {
    out.replaceChildren(h("p", {}, "Checking…"));
    const key = await pinnedKey().catch(() => null);
    if (!key) {
      out.replaceChildren(notice("info", "Pin the audit log's public key first ", link("#/verify", "in the receipt checker"), "."));
      return;
    }
    const text = await getText(`/v1/deletions/${encodeURIComponent(id)}/receipt`);
    const { ok, lines, error } = await checkReceipt(parseExact(text), key, pinnedHead());
    out.replaceChildren(reportList(ok, lines, error));
  });
  receipt.append(
    h("h2", {}, "Receipt"),
    h("p", {}, "The signed receipt proves what was requested and what the log recorded about it. The check runs here, with WebCrypto, against the key you pinned; the service is not trusted to say it verifies."),
    run,
    out,
  );
  return h("div", {}, h("h1", {}, "Deletion"), live, evidence, receipt);
}
