// RFC 6962 Merkle tree hashes and the proof checks of RFC 9162 sections 2.1.3.2 (inclusion) and 2.1.4.2
// (consistency), as unlearn_client.verify.merkle runs them. Trees are over leaf hashes: sha256(0x00 || entry hash).

import { VerificationError, concat, sha256 } from "./canonical.js";

export const leafHash = (data) => sha256(concat(Uint8Array.of(0), data));
export const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));
const equal = (a, b) => a.length === b.length && a.every((v, k) => v === b[k]);

export async function emptyRoot() {
  return sha256(new Uint8Array(0));
}

export async function rootFromInclusion(index, size, leaf, proof) {
  if (!(index >= 0 && index < size)) throw new VerificationError(`leaf index ${index} is not inside a tree of size ${size}`);
  let fn = BigInt(index), sn = BigInt(size - 1), r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new VerificationError("inclusion proof is longer than the tree is deep");
    if ((fn & 1n) || fn === sn) {
      r = await nodeHash(p, r);
      if (!(fn & 1n)) while (fn && !(fn & 1n)) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) throw new VerificationError("inclusion proof is shorter than the tree is deep");
  return r;
}

export async function verifyInclusion(index, size, leaf, proof, root) {
  if (!equal(await rootFromInclusion(index, size, leaf, proof), root)) {
    throw new VerificationError(`inclusion proof for leaf ${index} does not lead to the root of tree size ${size}`);
  }
}

export async function verifyConsistency(first, second, firstRoot, secondRoot, proof) {
  if (!(first >= 0 && first <= second)) throw new VerificationError(`first size ${first} is not between 0 and ${second}`);
  if (first === 0) {
    if (proof.length) throw new VerificationError("consistency proof from the empty tree must be empty");
    if (!equal(firstRoot, await emptyRoot())) throw new VerificationError("root of the empty tree is not sha256('')");
    return;
  }
  if (first === second) {
    if (proof.length) throw new VerificationError("consistency proof between equal sizes must be empty");
    if (!equal(firstRoot, secondRoot)) throw new VerificationError("trees of equal size have different roots");
    return;
  }
  if (!proof.length) throw new VerificationError("consistency proof is empty");
  const path = [...proof];
  if ((first & (first - 1)) === 0) path.unshift(firstRoot);
  let fn = BigInt(first - 1), sn = BigInt(second - 1);
  while (fn & 1n) { fn >>= 1n; sn >>= 1n; }
  let fr = path[0], sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) throw new VerificationError("consistency proof is longer than needed");
    if ((fn & 1n) || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      if (!(fn & 1n)) while (fn && !(fn & 1n)) { fn >>= 1n; sn >>= 1n; }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) throw new VerificationError("consistency proof is shorter than needed");
  if (!equal(fr, firstRoot)) throw new VerificationError(`consistency proof does not reproduce the root of tree size ${first}`);
  if (!equal(sr, secondRoot)) throw new VerificationError(`consistency proof does not reproduce the root of tree size ${second}`);
}
