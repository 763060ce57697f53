"""alerts: tell people what the monitor decided, through Apprise (Slack, email, webhooks...).

URLs come from `alerts.urls` in params.yaml plus DRIFTLOOP_ALERT_URLS (comma separated), so
secrets can stay out of the repository. An alert that cannot be delivered is logged and
reported back; it never fails the check.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from driftloop.config import AlertParams

log = logging.getLogger(__name__)
ENV_URLS = "DRIFTLOOP_ALERT_URLS"
MIN_SECRET = 4  # shorter pieces of a URL are left in error messages (they match common words)


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
    """Notify every URL; returns the URLs that failed, redacted (logged, never raised).
    Apprise itself logs the URLs it posts to, tokens included, so its logger is muted while
    sending; the lines logged here name each failed URL by scheme and host only."""
    if not urls:
        return []
    import apprise

    failed = []
    with _apprise_muted():
        for url in urls:
            try:
                ap = apprise.Apprise()
                if not ap.add(url, asset=apprise.AppriseAsset(), tag=None):
                    raise ValueError("Apprise does not understand this URL")
                for server in ap:
                    server.socket_connect_timeout = server.socket_read_timeout = timeout
                ok = ap.notify(title=title, body=body)
            except Exception as exc:  # an alert must never take the check down
                log.warning("alert to %s failed: %s: %s", _redact(url), type(exc).__name__,
                            _scrub(str(exc), url))
                ok = False
            else:
                if not ok:
                    log.warning("alert to %s was not delivered; check the URL and that the "
                                "receiver is up", _redact(url))
            if not ok:
                failed.append(_redact(url))
    return failed


@contextmanager
def _apprise_muted() -> Iterator[None]:
    logger = logging.getLogger("apprise")
    before, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = before


_NETWORK_HOST = re.compile(r"localhost|\[[0-9A-Fa-f:.]+\]|[\w-]+(\.[\w-]+)+")


def _host(url: str) -> tuple[str, str]:
    """(host, port) of a URL; the host is "***" when it is not a network address: some
    services keep a token there (slack://TokenA/..., tgram://bot_token/...)."""
    rest = url.partition("://")[2]
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0].rsplit("@", 1)[-1]
    host, port = netloc, ""
    if (m := re.fullmatch(r"(.+):(\d+)", netloc)) and (m[1].startswith("[") or ":" not in m[1]):
        host, port = m[1], m[2]
    return (host, port) if _NETWORK_HOST.fullmatch(host) else ("***", "")


def _redact(url: str) -> str:
    """The scheme and host only: URLs carry tokens in the password, the path, the query and
    sometimes the host itself."""
    host, port = _host(url)
    return f"{url.partition('://')[0]}://{host}{':' + port if port else ''}/..."


def _scrub(text: str, url: str) -> str:
    """`text` (an exception message) without any piece of `url` but its scheme, host and port."""
    host, port = _host(url)
    pieces = set(re.split(r"[/?#&=@:]+", url.partition("://")[2])) - {host, port}
    for piece in sorted((p for p in pieces if len(p) >= MIN_SECRET), key=len, reverse=True):
        text = text.replace(piece, "***")
    return text
