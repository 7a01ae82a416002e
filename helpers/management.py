"""A small client for RabbitMQ's management HTTP API.

It is how the tutorial reads what the broker really holds (queues and their counts,
exchanges, bindings, connections, channels, consumers) and switches the firehose tracer on
and off for a virtual host. Only the endpoints the tutorial uses are here.

Over https the broker's certificate is checked against the same CA as AMQP over TLS:
`AMQP_CA_FILE` when set, else the system's CA store (see `helpers.broker`).
"""

from __future__ import annotations

import os
import re
import time
from typing import Any
from urllib.parse import quote

import requests

from helpers.errors import ManagementError

Json = dict[str, Any]
GET_RETRIES = 3
# A PEM file with the CA that signed the broker's certificate (a workshop's or a company's
# own CA), for amqps:// and the https management API alike.
CA_FILE_ENV = "AMQP_CA_FILE"


def env_ca_file() -> str | None:
    """The CA file named by AMQP_CA_FILE, or None to use the system's CA store."""
    return os.environ.get(CA_FILE_ENV, "").strip() or None


def without_userinfo(url: str) -> str:
    """`url` without any user:password@, so it can be shown in status lines and errors.

    Management URLs are shown (status, errors, the classroom's summary); the client logs in
    with its own user and password, never with ones written into the URL.
    """
    head, sep, rest = url.strip().partition("://")
    if not sep:  # no scheme (a mistake, but it must not show a password either)
        head, rest = "", head
    return f"{head}{sep}{rest.rpartition('@')[2]}"


def tls_failure(reason: str, host: str, cafile: str | None) -> str:
    """One sentence for a certificate that was not accepted (AMQP over TLS or https)."""
    where = f"the CA in {cafile}" if cafile else "the system's CA store"
    return (
        f"the TLS certificate of {host} was not accepted ({reason}) when checked against "
        f"{where}: set {CA_FILE_ENV} to the PEM file of the CA that signed the broker's "
        "certificate, and connect to a host name the certificate is for."
    )


def _ssl_reason(exc: Exception) -> str:
    """The short reason inside requests' long SSLError text (which repeats the URL)."""
    text = str(exc)
    found = re.search(r"certificate verify failed: ([^('\"]+)", text)
    if found:
        return found.group(1).strip()
    found = re.search(r"\[SSL: [A-Z_]+\] ([^('\"]+)", text)
    return found.group(1).strip() if found else "TLS error"


def _q(name: str) -> str:
    """Quote a vhost or resource name for a URL path ("/" becomes %2F)."""
    return quote(name, safe="")


class ManagementClient:
    """Talks to `/api/...` of one broker as one user."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        timeout: float = 5.0,
        ca_file: str | None = None,
    ):
        """`ca_file` (default: AMQP_CA_FILE) verifies an https API's certificate; without
        either the system's CA store does, as for any https site."""
        self.base_url = without_userinfo(base_url).rstrip("/")
        self.timeout = timeout
        # Passed with each request: a CA on the session alone loses to REQUESTS_CA_BUNDLE.
        self.ca_file = ca_file or env_ca_file()
        self._verify: dict[str, Any] = {"verify": self.ca_file} if self.ca_file else {}
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
            r = self._send(method, url, json)
            # RabbitMQ 4.3 answers a GET of a queue that is being deleted (an exclusive queue
            # whose connection just closed) with an empty 500: ask again, it is gone by then.
            for _ in range(GET_RETRIES):
                if method != "GET" or r.status_code != 500:
                    break
                time.sleep(0.2)
                r = self._send(method, url, json)
        except requests.exceptions.SSLError as exc:
            raise ManagementError(self._tls_problem(exc)) from None
        except requests.ConnectionError:
            raise ManagementError(
                f"The management API at {self.base_url} does not answer: is the broker running "
                "with the rabbitmq_management plugin enabled?"
            ) from None
        except requests.Timeout:
            raise ManagementError(f"The management API at {self.base_url} timed out.") from None
        except requests.RequestException as exc:  # e.g. a URL without http:// or https://
            raise ManagementError(
                f"The management API URL {self.base_url} cannot be used ({exc}): it must look "
                "like http://host:15672 (https:// for a broker with TLS)."
            ) from None
        except OSError as exc:  # requests' own check of the CA file: not there, not readable
            raise ManagementError(
                f"The management API at {self.base_url} cannot be checked over TLS ({exc}): "
                f"point {CA_FILE_ENV} at a readable PEM file."
            ) from None
        if r.status_code == 401:
            reason = _reason(r)
            # A wrong user or password: 3.x says "Login failed", 4.x "Not_Authorized" with
            # error "not_authorized". Anything else means logged in but not allowed.
            if reason not in ("Login failed", "Not_Authorized") and _error(r) != "not_authorized":
                # Logged in fine, but this user may not do that (a classroom student, say).
                raise ManagementError(
                    f"{method} /api/{path} is not allowed for this user (401: {reason}): it "
                    "needs a user tag this one lacks (administrator, management) or "
                    "permissions on that virtual host.",
                    status=401,
                )
            raise ManagementError(
                "The management API refused these credentials (401): check the user name and "
                "password, and that the user has a management tag.",
                status=401,
            )
        if r.status_code == 404 and ok404:
            return None
        if r.status_code >= 400:
            reason = _reason(r)
            raise ManagementError(
                f"{method} /api/{path} failed with {r.status_code}: {reason}", status=r.status_code
            )
        if not r.content:
            return None
        return r.json()

    def _send(self, method: str, url: str, json: Any) -> requests.Response:
        """One request; a GET whose kept-alive connection the API had just closed is sent
        once more on a new one.

        The API closes a connection after 5 s without a request (Cowboy's request_timeout,
        measured on 4.3.6). A request sent in the same instant meets a closed socket, and
        requests reports that as a ConnectionError although the API is up and never saw it.
        A GET changes nothing, so asking again is safe. A timeout or a TLS failure is not
        asked again: it would only double the wait before the same clear error.
        """
        try:
            return self._session.request(
                method, url, json=json, timeout=self.timeout, **self._verify
            )
        except (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError):
            raise  # subclasses of ConnectionError that asking again cannot mend
        except requests.ConnectionError:
            if method != "GET":
                raise
            return self._session.request(
                method, url, json=json, timeout=self.timeout, **self._verify
            )

    def _tls_problem(self, exc: requests.exceptions.SSLError) -> str:
        """One line for a failed https request: an untrusted certificate, or no TLS there."""
        host = self.base_url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
        if "certificate verify failed" in str(exc):
            return f"The management API at {self.base_url}: " + tls_failure(
                _ssl_reason(exc), host, self.ca_file
            )
        return (
            f"The management API at {self.base_url} did not complete a TLS handshake "
            f"({_ssl_reason(exc)}): is it served over https on that port? A broker without "
            "TLS serves it over http."
        )

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    # -- reading state ----------------------------------------------------------------------

    def overview(self) -> Json:
        return self.get("overview")

    def rabbitmq_version(self) -> str:
        return self.overview().get("rabbitmq_version", "unknown")

    def whoami(self) -> Json:
        return self.get("whoami")

    def alarms(self) -> list[tuple[str, str]]:
        """(node, "disk" or "memory") for each resource alarm the nodes report, [] for none.

        From `/api/nodes` (`disk_free_alarm`, `mem_alarm`): statistics, so a stats interval
        late (1 s on the private node, 5 s by default), and a node that has not reported yet
        counts as without alarm. Needs the monitoring (or administrator) tag.
        """
        found = []
        for node in self.get("nodes") or []:
            if node.get("disk_free_alarm"):
                found.append((str(node.get("name", "")), "disk"))
            if node.get("mem_alarm"):
                found.append((str(node.get("name", "")), "memory"))
        return found

    def vhosts(self) -> list[Json]:
        return self.get("vhosts")

    def vhost(self, name: str) -> Json | None:
        return self.request("GET", f"vhosts/{_q(name)}", ok404=True)

    def queues(self, vhost: str = "/") -> list[Json]:
        return self.get(f"queues/{_q(vhost)}")

    def queue(self, name: str, vhost: str = "/") -> Json | None:
        return self.request("GET", f"queues/{_q(vhost)}/{_q(name)}", ok404=True)

    def queue_totals(self, vhost: str = "/") -> list[Json]:
        """Every queue of a vhost with its message counts as the queues hold them now.

        The counts in `queues()` come from the statistics database, which keeps periodic
        samples (every second on the private node, every 5 s by default), so right after a
        publish, an ack or a closed channel they lag.
        With `disable_stats` and `enable_queue_totals` the API skips that database and
        returns each queue's own current `messages`, `messages_ready` and
        `messages_unacknowledged`, which is what a chapter polling for a count needs.
        """
        return self.get(f"queues/{_q(vhost)}?disable_stats=true&enable_queue_totals=true")

    def peek(self, queue: str, vhost: str = "/", count: int = 10, truncate: int = 64) -> list[Json]:
        """Up to `count` ready messages of `queue`, read and put back at once (the management
        UI's "Get messages" with "Nack message requeue true"); each says which exchange it was
        published to. Messages held by a consumer are not seen."""
        body = {
            "count": count,
            "ackmode": "ack_requeue_true",
            "encoding": "auto",
            "truncate": truncate,
        }
        return self.request("POST", f"queues/{_q(vhost)}/{_q(queue)}/get", json=body) or []

    def exchanges(self, vhost: str = "/") -> list[Json]:
        return self.get(f"exchanges/{_q(vhost)}")

    def exchange(self, name: str, vhost: str = "/") -> Json | None:
        return self.request("GET", f"exchanges/{_q(vhost)}/{_q(name)}", ok404=True)

    def bindings(self, vhost: str = "/") -> list[Json]:
        return self.get(f"bindings/{_q(vhost)}")

    def bindings_from(self, exchange: str, vhost: str = "/") -> list[Json]:
        """The bindings whose source is `exchange` ([] when it does not exist)."""
        path = f"exchanges/{_q(vhost)}/{_q(exchange)}/bindings/source"
        return self.request("GET", path, ok404=True) or []

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

    def create_vhost(
        self,
        name: str,
        tracing: bool = False,
        description: str | None = None,
        tags: list[str] | None = None,
    ) -> None:
        """Create (or update) a vhost. Each PUT replaces description and tags: omitted = empty."""
        body: Json = {"tracing": tracing}
        if description is not None:
            body["description"] = description
        if tags is not None:
            body["tags"] = ",".join(tags)
        self.request("PUT", f"vhosts/{_q(name)}", json=body)

    def declare_exchange(
        self,
        name: str,
        vhost: str,
        type: str = "fanout",
        internal: bool = False,
        durable: bool = False,
    ) -> None:
        """Declare an exchange (by default as `exchange_declare` with its defaults would)."""
        body = {"type": type, "durable": durable, "auto_delete": False, "internal": internal}
        self.request("PUT", f"exchanges/{_q(vhost)}/{_q(name)}", json=body)

    def delete_exchange(self, name: str, vhost: str) -> None:
        self.request("DELETE", f"exchanges/{_q(vhost)}/{_q(name)}", ok404=True)

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
        """Is the firehose on in `vhost`? Read from the vhost list, which a user with only the
        `management` tag may read too (GET /api/vhosts/{name} needs an administrator)."""
        info = next((v for v in self.vhosts() if v.get("name") == vhost), None)
        return bool(info and info.get("tracing"))

    # -- users (classroom provisioning; every call here needs an administrator) -------------

    def users(self) -> list[Json]:
        return self.get("users")

    def user(self, name: str) -> Json | None:
        return self.request("GET", f"users/{_q(name)}", ok404=True)

    def put_user(self, name: str, password: str, tags: list[str]) -> None:
        """Create a user or update it: sets its password and replaces its tags."""
        self.request(
            "PUT", f"users/{_q(name)}", json={"password": password, "tags": ",".join(tags)}
        )

    def delete_user(self, name: str) -> None:
        self.request("DELETE", f"users/{_q(name)}", ok404=True)

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


def _error(r: requests.Response) -> str:
    try:
        return str(r.json().get("error", ""))
    except (ValueError, AttributeError):
        return ""
