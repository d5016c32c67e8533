// Small DOM helpers: elements are built with h() and text is always set as text (never parsed as HTML).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export const link = (href, text, attrs = {}) => h("a", { href, ...attrs }, text);

export function fmtTime(iso) {
  if (!iso) return "-";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

export function fmtNum(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "-";
  const n = Number(value);
  return Number.isInteger(n) ? String(n) : n.toFixed(digits);
}

export const fmtPct = (value) => (value === null || value === undefined ? "-" : `${(Number(value) * 100).toFixed(1)}%`);

export function fmtSeconds(s) {
  if (s === null || s === undefined) return "-";
  if (s < 1) return `${(s * 1000).toFixed(0)} ms`;
  if (s < 120) return `${s.toFixed(1)} s`;
  return `${(s / 60).toFixed(1)} min`;
}

export const short = (id) => (id ? String(id).slice(0, 8) : "-");

export function badge(status) {
  return h("span", { class: `badge badge-${status}`, "data-status": status }, status);
}

export function progressBar(fraction, label) {
  const bar = h("div", { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100 });
  const fill = h("div", { class: "progress-fill" });
  const pct = Math.round(Math.min(Math.max(Number(fraction) || 0, 0), 1) * 100);
  fill.style.width = `${pct}%`;
  bar.setAttribute("aria-valuenow", pct);
  bar.append(fill, h("span", { class: "progress-label" }, `${pct}% ${label || ""}`.trim()));
  return bar;
}

export function table(columns, rows, { empty = "Nothing here yet." } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c.label)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((c) => h("td", { class: c.class || null }, c.cell(row)))))),
  );
}

export function notice(kind, ...children) {
  return h("div", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" }, ...children);
}
