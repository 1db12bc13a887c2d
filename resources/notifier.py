"""Alerts to people: Slack when it is configured, otherwise a log line and a file nobody can miss.

Slack secrets are read from the environment when an alert is sent, never from run config, so they
never reach Dagster's run storage or the UI, and they are redacted from anything written or logged.
Without Slack (the local default), every alert is one JSON log line and one JSON file under
`<PLATFORM_DATA_DIR>/alerts/`; a failed Slack delivery falls back to the same.
"""

import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
from pydantic import Field

from resources import settings
from resources.storage import write_bytes_atomically

DEFAULT_CHANNEL = "#platform-alerts"
_UNSAFE = re.compile(r"[^a-z0-9_]+")
# Shorter path segments of a webhook URL (like `services`) are not secret and are left readable.
MIN_SECRET_FRAGMENT = 9


class Notifier(dg.ConfigurableResource):
    """Sends alerts: a Slack webhook, else a Slack bot token, else a log line and an alert file."""

    alerts_dir: str = Field(
        default="", description="Folder of alert files. Empty: <PLATFORM_DATA_DIR>/alerts."
    )

    @property
    def folder(self) -> Path:
        return Path(self.alerts_dir or settings.data_dir() / "alerts")

    def notify(self, kind: str, summary: str, details: Mapping[str, Any]) -> str:
        """Deliver one alert; returns where it went: 'slack' or the path of the alert file."""
        alert = {
            "kind": kind,
            "summary": summary,
            "details": dict(details),
            "created_at": datetime.now(UTC).isoformat(),
        }
        configured = settings.slack_secrets()
        secrets = [fragment for value in configured.values() for fragment in _fragments(value)]
        if secrets:
            try:
                _send_to_slack(alert, configured)
                return "slack"
            except Exception as error:  # an alert must never be lost to a Slack outage
                alert["slack_error"] = _redact(f"{type(error).__name__}: {error}", secrets)
        return self._write(_redact_alert(alert, secrets))

    def _write(self, alert: dict[str, Any]) -> str:
        line = json.dumps(alert, default=str, sort_keys=True)
        dg.get_dagster_logger("alerts").warning(line)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        kind = _UNSAFE.sub("_", alert["kind"].lower())
        path = self.folder / f"{stamp}-{kind}-{uuid.uuid4().hex[:8]}.json"
        write_bytes_atomically(path, (line + "\n").encode())
        return str(path)


def _send_to_slack(alert: dict[str, Any], configured: Mapping[str, str]) -> None:
    """Post through the incoming webhook when one is set, else through the bot token's channel."""
    text = slack_text(alert)
    webhook_url = configured.get(settings.SLACK_WEBHOOK_URL_ENV)
    if webhook_url:
        from slack_sdk.webhook import WebhookClient

        response = WebhookClient(webhook_url).send(text=text)
        if response.status_code != 200:
            raise RuntimeError(f"Slack webhook answered {response.status_code}: {response.body}")
        return
    from dagster_slack import SlackResource

    channel = settings.slack_channel(DEFAULT_CHANNEL)
    client = SlackResource(token=configured[settings.SLACK_BOT_TOKEN_ENV]).get_client()
    client.chat_postMessage(channel=channel, text=text)


def slack_text(alert: dict[str, Any]) -> str:
    """A readable message: the summary in bold, then one line per detail."""
    lines = [f"*{alert['summary']}*"]
    lines += [f"• {name}: {value}" for name, value in alert["details"].items()]
    return "\n".join(lines)


def _fragments(secret: str) -> list[str]:
    """The secret and, for a webhook URL, its path and path segments: a server may echo any of them."""
    path = urlsplit(secret).path
    segments = [part for part in path.split("/") if len(part) >= MIN_SECRET_FRAGMENT]
    return sorted({secret, *([path] if path else []), *segments}, key=len, reverse=True)


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    return text


def _redact_alert(alert: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
    """The alert with any secret that slipped into its text (an error quoting a URL) masked."""
    if not secrets:
        return alert
    return json.loads(_redact(json.dumps(alert, default=str), secrets))
