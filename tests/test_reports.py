"""The report server: a report's link opens its page, and nothing but reports is served."""

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port

from resources import settings
from resources.reports import report_server, report_url
from resources.storage import LocalStore

PAGE = "flight_delay/feature_drift/date=2013-03-01/report.html"
SCRIPT = "flight_delay/feature_drift/_evidently/evidently-0.7.js"


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStore]:
    """A lake holding a report, its script, a table and a model record, and its report server
    at the address PLATFORM_REPORTS_URL names."""
    store = LocalStore(tmp_path / "lake")
    store.put(PAGE, b"<html><script src='../_evidently/evidently-0.7.js'></script></html>")
    store.put(SCRIPT, b"console.log('evidently')")
    store.put("raw_flights/date=2013-03-01/part-0.parquet", b"PAR1")
    store.put("_registry/flight_delay/versions/v1.json", b"{}")
    port = free_port()
    monkeypatch.setenv(settings.REPORTS_URL_ENV, f"http://127.0.0.1:{port}/")
    server = report_server(store, "127.0.0.1", port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield store
    server.shutdown()
    server.server_close()


def fetch(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, "", b""


def test_a_reports_link_opens_the_page_and_the_files_it_loads(served: LocalStore):
    status, kind, body = fetch(report_url(PAGE))
    assert (status, kind) == (200, "text/html; charset=utf-8")
    assert body == served.get(PAGE)
    script = report_url(PAGE).rsplit("/", 2)[0] + "/_evidently/evidently-0.7.js"
    assert fetch(script)[:2] == (200, "text/javascript"), "the page's relative script loads"


@pytest.mark.parametrize(
    "path",
    [
        "raw_flights/date=2013-03-01/part-0.parquet",
        "_registry/flight_delay/versions/v1.json",
        "flight_delay/feature_drift/date=2013-03-02/report.html",
        "flight_delay/../../../etc/passwd.html",
        "%2e%2e/secret.html",
    ],
)
def test_tables_models_missing_reports_and_escapes_are_not_found(served: LocalStore, path: str):
    base = report_url(PAGE).removesuffix(PAGE)
    assert fetch(base + path)[0] == 404


def test_the_link_follows_the_configured_address(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(settings.REPORTS_URL_ENV, "https://reports.example.com/lake/")
    assert report_url(PAGE) == f"https://reports.example.com/lake/{PAGE}"
    monkeypatch.setenv(settings.REPORTS_URL_ENV, "reports.example.com")
    with pytest.raises(ValueError, match=settings.REPORTS_URL_ENV):
        report_url(PAGE)
