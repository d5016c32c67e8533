"""The in-browser verifier computes what the service computes: canonical JSON (exact number text, key order by
code point, escapes), sample-id commitments, and RFC 6962 inclusion and consistency proofs for every small tree,
run in Chromium against the Python implementation the service signs with."""

import hashlib
import json

import pytest
from unlearn_client.verify.canonical import canonical_json, commit_sample_ids
from unlearn_client.verify.merkle import MerkleTree

pytestmark = pytest.mark.integration

CASES = [
    {"b": 1.0, "a": [1e-05, 1e16, 1.5e300, -0.0, 5e-324, 123456789012345678901234567890, 0.1, 2.5, -7]},
    {"é": 'ünï\u2028\u0001"\\/\t', "\U0001f600": "astral", "\uffff": "bmp max", "z": None, "y": True, "x": False},
    {"nested": {"list": [[], {}, [{"k": 0.30000000000000004}]], "empty": ""}, "B": 1, "a": 2, "_": 3},
    [0.000123, 1e-7, 3.141592653589793, 1e22, 1e21, 100.0, 2**53 + 1],
]
IDS = ["user-9", "user-10", "Ünïcode", "\U0001f600 smile", 'quote"d', "tab\there", "~tilde", "del\x7f"]


def run(driver, script: str, *args):
    """Run `script` (an async function body with `m` the imported module(s)) in the page; return its result."""
    wrapped = f"""
        const done = arguments[arguments.length - 1];
        const args = Array.from(arguments).slice(0, -1);
        (async () => {{ {script} }})().then(done, (e) => done("ERROR " + e));
    """
    return driver.execute_async_script(wrapped, *args)


@pytest.fixture(scope="module")
def page(browser, service):
    browser.get(f"{service.url}/console")
    browser.set_script_timeout(60)
    return browser


def test_canonical_json_and_commitments_match_the_service(page):
    texts = [json.dumps(case, ensure_ascii=False, separators=(",", ":")) for case in CASES]  # as JSONResponse writes
    got = run(
        page,
        """const m = await import("/console/static/js/verify/canonical.js");
           const out = args[0].map((t) => m.canonical(m.parseExact(t)));
           out.push(await m.commitSampleIds(args[1]));
           return out;""",
        texts,
        IDS,
    )
    assert not isinstance(got, str), got
    assert got[: len(CASES)] == [canonical_json(case).decode("utf-8") for case in CASES]
    assert got[-1] == commit_sample_ids(IDS)


def test_inclusion_and_consistency_proofs_of_every_small_tree(page):
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(17)]
    tree = MerkleTree([hashlib.sha256(b"\x00" + leaf).digest() for leaf in leaves])
    cases = []
    for n in range(1, 18):
        for i in range(n):
            cases.append(
                ["inc", i, n, leaves[i].hex(), [p.hex() for p in tree.inclusion_proof(i, n)], tree.root(n).hex()]
            )
        for m in range(0, n + 1):
            cases.append(
                ["con", m, n, tree.root(m).hex(), tree.root(n).hex(), [p.hex() for p in tree.consistency_proof(m, n)]]
            )
    script = """
        const c = await import("/console/static/js/verify/canonical.js");
        const k = await import("/console/static/js/verify/merkle.js");
        const b = (h) => c.fromHex(h, "node");
        const results = [];
        for (const [kind, x, n, a, p, r] of args[0]) {
          const tamper = args[1];
          try {
            if (kind === "inc") {
              const proof = p.map(b);
              if (tamper && proof.length) proof[0][0] ^= 1;
              await k.verifyInclusion(x, n, await k.leafHash(b(a)), proof, b(r));
            } else {
              const proof = r.map(b);
              if (tamper && proof.length) proof[proof.length - 1][0] ^= 1;
              await k.verifyConsistency(x, n, b(a), b(p), proof);
            }
            results.push("ok");
          } catch (e) { results.push(String(e.message)); }
        }
        return results;
    """
    honest = run(page, script, cases, False)
    assert honest == ["ok"] * len(cases), [(case[:3], r) for case, r in zip(cases, honest, strict=True) if r != "ok"][
        :5
    ]
    tampered = run(page, script, cases, True)
    has_proof = [bool(case[4] if case[0] == "inc" else case[5]) for case in cases]
    assert all(r != "ok" for r, proof in zip(tampered, has_proof, strict=True) if proof)
