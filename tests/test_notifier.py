"""The notifier: Slack through a webhook when configured, else (or on failure) a log line and a file."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from resources.notifier import Notifier
from resources.settings import SLACK_BOT_TOKEN_ENV, SLACK_WEBHOOK_URL_ENV

SECRET_PATH = "/services/T000/B000/not-a-real-secret"


class FakeSlack(BaseHTTPRequestHandler):
    """Records posted messages; answers with `status` and, like a proxy might, echoes the URL."""

    status = 200
    received: list[dict] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        FakeSlack.received.append(json.loads(body))
        reply = b"ok" if self.status == 200 else f"no such hook {self.path}".encode()
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def slack_webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeSlack]]:
    FakeSlack.received, FakeSlack.status = [], 200
    server = HTTPServer(("127.0.0.1", 0), FakeSlack)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(SLACK_WEBHOOK_URL_ENV, f"http://127.0.0.1:{server.server_port}{SECRET_PATH}")
    monkeypatch.delenv(SLACK_BOT_TOKEN_ENV, raising=False)
    yield FakeSlack
    server.shutdown()
    thread.join()


DETAILS = {"run_id": "abc", "assets": "flight_delay/predictions", "partition": "2013-01-10"}


def test_without_slack_an_alert_is_a_json_file_and_log_line(data_dir, monkeypatch, caplog):
    for variable in (SLACK_WEBHOOK_URL_ENV, SLACK_BOT_TOKEN_ENV):
        monkeypatch.delenv(variable, raising=False)

    where = Notifier().notify("run_failure", "Run abc failed", DETAILS)

    [alert_file] = (data_dir / "alerts").glob("*.json")
    assert where == str(alert_file)
    alert = json.loads(alert_file.read_text())
    assert alert["summary"] == "Run abc failed"
    assert alert["details"] == DETAILS
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith("alerts")]
    assert logged == [alert]


def test_with_a_webhook_the_alert_goes_to_slack(data_dir, slack_webhook):
    where = Notifier().notify("run_failure", "Run abc failed", DETAILS)

    assert where == "slack"
    [message] = slack_webhook.received
    assert "Run abc failed" in message["text"] and "2013-01-10" in message["text"]
    assert not (data_dir / "alerts").exists()


def test_a_failed_slack_delivery_falls_back_to_a_file_without_the_secret(
    data_dir, slack_webhook, caplog
):
    slack_webhook.status = 404

    where = Notifier().notify("run_failure", "Run abc failed", DETAILS)

    [alert_file] = (data_dir / "alerts").glob("*.json")
    assert where == str(alert_file)
    written = alert_file.read_text()
    assert "404" in json.loads(written)["slack_error"]
    assert SECRET_PATH not in written
    assert all(SECRET_PATH not in record.getMessage() for record in caplog.records)
