// Data sets and models: lists, one data set with its models, one model with its versions, its deletions and
// (for keys with the requester role or above) a form to request a deletion.

import { allows, get, post } from "../api.js";
import { badge, fmtTime, h, link, notice, short } from "../dom.js";
import { pagedTable } from "./lists.js";

const modelColumns = [
  { label: "model", cell: (m) => link(`#/models/${m.id}`, m.name, { "data-testid": "model-link" }) },
  { label: "status", cell: (m) => badge(m.status) },
  { label: "latest version", cell: (m) => m.latest_version ?? "-" },
  { label: "architecture", cell: (m) => m.architecture?.name || "-" },
  { label: "data set", cell: (m) => link(`#/datasets/${m.dataset_id}`, short(m.dataset_id)) },
  { label: "created", cell: (m) => fmtTime(m.created_at) },
];

export const deletionColumns = [
  { label: "deletion", cell: (d) => link(`#/deletions/${d.id}`, short(d.id), { "data-testid": "deletion-link" }) },
  { label: "model", cell: (d) => link(`#/models/${d.model_id}`, short(d.model_id)) },
  { label: "status", cell: (d) => badge(d.status) },
  { label: "stage", cell: (d) => (d.status === "running" ? `${d.stage || ""} ${Math.round((d.progress || 0) * 100)}%` : d.stage || "-") },
  { label: "rows", cell: (d) => d.sample_count },
  { label: "method", cell: (d) => d.method },
  { label: "verdict", cell: (d) => verdictText(d.outcome ?? d.evidence?.outcome) },
  { label: "removed by", cell: (d) => d.removed_by || "-" },
  { label: "created", cell: (d) => fmtTime(d.created_at) },
];

export function verdictText(outcome) {
  if (!outcome) return "-";
  return outcome.met ? "target met" : "target not met";
}

export function datasetsView() {
  const list = pagedTable({
    path: "/v1/datasets",
    testid: "datasets",
    empty: "No data sets yet: upload one with `unlearn datasets upload`.",
    columns: [
      { label: "data set", cell: (d) => link(`#/datasets/${d.id}`, d.name) },
      { label: "rows", cell: (d) => d.num_rows },
      { label: "holdout", cell: (d) => d.num_holdout },
      { label: "classes", cell: (d) => d.num_classes },
      { label: "deleted rows", cell: (d) => d.deleted_count },
      { label: "created", cell: (d) => fmtTime(d.created_at) },
    ],
  });
  list.load(true);
  return h("div", {}, h("h1", {}, "Data sets"), list.el);
}

export async function datasetView(id) {
  const d = await get(`/v1/datasets/${encodeURIComponent(id)}`);
  const models = pagedTable({ path: "/v1/models", params: { dataset_id: id }, columns: modelColumns, testid: "dataset-models" });
  models.load(true);
  return h(
    "div",
    {},
    h("h1", {}, `Data set ${d.name}`),
    facts([
      ["id", d.id],
      ["rows", `${d.num_rows} training, ${d.num_holdout} holdout`],
      ["row shape", JSON.stringify(d.feature_shape)],
      ["classes", d.num_classes],
      ["rows deleted from at least one model", d.deleted_count],
      ["sha256", d.sha256],
      ["created", fmtTime(d.created_at)],
    ]),
    h("h2", {}, "Models trained on it"),
    models.el,
  );
}

export function modelsView() {
  const list = pagedTable({ path: "/v1/models", columns: modelColumns, testid: "models", empty: "No models yet." });
  list.load(true);
  return h("div", {}, h("h1", {}, "Models"), list.el);
}

export async function modelView(id) {
  const m = await get(`/v1/models/${encodeURIComponent(id)}`);
  const versions = pagedTable({
    path: `/v1/models/${encodeURIComponent(id)}/versions`,
    testid: "versions",
    columns: [
      { label: "version", cell: (v) => v.version },
      { label: "state", cell: (v) => badge(v.state) },
      { label: "parent", cell: (v) => v.parent_version ?? "-" },
      { label: "deletions applied", cell: (v) => (v.applied_requests || []).map((r) => link(`#/deletions/${r}`, short(r), { class: "chip" })) },
      { label: "checkpoint sha256", cell: (v) => h("code", {}, short(v.checkpoint_sha256)) },
      { label: "created", cell: (v) => fmtTime(v.created_at) },
    ],
  });
  versions.load(true);
  const parts = [
    h("h1", {}, `Model ${m.name}`),
    facts([
      ["id", m.id],
      ["status", badge(m.status)],
      ["latest version", m.latest_version ?? "-"],
      ["architecture", `${m.architecture?.name} ${JSON.stringify(m.architecture?.config || {})}`],
      ["data set", link(`#/datasets/${m.dataset_id}`, m.dataset_id)],
      ["error", m.error || "-"],
    ]),
    h("h2", {}, "Versions"),
    versions.el,
  ];
  if (allows("requester")) {
    const deletions = pagedTable({ path: `/v1/models/${encodeURIComponent(id)}/deletions`, columns: deletionColumns, testid: "model-deletions" });
    deletions.load(true);
    parts.push(h("h2", {}, "Deletion requests"), deletions.el, deletionForm(m));
  } else {
    parts.push(notice("info", "This key's role (reader) shows models and versions; deletion requests need the requester role."));
  }
  return h("div", {}, parts);
}

function deletionForm(model) {
  const ids = h("textarea", { name: "sample_ids", rows: 3, placeholder: "one sample id per line", required: true, "data-testid": "sample-ids" });
  const reason = h("input", { name: "reason", placeholder: "why (kept with the request)" });
  const method = h("select", { name: "method" }, h("option", { value: "iau" }, "iau (approximate, fast)"), h("option", { value: "retrain" }, "retrain (exact)"));
  const purpose = h("select", { name: "purpose" }, h("option", { value: "privacy" }, "privacy"), h("option", { value: "poison" }, "poison"));
  const status = h("div");
  const form = h(
    "form",
    { class: "card", "data-testid": "deletion-form" },
    h("h3", {}, "Request a deletion"),
    h("label", {}, "Sample ids", ids),
    h("div", { class: "row" }, h("label", {}, "Method", method), h("label", {}, "Purpose", purpose), h("label", { class: "grow" }, "Reason", reason)),
    h("button", { type: "submit", disabled: model.status !== "ready" || null }, "Request deletion"),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren();
    const body = { sample_ids: ids.value.split(/\s+/).filter(Boolean), method: method.value };
    if (purpose.value !== "privacy") body.purpose = purpose.value; // privacy is the service's default
    if (reason.value.trim()) body.reason = reason.value.trim();
    try {
      const deletion = await post(`/v1/models/${encodeURIComponent(model.id)}/deletions`, body);
      location.hash = `#/deletions/${deletion.id}`;
    } catch (err) {
      status.append(notice("error", err.message));
    }
  });
  return form;
}

export function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "-")]));
}

