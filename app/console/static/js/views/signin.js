import { signIn } from "../api.js";
import { h, notice } from "../dom.js";

export function signInView(onDone) {
  const input = h("input", { type: "password", name: "api-key", autocomplete: "off", placeholder: "unl_...", required: true, "data-testid": "api-key" });
  const status = h("div");
  const form = h(
    "form",
    { class: "card signin", "data-testid": "signin" },
    h("h1", {}, "Sign in"),
    h("p", {}, "Paste an API key. The console shows what the key's role may see, and offers only the actions it may take. The key stays in this tab (session storage) and is sent only to this service."),
    h("label", {}, "API key", input),
    h("button", { type: "submit" }, "Sign in"),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren();
    try {
      await signIn(input.value.trim());
      onDone();
    } catch (err) {
      status.append(notice("error", err.status === 401 ? "This key is unknown or revoked." : err.message));
    }
  });
  return form;
}
