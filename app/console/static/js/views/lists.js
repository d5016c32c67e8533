// A table over one list endpoint: the first page, then "Load more" follows next_cursor with the same filters.

import { get } from "../api.js";
import { h, clear, table, notice } from "../dom.js";

export function pagedTable({ path, params = {}, columns, empty, limit = 20, testid }) {
  const rows = [];
  const body = h("div", { class: "paged" });
  const more = h("button", { class: "secondary", type: "button", "data-testid": testid ? `${testid}-more` : null }, "Load more");
  const root = h("section", { "data-testid": testid || null }, body, more);
  let cursor = null;

  async function load(reset) {
    if (reset) { rows.length = 0; cursor = null; }
    more.disabled = true;
    try {
      const page = await get(path, { ...params, limit, cursor });
      rows.push(...page.items);
      cursor = page.next_cursor;
      clear(body).append(table(columns, rows, { empty }));
      more.hidden = !cursor;
    } catch (err) {
      clear(body).append(notice("error", err.message));
    } finally {
      more.disabled = false;
    }
    return rows;
  }
  more.addEventListener("click", () => load(false));
  return { el: root, load, rows };
}
