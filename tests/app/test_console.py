"""The console is served by the API with a strict Content-Security-Policy and names nothing outside the service;
GET /v1/keys/current tells it who is signed in; signed audit documents keep Python's number text."""

import re
from pathlib import Path

from app.console.router import STATIC
from tests.conftest import auth

NAMESPACES = {"http://www.w3.org/2000/svg"}  # an XML namespace name, never fetched


def test_console_page_and_assets_carry_the_policy(client):
    page = client.get("/console", headers={"Authorization": ""})  # the page itself needs no key
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    scripts = re.findall(r'src="([^"]+)"', page.text) + re.findall(r'href="(/[^"]+)"', page.text)
    assert "/console/static/js/main.js" in scripts
    for asset in scripts:
        loaded = client.get(asset, headers={"Authorization": ""})
        assert loaded.status_code == 200, asset
        assert loaded.headers["content-security-policy"] == csp
    module = client.get("/console/static/js/verify/checks.js")
    assert module.headers["content-type"].startswith(("text/javascript", "application/javascript"))


def test_console_files_name_no_external_url():
    files = [p for p in Path(STATIC).rglob("*") if p.is_file()]
    assert any(p.suffix == ".js" for p in files) and (Path(STATIC) / "index.html").exists()
    for path in files:
        text = path.read_text(encoding="utf-8")
        urls = set(re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s\"'`)]*", text, re.IGNORECASE))
        assert urls <= NAMESPACES, (path.name, urls)
        assert "innerHTML" not in text and "eval(" not in text, path.name  # text is set as text, never parsed


def test_current_key_names_the_callers_role(client, make_key):
    admin = client.get("/v1/keys/current").json()
    assert admin["role"] == "admin" and "key" not in admin
    reader = make_key("reader", name="just looking")
    me = client.get("/v1/keys/current", headers=auth(reader)).json()
    assert (me["role"], me["name"]) == ("reader", "just looking")
    assert client.get("/v1/keys/current", headers=auth("unl_nope")).status_code == 401


def test_signed_documents_keep_pythons_number_text(app, client, tenant):
    """The web console recomputes hashes from the text served: floats must be written as the canonical form writes
    them (Python's repr: 1e-05 and 1e+16, where FastAPI's default encoder writes 1e-5 and 1e16)."""
    from app.audit.service import append_entry

    evidence = {"tiny": 1e-05, "huge": 1e16, "plain": 0.25}
    with app.state.sessionmaker() as s:
        entry = append_entry(s, actor="test", event_type="deletion.started", tenant_id=tenant["id"],
                             refs={"model_id": "m-x", "request_id": "d-x"}, evidence=evidence)  # fmt: skip
        s.commit()
        seq = entry.seq
    for path in (f"/v1/audit/{seq}", "/v1/audit?deletion_id=d-x"):
        text = client.get(path).text
        assert '"tiny":1e-05' in text and '"huge":1e+16' in text and '"plain":0.25' in text, (path, text[:400])
