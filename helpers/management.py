"""A small client for RabbitMQ's management HTTP API.

It is how the tutorial reads what the broker really holds (queues and their counts,
exchanges, bindings, connections, channels, consumers) and switches the firehose tracer on
and off for a virtual host. Only the endpoints the tutorial uses are here.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

from helpers.errors import ManagementError

Json = dict[str, Any]


def _q(name: str) -> str:
    """Quote a vhost or resource name for a URL path ("/" becomes %2F)."""
    return quote(name, safe="")


class ManagementClient:
    """Talks to `/api/...` of one broker as one user."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 5.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        self._session.auth = (username, password)
        self._session.headers["content-type"] = "application/json"

    def __repr__(self) -> str:
        return f"ManagementClient({self.base_url!r})"

    # -- plumbing ---------------------------------------------------------------------------

    def request(self, method: str, path: str, json: Any = None, ok404: bool = False) -> Any:
        """Call `METHOD /api/PATH`; raise ManagementError with a hint on failure."""
        url = f"{self.base_url}/api/{path.lstrip('/')}"
        try:
            r = self._session.request(method, url, json=json, timeout=self.timeout)
        except requests.ConnectionError:
            raise ManagementError(
                f"The management API at {self.base_url} does not answer: is the broker running "
                "with the rabbitmq_management plugin enabled?"
            ) from None
        except requests.Timeout:
            raise ManagementError(f"The management API at {self.base_url} timed out.") from None
        if r.status_code == 401:
            raise ManagementError(
                "The management API refused these credentials (401): check the user name and "
                "password, and that the user has a management tag."
            )
        if r.status_code == 404 and ok404:
            return None
        if r.status_code >= 400:
            reason = _reason(r)
            raise ManagementError(f"{method} /api/{path} failed with {r.status_code}: {reason}")
        if not r.content:
            return None
        return r.json()

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    # -- reading state ----------------------------------------------------------------------

    def overview(self) -> Json:
        return self.get("overview")

    def rabbitmq_version(self) -> str:
        return self.overview().get("rabbitmq_version", "unknown")

    def whoami(self) -> Json:
        return self.get("whoami")

    def vhosts(self) -> list[Json]:
        return self.get("vhosts")

    def vhost(self, name: str) -> Json | None:
        return self.request("GET", f"vhosts/{_q(name)}", ok404=True)

    def queues(self, vhost: str = "/") -> list[Json]:
        return self.get(f"queues/{_q(vhost)}")

    def queue(self, name: str, vhost: str = "/") -> Json | None:
        return self.request("GET", f"queues/{_q(vhost)}/{_q(name)}", ok404=True)

    def exchanges(self, vhost: str = "/") -> list[Json]:
        return self.get(f"exchanges/{_q(vhost)}")

    def bindings(self, vhost: str = "/") -> list[Json]:
        return self.get(f"bindings/{_q(vhost)}")

    def connections(self) -> list[Json]:
        return self.get("connections")

    def vhost_connections(self, vhost: str = "/") -> list[Json]:
        return self.get(f"vhosts/{_q(vhost)}/connections")

    def channels(self) -> list[Json]:
        return self.get("channels")

    def connection_channels(self, connection_name: str) -> list[Json]:
        return self.get(f"connections/{_q(connection_name)}/channels")

    def consumers(self, vhost: str = "/") -> list[Json]:
        return self.get(f"consumers/{_q(vhost)}")

    # -- changing state ---------------------------------------------------------------------

    def create_vhost(self, name: str, tracing: bool = False) -> None:
        self.request("PUT", f"vhosts/{_q(name)}", json={"tracing": tracing})

    def delete_vhost(self, name: str) -> None:
        self.request("DELETE", f"vhosts/{_q(name)}", ok404=True)

    def set_permissions(
        self, vhost: str, user: str, configure: str = ".*", write: str = ".*", read: str = ".*"
    ) -> None:
        self.request(
            "PUT",
            f"permissions/{_q(vhost)}/{_q(user)}",
            json={"configure": configure, "write": write, "read": read},
        )

    def set_tracing(self, vhost: str, enabled: bool) -> None:
        """Switch the firehose (`amq.rabbitmq.trace`) on or off for one vhost."""
        self.request("PUT", f"vhosts/{_q(vhost)}", json={"tracing": enabled})

    def tracing(self, vhost: str) -> bool:
        info = self.vhost(vhost)
        return bool(info and info.get("tracing"))

    def close_connection(self, name: str, reason: str = "closed by the tutorial") -> None:
        self._session.headers["X-Reason"] = reason
        try:
            self.request("DELETE", f"connections/{_q(name)}", ok404=True)
        finally:
            del self._session.headers["X-Reason"]


def _reason(r: requests.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:200]
    return str(body.get("reason") or body.get("error") or body)[:200]
