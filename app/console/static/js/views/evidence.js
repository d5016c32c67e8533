// A deletion's evidence, drawn: where the model stood before and after on the forgotten rows and on unseen rows,
// the membership AUC against the target, accuracy, the verdict, and the time it took against retraining.

import { get } from "../api.js";
import { fmtNum, fmtPct, fmtSeconds, h, notice } from "../dom.js";
import { COLORS, aucPlot, costBars, groupedBars, lossHistograms } from "../plots.js";

const total = (timings) => (timings ? timings.total ?? Object.values(timings).reduce((a, b) => a + (Number(b) || 0), 0) : null);

export function verdictCard(deletion) {
  const outcome = deletion.outcome ?? deletion.evidence?.outcome;
  if (!outcome) {
    const pending = deletion.status === "queued" || deletion.status === "running";
    return h("div", { class: "verdict verdict-none", "data-testid": "verdict" }, pending ? "No verdict yet: the update has not finished." : "No verdict recorded for this deletion.");
  }
  const t = outcome.target || {};
  const target = t.kind === "membership" ? `membership AUC ${t.membership_auc} ± ${fmtNum(t.band ?? t.tolerance)}, utility drop at most ${fmtPct(t.max_accuracy_drop)}${t.guard_noise_z ? ` + ${t.guard_noise_z} s.e. of the paired change` : ""}`
    : t.kind === "poison" ? `forget-set accuracy at most ${fmtPct(t.max_forget_accuracy)}` : t.kind === "exact" ? "exact: retrained without the rows" : JSON.stringify(t);
  return h(
    "div",
    { class: `verdict ${outcome.met ? "verdict-met" : "verdict-unmet"}`, "data-testid": "verdict", "data-met": String(Boolean(outcome.met)) },
    h("strong", {}, outcome.met ? "Target met" : "Target not met"),
    h("div", {}, `Target: ${target}`),
    h("div", {}, outcome.reason || ""),
  );
}

async function retrainSeconds(deletion) {
  // The model's own training run (version 1 of a model the service trained), else an exact deletion of it.
  try {
    const v1 = await get(`/v1/models/${encodeURIComponent(deletion.model_id)}/versions/1`);
    const train = v1.evidence_summary?.timings_s?.train;
    if (train) return { seconds: Number(train), source: "training version 1" };
  } catch { /* no version 1 to read */ }
  try {
    const page = await get(`/v1/models/${encodeURIComponent(deletion.model_id)}/deletions`, { status: "succeeded", limit: 50 });
    const exact = page.items.find((d) => d.method === "retrain" && d.evidence?.timings_s);
    if (exact) return { seconds: total(exact.evidence.timings_s), source: `exact deletion ${exact.id.slice(0, 8)}` };
  } catch { /* the key may not list deletions */ }
  return null;
}

export async function evidenceSection(deletion) {
  const ev = deletion.evidence;
  if (!ev) return h("p", { class: "empty" }, "The evidence appears here once the update has run.");
  const before = ev.before || {}, after = ev.after || {};
  const parts = [h("h2", {}, "Evidence")];
  const missed = ev.escalated_from;
  if (missed) {
    parts.push(notice("warn", `The approximate update missed its target (${missed.outcome?.reason || "no verdict"}); the model's policy retrained it from scratch without the rows. The figures below are the retrain's.`));
  }
  parts.push(h("p", { class: "caption" }, ev.method === "retrain"
    ? "Exact: the model was retrained from scratch without the rows, with its recorded recipe; the figures show where the retrained model stands."
    : "Measured, not certified: approximate unlearning makes the forgotten rows look like rows the model never saw; only an exact retrain removes them by construction."));

  parts.push(h("h3", {}, "Loss: forgotten rows against unseen rows"));
  if (before.loss_histogram && after.loss_histogram) {
    parts.push(lossHistograms(before.loss_histogram, after.loss_histogram));
  } else {
    parts.push(groupedBars("loss-means", "Mean loss before and after", [
      { label: "forgotten rows", before: before.forget?.loss, after: after.forget?.loss },
      { label: "holdout rows", before: before.holdout?.loss, after: after.holdout?.loss },
    ], { max: Math.max(before.forget?.loss || 0, after.forget?.loss || 0, before.holdout?.loss || 0, after.holdout?.loss || 0, 1e-9), format: (v) => fmtNum(v) }));
  }

  const target = ev.outcome?.target?.kind === "membership" ? ev.outcome.target : { membership_auc: 0.5, band: ev.hyperparameters?.auc_tolerance };
  parts.push(h("h3", {}, "Membership inference: can an attacker still tell the forgotten rows apart?"));
  const measured = ev.outcome?.measured || {};
  if (measured.membership_auc != null && measured.membership_auc_start != null) {
    // The verdict's own figures: measured on the holdout rows its stop rule reads.
    parts.push(aucPlot(measured.membership_auc_start, measured.membership_auc, target));
    parts.push(h("p", { class: "caption" }, `On the ${measured.stop_rows ?? "stop"} holdout rows the stop rule reads; on every holdout row: ${fmtNum(before.membership_auc)} before, ${fmtNum(after.membership_auc)} after.`));
  } else if (before.membership_auc != null || after.membership_auc != null) {
    parts.push(aucPlot(before.membership_auc, after.membership_auc, target));
  } else {
    parts.push(notice("info", "No membership AUC: the data set has no holdout rows to compare against."));
  }

  parts.push(h("h3", {}, "Accuracy"));
  parts.push(groupedBars("accuracy", "Accuracy before and after", [
    { label: "forgotten rows", before: before.forget?.accuracy, after: after.forget?.accuracy },
    { label: "holdout rows", before: before.holdout?.accuracy, after: after.holdout?.accuracy },
    { label: "retained rows (sample)", before: before.retained_sample?.accuracy, after: after.retained_sample?.accuracy },
  ]));

  parts.push(h("h3", {}, "Cost against retraining"));
  const mine = total(ev.timings_s);
  const retrain = await retrainSeconds(deletion);
  const rows = [{ label: `this deletion (${ev.method || deletion.method})`, seconds: mine, color: COLORS.after, text: fmtSeconds(mine) }];
  if (retrain) rows.push({ label: `retraining (${retrain.source})`, seconds: retrain.seconds, color: COLORS.before, text: fmtSeconds(retrain.seconds) });
  parts.push(costBars(rows));
  if (!retrain) parts.push(h("p", { class: "caption" }, "No retraining time to compare: the model was uploaded, and no exact deletion of it has run."));
  else if (mine && ev.method !== "retrain") parts.push(h("p", { class: "caption", "data-testid": "speedup" }, `retraining took ${(retrain.seconds / Math.max(mine, 1e-9)).toFixed(1)}x the time of this deletion`));

  parts.push(h("details", {}, h("summary", {}, "All evidence (JSON)"), h("pre", {}, JSON.stringify(ev, null, 2))));
  return h("section", { class: "evidence", "data-testid": "evidence" }, parts);
}
