// What the user pinned in this browser (localStorage): the log's public key, and a signed tree head to check
// later heads and receipts against. Both stay until the user replaces them; nothing here comes from the server
// unless the user chose to pin what it served.

import { loadPublicKey } from "./verify/keys.js";
import { parseExact } from "./verify/canonical.js";

const KEY = "unlearn.pinnedKey";
const HEAD = "unlearn.pinnedHead";

export const pinnedKeyText = () => localStorage.getItem(KEY);
export const pinnedHeadText = () => localStorage.getItem(HEAD);

export async function pinKey(text) {
  const pinned = await loadPublicKey(text); // throws on anything that is not an Ed25519 key
  localStorage.setItem(KEY, text.trim());
  return pinned;
}

export async function pinnedKey() {
  const text = pinnedKeyText();
  return text ? loadPublicKey(text) : null;
}

export function pinHead(text) {
  localStorage.setItem(HEAD, text);
}

export function pinnedHead() {
  const text = pinnedHeadText();
  return text ? parseExact(text) : null;
}

export function forgetPins() {
  localStorage.removeItem(KEY);
  localStorage.removeItem(HEAD);
}
