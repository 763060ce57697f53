"""alerts: tell people what the monitor decided, through Apprise (Slack, email, webhooks...).

URLs come from `alerts.urls` in params.yaml plus DRIFTLOOP_ALERT_URLS (comma separated), so
secrets can stay out of the repository. An alert that cannot be delivered is logged and
reported back; it never fails the check.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from driftloop.config import AlertParams

log = logging.getLogger(__name__)
ENV_URLS = "DRIFTLOOP_ALERT_URLS"


def alert_urls(alerts: AlertParams, env: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    extra = [u.strip() for u in env.get(ENV_URLS, "").split(",") if u.strip()]
    return list(dict.fromkeys([*alerts.urls, *extra]))


def should_alert(alerts: AlertParams, *, action: str, drift_status: str,
                 performance_drop: float | None, performance_limit: float) -> bool:
    """Alert on the policy actions listed in `alerts.on`, on any drift ("drift"), or on a
    performance drop beyond the policy's limit ("performance")."""
    on = set(alerts.on)
    return (action in on or ("drift" in on and drift_status == "drift")
            or ("performance" in on and performance_drop is not None
                and performance_drop > performance_limit))


def message(result: dict, decision: dict) -> tuple[str, str]:
    """Title and body of the alert for a check and its policy decision."""
    title = f"driftloop: {decision['action']} after checking {result['batch']}"
    lines = [f"Drift: {result['status']}: {result['reason']}",
             f"Policy: {decision['action']}: {decision['reason']}",
             f"Champion version: {result.get('champion_version')}"]
    if result.get("prediction_drift"):
        lines.append(f"Prediction drift (Wasserstein, normed): "
                     f"{result['prediction_drift']['score']:.3f}")
    if result.get("performance"):
        p = result["performance"]
        lines.append(f"Labelled {p['metric']} on {p['window']}: {p['value']:.4f} "
                     f"(champion test {p.get('champion_test')})")
    if result.get("report_html"):
        lines.append(f"Report: {result['report_html']}")
    return title, "\n".join(lines)


def send(urls: list[str], title: str, body: str, *, timeout: float) -> list[str]:
    """Notify every URL; returns the URLs that failed (logged, never raised)."""
    if not urls:
        return []
    import apprise

    failed = []
    for url in urls:
        try:
            ap = apprise.Apprise()
            if not ap.add(url, asset=apprise.AppriseAsset(), tag=None):
                raise ValueError("Apprise does not understand this URL")
            for server in ap:
                server.socket_connect_timeout = server.socket_read_timeout = timeout
            ok = ap.notify(title=title, body=body)
        except Exception as exc:  # an alert must never take the check down
            log.warning("alert to %s failed: %s: %s", _redact(url), type(exc).__name__, exc)
            ok = False
        else:
            if not ok:
                log.warning("alert to %s was not delivered; check the URL and that the "
                            "receiver is up", _redact(url))
        if not ok:
            failed.append(_redact(url))
    return failed


def _redact(url: str) -> str:
    """The scheme and host only: URLs often carry tokens."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}/..."
