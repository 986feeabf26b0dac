"""Schemathesis hooks for the tower-cis example server (scripts/schemathesis.sh).

- Credentials: every test case gets the credentials its operation declares:
  `Authorization: Basic` for session create, and the token of a live session
  in `vmware-api-session-id` for the rest. Each worker has its own session,
  checked before each case and created anew when a case deleted it, so that
  a delete in one case does not turn every later case into a 401.
- Short waits: the demo operations wait `seconds` (1 if absent, up to 300);
  an absent or valid value is sent as 0, so that the run does not sleep.
  Invalid values go as generated.
- Query values the HTTP client would drop: a generated query parameter whose
  value has no wire form (an empty list, or a list of empty lists or objects)
  is sent with an empty value instead, so that the parameter reaches the
  server.

Environment: TOWER_CIS_BASE_URL (http://127.0.0.1:PORT), TOWER_CIS_USER,
TOWER_CIS_PASSWORD.
"""

import base64
import os
import threading
from urllib.parse import urlsplit

import requests

import schemathesis

BASE_URL = os.environ["TOWER_CIS_BASE_URL"]
USER = os.environ["TOWER_CIS_USER"]
PASSWORD = os.environ["TOWER_CIS_PASSWORD"]
SESSION_HEADER = "vmware-api-session-id"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
DEMO_PATHS = ("/api/demo/wait", "/api/demo/fail")


class Sessions:
    """A live session per worker thread: a delete in one worker's case does
    not pull the session from under another worker's case."""

    def __init__(self):
        self._local = threading.local()

    def live(self):
        local = self._local
        if not hasattr(local, "http"):
            local.http = requests.Session()
            local.http.trust_env = False
            local.current = None
        if local.current is not None:
            check = local.http.get(f"{BASE_URL}/api/session", headers={SESSION_HEADER: local.current}, timeout=10)
            if check.status_code == 200:
                return local.current
            if check.status_code != 401:
                raise RuntimeError(f"GET /api/session answered {check.status_code}: {check.text}")
        created = local.http.post(f"{BASE_URL}/api/session", headers={"Authorization": BASIC}, timeout=10)
        if created.status_code != 201:
            raise RuntimeError(f"login failed with {created.status_code}: {created.text}")
        local.current = created.json()
        return local.current


SESSIONS = Sessions()


def _declared_schemes(operation):
    """The security schemes the operation's requirements name, and whether none is required."""
    security = operation.definition.raw.get("security", [])
    names = {name for requirement in security for name in requirement}
    optional = any(not requirement for requirement in security)
    return names, optional


@schemathesis.auth(refresh_interval=None)
class Credentials:
    # `get` answers the session token, or "" when the operation takes none
    # (`None` would skip `set`); operations whose credentials are optional
    # (JSON-RPC carries them in the body) get none.
    def get(self, case, context):
        names, optional = _declared_schemes(context.operation)
        if optional or not names:
            return None
        if names & {"sessionId", "sessionCookie"}:
            return SESSIONS.live()
        return ""

    def set(self, case, data, context):
        names, _ = _declared_schemes(context.operation)
        headers = dict(case.headers or {})
        if "basicAuth" in names:
            headers["Authorization"] = BASIC
        if data:
            headers[SESSION_HEADER] = data
        case.headers = headers


def _valid_seconds(value):
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 <= value <= 300
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value) <= 300
    return False


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.operation.path in DEMO_PATHS:
        query = dict(case.query or {})
        if "seconds" not in query or _valid_seconds(query["seconds"]):
            query["seconds"] = 0
            case.query = query


def _reaches_the_wire(name, value):
    """Whether `requests` (schemathesis's HTTP client) sends `name` at all."""
    try:
        prepared = requests.Request("GET", "http://wire.invalid/", params={name: value}).prepare()
    except Exception:
        # Nor can it send the case: that is an error schemathesis reports.
        return True
    return urlsplit(prepared.url).query != ""


@schemathesis.hook
def map_query(context, query):
    # GET /rest/cis/tasks describes its query as one object parameter, `filter`
    # (style form, explode true: one query parameter per property), with
    # `additionalProperties: false`. Negative data breaks that with an
    # undescribed property of any JSON value, and `requests` sends a parameter
    # whose value is an empty list (or a list of empty lists or objects) as
    # nothing at all: the server then receives a valid query, answers 200, and
    # negative_data_rejection reports "Schema-violating request accepted"
    # (its allowances for values that vanish on the wire validate the query
    # against `{filter: ...}` and miss the exploded names). Sent with an empty
    # value, the undescribed name reaches the server, which must refuse it
    # (tests/openapi_contract.rs checks that it does). No query parameter of
    # this API is an array, so a valid value never has this form.
    if not isinstance(query, dict):
        return query
    return {
        name: "" if isinstance(value, (list, tuple, dict)) and not _reaches_the_wire(name, value) else value
        for name, value in query.items()
    }
