// The console's entry point: sign-in, navigation and the hash routes. Each view is a function returning an element;
// timers a view starts are stopped when the user navigates away.

import { ApiError, allows, session, signIn, signOut } from "./api.js";
import { h, notice } from "./dom.js";
import { auditView } from "./views/audit.js";
import { deletionView, deletionsView } from "./views/deletions.js";
import { datasetView, datasetsView, modelView, modelsView } from "./views/resources.js";
import { signInView } from "./views/signin.js";
import { verifyView } from "./views/verify.js";

const main = document.getElementById("view");
const who = document.getElementById("who");
let cleanups = [];

const routes = [
  [/^#\/datasets\/([^/]+)$/, (m) => datasetView(m[1])],
  [/^#\/datasets$/, () => datasetsView()],
  [/^#\/models\/([^/]+)$/, (m) => modelView(m[1])],
  [/^#\/models$/, () => modelsView()],
  [/^#\/deletions\/([^/]+)$/, (m, onCleanup) => deletionView(m[1], onCleanup)],
  [/^#\/deletions$/, (m, onCleanup) => deletionsView(onCleanup)],
  [/^#\/audit$/, () => auditView()],
  [/^#\/verify$/, () => verifyView()],
];

function showWho() {
  who.replaceChildren();
  if (!session.me) return;
  const out = h("button", { type: "button", class: "link", "data-testid": "sign-out" }, "sign out");
  out.addEventListener("click", () => { signOut(); render(); });
  who.append(h("span", { "data-testid": "whoami" }, `${session.me.name} · ${session.me.role}${allows("requester") ? "" : " (read-only)"}`), " ", out);
}

async function render() {
  for (const stop of cleanups) stop();
  cleanups = [];
  document.body.dataset.ready = "false";
  if (!session.me && session.key) {
    try { await signIn(session.key); } catch { signOut(); }
  }
  showWho();
  if (!session.me) {
    main.replaceChildren(signInView(() => { if (!location.hash || location.hash === "#/") location.hash = "#/deletions"; else render(); }));
    document.body.dataset.ready = "true";
    return;
  }
  const hash = location.hash && location.hash !== "#/" ? location.hash : "#/deletions";
  const route = routes.find(([re]) => re.test(hash));
  try {
    const view = route ? await route[1](hash.match(route[0]), (stop) => cleanups.push(stop)) : notice("error", `No page at ${hash}.`);
    main.replaceChildren(view);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) { signOut(); return render(); }
    main.replaceChildren(notice("error", err instanceof ApiError ? `${err.status}: ${err.message}` : String(err)));
  }
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", hash.startsWith(a.getAttribute("href"))));
  document.body.dataset.ready = "true";
}

window.addEventListener("hashchange", render);
render();
