// The evidence of a deletion as inline SVG: loss distributions, membership AUC against its target, accuracy, and
// cost against retraining. Every plot is an <svg class="plot" data-plot="..."> built here; no library.

const NS = "http://www.w3.org/2000/svg";
export const COLORS = { forget: "#d95f02", holdout: "#5b6bbf", retained: "#1b9e77", before: "#9aa3ad", after: "#2c7be5" };

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function frame(kind, width, height, title) {
  return s("svg", { class: "plot", "data-plot": kind, viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": title }, s("title", {}, title));
}

const text = (x, y, content, attrs = {}) => s("text", { x, y, "font-size": 11, fill: "#333", ...attrs }, content);

function legend(svg, x, y, items) {
  items.forEach(([label, color], k) => {
    svg.append(s("rect", { x: x + k * 110, y: y - 9, width: 10, height: 10, fill: color, rx: 2 }), text(x + k * 110 + 14, y, label));
  });
}

// Forget vs holdout loss distributions before and after (fixed log10 bins), as fractions of each set's rows.
export function lossHistograms(before, after) {
  const W = 640, H = 230, panelW = 290, top = 34, plotH = 150, left = 20;
  const svg = frame("loss-histogram", W, H, "Loss distribution of the forgotten rows and of unseen holdout rows, before and after");
  legend(svg, left, 14, [["forgotten rows", COLORS.forget], ["holdout (never trained on)", COLORS.holdout]]);
  const panels = [["before", before], ["after", after]];
  const frac = (counts) => { const n = (counts || []).reduce((a, b) => a + b, 0); return (counts || []).map((c) => (n ? c / n : 0)); };
  const peak = Math.max(0.01, ...panels.flatMap(([, hst]) => [...frac(hst?.forget), ...frac(hst?.holdout)]));
  panels.forEach(([label, hst], p) => {
    const x0 = left + p * (panelW + 30), edges = hst?.log10_edges || [], bins = Math.max(edges.length - 1, 1), bw = panelW / bins;
    const g = s("g", { "data-panel": label });
    g.append(s("rect", { x: x0, y: top, width: panelW, height: plotH, fill: "#fafbfc", stroke: "#dde1e6" }));
    for (const [series, color] of [["holdout", COLORS.holdout], ["forget", COLORS.forget]]) {
      frac(hst?.[series]).forEach((f, k) => {
        const bh = (f / peak) * plotH;
        if (bh > 0) g.append(s("rect", { x: x0 + k * bw + 0.5, y: top + plotH - bh, width: Math.max(bw - 1, 1), height: bh, fill: color, "fill-opacity": 0.55, "data-series": series }));
      });
    }
    for (let k = 0; k < edges.length; k += 4) {
      const x = x0 + k * bw;
      g.append(s("line", { x1: x, x2: x, y1: top + plotH, y2: top + plotH + 4, stroke: "#888" }), text(x, top + plotH + 16, `1e${edges[k]}`, { "text-anchor": "middle", "font-size": 9 }));
    }
    g.append(text(x0 + panelW / 2, top - 6, label === "before" ? "before the update" : "after the update", { "text-anchor": "middle", "font-weight": "bold" }));
    svg.append(g);
  });
  svg.append(text(W / 2, H - 4, "per-row cross-entropy loss (log scale); height: share of each set's rows", { "text-anchor": "middle", "font-size": 10, fill: "#666" }));
  return svg;
}

// Membership-inference AUC before and after, on a 0..1 axis with the target band shaded (around 0.5, or around the
// rows' own target when the engine set one per row from its reference model).
export function aucPlot(before, after, target) {
  const W = 640, H = 110, x0 = 30, x1 = W - 30, y = 62;
  const svg = frame("membership-auc", W, H, "Membership-inference AUC of forgotten against unseen rows, and the target band");
  const X = (v) => x0 + (x1 - x0) * Math.min(Math.max(v, 0), 1);
  const center = target?.membership_auc ?? 0.5, band = target?.band ?? target?.tolerance ?? 0;
  svg.append(
    s("line", { x1: x0, x2: x1, y1: y, y2: y, stroke: "#888" }),
    s("rect", { x: X(center - band), y: y - 16, width: Math.max(X(center + band) - X(center - band), 2), height: 32, fill: "#1b9e77", "fill-opacity": 0.18, "data-role": "target-band" }),
    text(X(center), y - 22, `target ${Number(center).toFixed(3)}${band ? ` ± ${band.toFixed(3)}` : ""}: ${target?.per_row ? "where rows this hard sit when never trained on" : "indistinguishable"}`, { "text-anchor": "middle", fill: "#137a5c" }),
  );
  for (const v of [0, 0.25, 0.5, 0.75, 1]) svg.append(s("line", { x1: X(v), x2: X(v), y1: y, y2: y + 4, stroke: "#888" }), text(X(v), y + 17, v, { "text-anchor": "middle", "font-size": 10 }));
  if (before != null && after != null) {
    svg.append(s("line", { x1: X(before), x2: X(after), y1: y, y2: y, stroke: COLORS.after, "stroke-width": 2, "stroke-dasharray": "4 3" }));
  }
  const points = [["before", before, COLORS.before, "#fff"], ["after", after, COLORS.after, COLORS.after]].filter((p) => p[1] != null);
  const lowest = Math.min(...points.map((p) => p[1]));
  for (const [label, v, color, fill] of points) {
    // The lower value is labelled to its left, the higher to its right: close values never overlap.
    const leftSide = points.length > 1 && v === lowest && label === (before <= after ? "before" : "after");
    svg.append(
      s("circle", { cx: X(v), cy: y, r: 7, stroke: color, "stroke-width": 2.5, fill, "data-point": label }),
      text(X(v) + (leftSide ? -10 : 10), y + 28, `${label} ${Number(v).toFixed(3)}`, { "text-anchor": leftSide ? "end" : "start", fill: label === "before" ? "#555" : color }),
    );
  }
  svg.append(text(x0, 14, "1.0 = every forgotten row still fits better than unseen rows; 0.5 = an attacker cannot tell them apart", { "font-size": 10, fill: "#666" }));
  return svg;
}

// Grouped bars before/after for a few measures on a shared 0..max scale.
export function groupedBars(kind, title, groups, { max = 1, format = (v) => `${(v * 100).toFixed(1)}%` } = {}) {
  const W = 640, rowH = 34, top = 26, H = top + groups.length * rowH + 10, x0 = 150, x1 = W - 70;
  const svg = frame(kind, W, H, title);
  legend(svg, x0, 14, [["before", COLORS.before], ["after", COLORS.after]]);
  const X = (v) => (x1 - x0) * Math.min(Math.max(v / (max || 1), 0), 1);
  groups.forEach((g, k) => {
    const y = top + k * rowH;
    svg.append(text(x0 - 8, y + 17, g.label, { "text-anchor": "end" }));
    [["before", g.before, COLORS.before, 4], ["after", g.after, COLORS.after, 17]].forEach(([label, v, color, dy]) => {
      if (v == null) return;
      svg.append(s("rect", { x: x0, y: y + dy, width: Math.max(X(v), 1), height: 11, fill: color, rx: 2, "data-bar": `${g.label}:${label}` }), text(x0 + X(v) + 5, y + dy + 10, format(v), { "font-size": 10 }));
    });
  });
  return svg;
}

// Seconds this deletion took against retraining the model from scratch.
export function costBars(rows) {
  const W = 640, rowH = 28, top = 10, H = top + rows.length * rowH + 8, x0 = 200, x1 = W - 90;
  const svg = frame("cost", W, H, "Time of this deletion against retraining from scratch");
  const max = Math.max(...rows.map((r) => r.seconds || 0), 1e-9);
  rows.forEach((r, k) => {
    const y = top + k * rowH, w = ((x1 - x0) * (r.seconds || 0)) / max;
    svg.append(text(x0 - 8, y + 15, r.label, { "text-anchor": "end" }), s("rect", { x: x0, y: y + 4, width: Math.max(w, 1), height: 14, fill: r.color, rx: 2, "data-bar": r.label }), text(x0 + w + 6, y + 15, r.text, { "font-size": 10 }));
  });
  return svg;
}
