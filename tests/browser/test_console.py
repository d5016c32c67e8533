"""The web console in a real Chromium: sign in with an API key, browse to a deletion, watch it finish, see its
evidence plotted, check its receipt in the browser (and reject tampered copies), check the log's tree head and its
consistency, and load /docs with no request leaving the service. Screenshots of each step are kept."""

import json
import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait
from unlearn_client import UnlearnClient

from app.audit.signing import RECEIPT_DOMAIN, signer_at
from tests.browser.conftest import console_errors, requested_urls
from tests.helpers import DIGITS_CLASSES, DIGITS_FEATURES, digits_ids, digits_safetensors

pytestmark = pytest.mark.integration
ROWS = 600
WAIT_S = 240
LOGREG = {"name": "logreg", "config": {"in_features": DIGITS_FEATURES, "num_classes": DIGITS_CLASSES}}


@pytest.fixture(scope="module")
def world(service, tmp_path_factory):
    """A trained model with one finished deletion, made through the client package."""
    folder = tmp_path_factory.mktemp("browser-data")
    (folder / "digits.safetensors").write_bytes(digits_safetensors(rows=ROWS))
    (folder / "ids.txt").write_text(digits_ids(ROWS))
    with UnlearnClient(service.url, service.api_key) as client:
        dataset = client.upload_dataset("digits", folder / "digits.safetensors", ids_path=folder / "ids.txt")
        train = {"epochs": 30, "batch_size": 32, "lr": 0.1, "alpha": 0.0, "seed": 0}
        model = client.train_model(name="digits-logreg", dataset_id=dataset["id"], architecture=LOGREG, train=train)
        model = client.wait_for_model(model["id"], timeout=WAIT_S, poll_interval=0.3)
        assert model["status"] == "ready", model
        first = client.request_deletion(model["id"], [f"user-{i}" for i in range(40)], reason="account closed")
        first = client.wait_for_deletion(first["id"], timeout=WAIT_S, poll_interval=0.3)
        assert first["status"] == "succeeded", first
        key_doc = client.get_public_key()
    return {"model": model, "deletion": first, "key": json.dumps(key_doc)}


def wait(driver, condition, timeout=30):
    return WebDriverWait(driver, timeout).until(condition)


def ready(driver):
    wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")


def shot(driver, artifacts, name):
    driver.execute_script("window.scrollTo(0, 0)")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(height + 40, 900), 6000))
    driver.save_screenshot(str(artifacts / f"{name}.png"))


def test_console_end_to_end(browser, service, world, artifacts):
    d = browser
    d.get(f"{service.url}/console")
    ready(d)
    d.find_element(By.CSS_SELECTOR, "[data-testid=api-key]").send_keys("unl_not_a_key")
    d.find_element(By.CSS_SELECTOR, "[data-testid=signin] button").click()
    wait(d, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=signin]"), "unknown or revoked"))
    key_box = d.find_element(By.CSS_SELECTOR, "[data-testid=api-key]")
    key_box.clear()
    key_box.send_keys(service.api_key)
    d.find_element(By.CSS_SELECTOR, "[data-testid=signin] button").click()
    wait(d, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=whoami]"), "admin"))
    assert all("401" in line for line in console_errors(d)), "only the refused key's request failed"

    # The deletions list, then the deletion finished in the fixture.
    d.get(f"{service.url}/console#/deletions")
    ready(d)
    link = wait(d, EC.element_to_be_clickable((By.CSS_SELECTOR, "[data-testid=deletion-link]")))
    shot(d, artifacts, "01-deletions")
    link.click()
    ready(d)
    wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=evidence] svg[data-plot=cost]")))
    histogram = d.find_element(By.CSS_SELECTOR, "svg[data-plot=loss-histogram]")
    for panel in ("before", "after"):
        for series in ("forget", "holdout"):
            bars = histogram.find_elements(By.CSS_SELECTOR, f"g[data-panel={panel}] rect[data-series={series}]")
            assert bars, f"{panel}: no {series} bars"
    auc = d.find_element(By.CSS_SELECTOR, "svg[data-plot=membership-auc]")
    assert auc.find_elements(By.CSS_SELECTOR, "circle[data-point=before]") and auc.find_elements(
        By.CSS_SELECTOR, "circle[data-point=after]"
    )
    assert auc.find_elements(By.CSS_SELECTOR, "rect[data-role=target-band]")
    assert len(d.find_elements(By.CSS_SELECTOR, "svg[data-plot=accuracy] rect[data-bar]")) == 6
    cost = d.find_elements(By.CSS_SELECTOR, "svg[data-plot=cost] rect[data-bar]")
    assert len(cost) == 2, "this deletion against the model's training run"
    verdict = d.find_element(By.CSS_SELECTOR, "[data-testid=verdict]")
    assert verdict.get_attribute("data-met") in ("true", "false") and "Target" in verdict.text
    shot(d, artifacts, "02-deletion-evidence")
    assert not console_errors(d)

    # Pin the log's key (the copy the test holds), then verify the receipt in the browser.
    d.get(f"{service.url}/console#/verify")
    ready(d)
    area = d.find_element(By.CSS_SELECTOR, "[data-testid=pin-key-text]")
    area.clear()
    d.execute_script("arguments[0].value = arguments[1]", area, world["key"])
    d.find_element(By.CSS_SELECTOR, "[data-testid=pin-key]").click()
    wait(d, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=pinned-key]"), "Pinned key id"))
    deletion_id = world["deletion"]["id"]
    d.find_element(By.CSS_SELECTOR, "[data-testid=receipt-deletion-id]").send_keys(deletion_id)
    d.find_element(By.CSS_SELECTOR, "[data-testid=fetch-receipt]").click()
    receipt_box = d.find_element(By.CSS_SELECTOR, "[data-testid=receipt-text]")
    wait(d, lambda _: receipt_box.get_attribute("value").startswith("{"))
    original = receipt_box.get_attribute("value")
    report = verify_in_browser(d)
    assert report.get_attribute("data-verified") == "true", report.text
    assert "VERIFIED" in report.text and "every field the log records equals the logged value" in report.text
    assert "signed by the pinned key" in report.text and "inclusion in the signed tree" in report.text
    shot(d, artifacts, "03-receipt-verified")

    # Tampered copies are rejected, each with the check that caught it: an edit breaks the receipt's signature;
    # an edit signed again with the log's own key (what its holder could do) contradicts the logged entries.
    receipt = json.loads(original)
    signer = signer_at(service.workdir / "audit-signing-key.pem")  # the key file the service signs with
    edited = json.loads(original)
    edited["request"]["sample_count"] += 1
    better = json.loads(original)
    better["evidence"]["after"]["membership_auc"] = 0.5
    better = signer.sign(RECEIPT_DOMAIN, {k: v for k, v in better.items() if k != "signature"})
    exact = json.loads(original)  # claims the removal was exact when the log says approximate
    exact["request"]["removed_by"] = "retrain"
    exact = signer.sign(RECEIPT_DOMAIN, {k: v for k, v in exact.items() if k != "signature"})
    for changed, expected in (
        (edited, "receipt: signature does not verify"),
        (better, "evidence in the receipt differs from entry"),
        (exact, "request.removed_by in the receipt ('retrain') differs"),
    ):
        d.execute_script("arguments[0].value = arguments[1]", receipt_box, json.dumps(changed))
        report = verify_in_browser(d)
        assert report.get_attribute("data-verified") == "false" and "REJECTED" in report.text
        assert expected in report.text, report.text
    # A digit changed inside the signed text itself (no re-serialisation): the exact parser must catch it.
    auc_text = json.dumps(receipt["evidence"]["after"]["membership_auc"])
    flipped = original.replace(auc_text, auc_text[:-1] + ("1" if auc_text[-1] != "1" else "2"), 1)
    assert flipped != original
    d.execute_script("arguments[0].value = arguments[1]", receipt_box, flipped)
    report = verify_in_browser(d)
    assert report.get_attribute("data-verified") == "false", report.text
    shot(d, artifacts, "04-receipt-rejected")

    # The audit log: the head verifies against the pinned key; pin it, let the log grow, check consistency.
    d.get(f"{service.url}/console#/audit")
    ready(d)
    wait(
        d, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=head-status]"), "Signed by the pinned key")
    )
    d.find_element(By.CSS_SELECTOR, "[data-testid=pin-head]").click()
    entry_check = wait(d, EC.element_to_be_clickable((By.CSS_SELECTOR, "[data-testid=check-entry-1]")))
    entry_check.click()
    wait(d, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=audit]"), "signed, in the tree of"))
    with UnlearnClient(service.url, service.api_key) as client:
        client.create_key("grows the log", "reader")
    d.refresh()
    ready(d)
    wait(d, EC.element_to_be_clickable((By.CSS_SELECTOR, "[data-testid=check-consistency]"))).click()
    wait(d, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=consistency-result]"), "Consistent"))
    shot(d, artifacts, "05-audit-log")
    assert not console_errors(d)


def verify_in_browser(d):
    result = d.find_element(By.CSS_SELECTOR, "[data-testid=receipt-result]")
    d.execute_script("arguments[0].replaceChildren()", result)
    d.find_element(By.CSS_SELECTOR, "[data-testid=verify-receipt]").click()
    return wait(d, lambda _: result.find_element(By.CSS_SELECTOR, "[data-testid=verify-report]"))


def test_a_deletion_requested_in_the_console_updates_live(browser, service, world, artifacts):
    d = browser
    d.get(f"{service.url}/console#/models/{world['model']['id']}")
    ready(d)
    form = wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=deletion-form]")))
    form.find_element(By.CSS_SELECTOR, "[data-testid=sample-ids]").send_keys("user-100\nuser-101\nuser-102")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(d, lambda _: "#/deletions/" in d.current_url)
    url = d.current_url
    wait(d, lambda _: d.find_elements(By.CSS_SELECTOR, "[data-testid=deletion-live] [data-status=succeeded]"), WAIT_S)
    assert d.current_url == url, "the page updated in place"
    wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, "svg[data-plot=membership-auc]")))
    shot(d, artifacts, "06-deletion-live")
    assert not console_errors(d)


def test_docs_load_with_no_request_leaving_the_service(browser, service, artifacts):
    d = browser
    requested_urls(d)  # drop what earlier pages requested
    for page, rendered in (("/docs", ".swagger-ui .opblock"), ("/redoc", "[role=navigation], .menu-content")):
        d.get(f"{service.url}{page}")
        wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, rendered)), 60)
        time.sleep(0.5)
        urls = [u for u in requested_urls(d) if not u.startswith(("data:", "blob:"))]
        assert urls and all(u.startswith(service.url) for u in urls), urls
        shot(d, artifacts, f"07-{page.strip('/')}")
