"""What every scenario shares: the base user, the catalog's ids with a zipf skew, and response checks.

A check returns None when the body is right, or a sentence saying what was wrong; the user then marks the
request failed with that sentence, so a 200 with a wrong body counts as a failure. A request that got no answer
fails with its cause (``ConnectionRefusedError: [Errno 111] Connection refused``).

Tokens (``--write-token``, ``--read-token``; the embedded service's generated one): a request that changes data
(any method but GET/HEAD/OPTIONS) carries ``Authorization: Bearer <write token>`` (the read token if there is no
write token), a read the read token (else the write token, which the service accepts for reads too). A bearer
token wins over Basic credentials in the host URL (``-H http://user:password@host``).

A user class declares what the harness checks before the run (``harness.locust_side.preflight``): ``endpoints``, the
(request type, name) of every request its tasks make, so that a threshold naming another endpoint is refused;
``needs_catalog``, whether it reads the catalog's ids when it starts.

An error every user would hit (the catalog cannot be fetched: no service, no catalog) is logged once, then
counted (``SystemicErrors``; the count is logged when the run ends), and recorded as a failed request named
``CATALOG_REQUEST`` with its cause; the user retries every ``CATALOG_RETRY_S`` seconds.
"""

from __future__ import annotations

import array
import hashlib
import logging
import random
import threading
import time
import urllib.error
import weakref
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import gevent
import gevent.event
import numpy as np
import orjson
import pyarrow as pa
from locust import FastHttpUser, between
from locust.env import Environment
from locust.exception import CatchResponseError
from locust.user.task import LOCUST_STATE_WAITING

from harness.locust_side.options import DUET_SUFFIX
from harness.recording.redact import redact_url
from harness.target._http import auth_headers, open_url
from harness.timing.arrivals import OpenModelMixin, open_model_enabled
from harness.timing.latency import latency_side
from harness.timing.lean_http import LeanSession

__all__ = [
    "CATALOG_FEATURE",
    "CATALOG_GROUP",
    "CATALOG_REQUEST",
    "READ_METHODS",
    "DuetSplit",
    "FeatureStoreUser",
    "SystemicErrors",
    "ZipfIds",
    "catalog_ids",
    "duet_split",
    "judge_outcome",
    "systemic_errors",
    "tokens",
]

logger = logging.getLogger("featureload")

CATALOG_GROUP = "tmdb"
CATALOG_FEATURE = "movie_features"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LEAN_KWARGS = frozenset({"json", "data", "headers"})  # request_json's arguments the lean transport sends
LEAN_BODIES = (bytes, bytearray, str, type(None))
CATALOG_REQUEST = "/v1/groups/{group}/features/{feature} [catalog ids]"  # a user's start-up read, when it fails
CATALOG_RETRY_S = 5.0
STOP_GRACE_S = 5.0  # a stopping user waits this long at most for the answer of a request it sent

_ids_lock = threading.Lock()
_ids_by_host: dict[str, np.ndarray] = {}


def judge_outcome(
    status: int | None,
    error: object,
    text: Callable[[], str | None],
    parse: Callable[[], Any],
    check: Callable[[Any], str | None] | None,
) -> tuple[Any, Exception | str | None]:
    """One judgement of a request's outcome, shared by both transports (FastHttpSession and LeanSession).

    ``status`` is the HTTP status (0 or None: no answer came, and ``error`` is why); ``text()`` the body as text
    and ``parse()`` the body as JSON (raises ValueError if it is not), each called only when needed; ``check(body)``
    returns a problem with the body, or None. Returns ``(body, None)`` on success, else ``(None, failure)``: the
    cause of a missing answer (the exception itself, e.g. "ConnectionRefusedError: [Errno 111] Connection refused",
    never "HTTP 0"), ``"HTTP <status>: <first 200 chars>"``, ``"the body is not JSON"`` or the check's problem.
    """
    if not status:
        return None, error if isinstance(error, Exception) else f"no answer: {error or 'connection lost'}"
    if not 200 <= status < 300:
        return None, f"HTTP {status}: {(text() or '')[:200]}"
    try:
        body = parse()
    except ValueError:
        return None, "the body is not JSON"
    problem = check(body) if check is not None else None
    if problem is not None:
        return None, problem
    return body, None


def tokens(environment: Environment) -> tuple[str | None, str | None]:
    """(read token, write token) of the run: the harness options, or the embedded service's generated token."""
    options = environment.parsed_options
    return getattr(options, "read_token", None) or None, getattr(options, "write_token", None) or None


def catalog_ids(
    host: str, group: str = CATALOG_GROUP, feature: str = CATALOG_FEATURE, token: str | None = None
) -> np.ndarray:
    """The entity ids of ``group/feature`` on ``host``, most popular first; fetched once per process (with
    ``token`` as bearer token, for a service whose reads are closed).

    Raises RuntimeError saying how to load a catalog when the service has none, or naming the host and the
    cause when it cannot be reached.
    """
    with _ids_lock:
        if host not in _ids_by_host:
            path = f"/v1/groups/{group}/features/{feature}"
            accept = {"Accept": ARROW_STREAM}
            try:
                with open_url(host.rstrip("/") + path, token=token, headers=accept, timeout_s=60) as response:
                    table = pa.ipc.open_stream(response.read()).read_all()
            except urllib.error.HTTPError as error:
                if error.code in (401, 403):
                    raise RuntimeError(
                        f"GET {path} answered {error.code}: the service's reads are closed; give the token with "
                        "--read-token (or FEATURELOAD_READ_TOKEN)"
                    ) from error
                if error.code == 404:  # the service's answer for a feature it does not hold
                    raise RuntimeError(
                        f"GET {path} answered 404: the service has no catalog; load one with --load-catalog "
                        "(or POST /v1/catalog/load) or run without -H to use the embedded service"
                    ) from error
                raise RuntimeError(  # a 500 is the service failing, not a missing catalog
                    f"GET {path} answered {error.code}: {_error_detail(error)}; see the service's log"
                ) from error
            except OSError as error:  # URLError included: no answer at all
                cause = getattr(error, "reason", None) or error
                raise RuntimeError(
                    f"cannot fetch the catalog ids from {redact_url(host)}: {type(cause).__name__}: {cause}"
                ) from error
            ids = table.column("movie_id").to_numpy()
            if "log_popularity" in table.column_names:
                ids = ids[np.argsort(-table.column("log_popularity").to_numpy(zero_copy_only=False), kind="stable")]
            _ids_by_host[host] = ids
        return _ids_by_host[host]


def _error_detail(error: urllib.error.HTTPError) -> str:
    """The start of an error answer's body (the service's ``{"error", "detail"}``), on one line."""
    try:
        text = error.read(300).decode("utf-8", "replace")
    except OSError:
        text = ""
    return " ".join(text.split())[:200] or str(error.reason)


class ZipfIds:
    """Draws ids with a zipf-like skew: the k-th most popular id has weight 1 / k**exponent.

    Draws come from a pre-sampled pool so a request costs one index, not a weighted draw. The pool (``pool`` ids,
    8 bytes each) is built once per process for the same ids and skew and shared by every user, each drawing
    from it with its own random generator (``seed``): one pool per user cost about 7 MB of the generator's
    memory per user (a list of 200,000 Python ints).
    """

    def __init__(self, ids: Sequence[int] | np.ndarray, exponent: float = 1.1, pool: int = 200_000, seed: int = 0):
        self._pool = _shared_pool(np.asarray(ids), exponent, pool)
        self._size = len(self._pool)
        self._random = random.Random(seed)

    def one(self) -> int:
        """One id."""
        return self._pool[self._random.randrange(self._size)]

    def many(self, count: int) -> list[int]:
        """``count`` ids (repeats possible, as in real traffic)."""
        start = self._random.randrange(self._size)
        picked = self._pool[start : start + count].tolist()
        return picked + self._pool[: count - len(picked)].tolist()


_pools_lock = threading.Lock()
_pools: dict[tuple[bytes, float, int], array.array] = {}


def _shared_pool(ids: np.ndarray, exponent: float, size: int) -> array.array:
    """The process's pool of ``size`` draws from ``ids`` with the skew ``exponent`` (built on first use)."""
    if ids.size == 0:
        raise ValueError("ZipfIds needs at least one id")
    key = (hashlib.blake2b(np.ascontiguousarray(ids, dtype=np.int64).tobytes(), digest_size=16).digest(),
           float(exponent), int(size))  # fmt: skip
    with _pools_lock:
        if key not in _pools:
            weights = 1.0 / np.arange(1, ids.size + 1) ** exponent
            draws = ids[np.random.default_rng(0).choice(ids.size, size=size, p=weights / weights.sum())]
            _pools[key] = array.array("q", draws.astype(np.int64).tobytes())
        return _pools[key]


def check_single_lookup(body: Any, entity_id: int) -> str | None:
    """A single online lookup must return the asked id and a non-empty set of values."""
    if not isinstance(body, dict) or body.get("entity_id") != entity_id:
        return f"asked for entity {entity_id}, got {str(body)[:120]}"
    if not isinstance(body.get("values"), dict) or not body["values"]:
        return f"entity {entity_id}: no feature values in the answer"
    return None


def check_batch_lookup(body: Any, entity_ids: list[int]) -> str | None:
    """A batch lookup must return one row per asked id, in order, none missing (the ids come from the catalog)."""
    if not isinstance(body, dict) or not isinstance(body.get("rows"), list):
        return f"batch lookup: no rows in {str(body)[:120]}"
    if len(body["rows"]) != len(entity_ids):
        return f"batch lookup: asked {len(entity_ids)} ids, got {len(body['rows'])} rows"
    if body.get("missing"):
        return f"batch lookup: catalog ids reported missing: {body['missing'][:5]}"
    width = len(body.get("columns") or [])
    if any(row is None or len(row) != width for row in body["rows"]):
        return f"batch lookup: a row does not have the {width} columns announced"
    return None


def check_frame(body: Any, rows: int | None = None, columns: int | None = None, page: int | None = None) -> str | None:
    """A frame answer ({"columns", "data", "total_rows", "offset"}) must have the expected shape.

    ``rows`` is an exact row count; ``page`` a page size, for which min(page, total_rows - offset) rows are due.
    """
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        return f"frame: no data in {str(body)[:120]}"
    if page is not None:
        rows = max(0, min(page, int(body.get("total_rows", 0)) - int(body.get("offset", 0))))
    if rows is not None and len(body["data"]) != rows:
        return f"frame: expected {rows} rows, got {len(body['data'])}"
    if columns is not None and len(body.get("columns", [])) != columns:
        return f"frame: expected {columns} columns, got {len(body.get('columns', []))}"
    return None


def check_written(body: Any, rows: int) -> str | None:
    """A write must answer with the stored version's metadata, counting the rows sent."""
    if not isinstance(body, dict) or body.get("rows") != rows or not isinstance(body.get("version"), int):
        return f"write: expected metadata for {rows} rows, got {str(body)[:120]}"
    return None


class SystemicErrors:
    """Errors that hit every user alike: the first occurrence of each message is logged, the others counted;
    ``summary()`` logs the counts (one line per message met more than once)."""

    def __init__(self, log: Callable[..., None] = logger.error) -> None:
        self._log = log
        self.counts: dict[str, int] = {}

    def report(self, message: str) -> None:
        count = self.counts[message] = self.counts.get(message, 0) + 1
        if count == 1:
            self._log("%s (logged once; the users hitting it are counted and retry every %g s)", message,
                      CATALOG_RETRY_S)  # fmt: skip

    def summary(self) -> None:
        for message, count in self.counts.items():
            if count > 1:
                self._log("%d times in this process: %s", count, message)


_systemic: weakref.WeakKeyDictionary[Environment, SystemicErrors] = weakref.WeakKeyDictionary()


class DuetSplit:
    """Which service of a duet (``--duet-host``) gets each request: per request name the two alternate, from a
    side drawn at random for the name's first request.

    Both services then get the same mix of requests, each name's count equal within one per Locust process. A coin
    per request (the first design) let the mix differ by chance: over 20 real A/As the two sides' write counts
    differed by 13 (SD) of 81 per run, and the service's CPU per request moved with the mix, not with the build
    (the SD of its per-pair log ratios 2.6%; 1.2% once the mix is accounted for). The arrival schedule is
    unchanged: only which service answers alternates. Names beyond ``max_names`` (a user class naming its
    requests by URL) get a coin each, so the table stays bounded."""

    def __init__(self, max_names: int = 1024, rng: random.Random | None = None) -> None:
        self.max_names = max_names
        self._rng = rng or random.Random()
        self._next: dict[str, bool] = {}  # name -> whether its next request goes to the duet host

    def to_duet(self, name: str) -> bool:
        """True when this request named ``name`` goes to the duet host, False for -H."""
        side = self._next.get(name)
        if side is None:
            side = self._rng.random() < 0.5
            if len(self._next) >= self.max_names:
                return side
        self._next[name] = not side
        return side


_duet_splits: weakref.WeakKeyDictionary[Environment, DuetSplit] = weakref.WeakKeyDictionary()


def duet_split(environment: Environment) -> DuetSplit:
    """The process's DuetSplit (one per Environment, shared by its users, so that the mix is matched over them)."""
    if environment not in _duet_splits:
        _duet_splits[environment] = DuetSplit()
    return _duet_splits[environment]


def systemic_errors(environment: Environment) -> SystemicErrors:
    """The run's SystemicErrors (one per Environment); its summary is logged when Locust quits."""
    if environment not in _systemic:
        guard = _systemic[environment] = SystemicErrors()
        environment.events.quitting.add_listener(lambda **_: guard.summary())
    return _systemic[environment]


class FeatureStoreUser(OpenModelMixin, FastHttpUser):
    """Base user: knows the catalog's ids and how to fail a request whose body is wrong.

    Subclasses declare ``endpoints`` (request type, name) for every request their tasks make, and set
    ``needs_catalog = False`` when they do not read the catalog's ids."""

    abstract = True
    wait_time = between(0.05, 0.2)
    zipf_exponent = 1.1
    endpoints: ClassVar[tuple[tuple[str, str], ...]] = ()
    needs_catalog: ClassVar[bool] = True

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        read_token, write_token = tokens(environment)
        self.read_token = read_token or write_token
        self._read_auth = auth_headers(read_token or write_token)
        self._write_auth = auth_headers(write_token or read_token)
        if self._read_auth or self._write_auth:
            self.client.auth_header = None  # the bearer token wins over the host URL's Basic credentials
        self._lean: LeanSession | None = None
        self._duet: LeanSession | None = None  # --duet-host: the second service (DuetSplit picks the side)
        self._stopping = False
        self._in_flight = 0  # requests sent and not yet answered (the open model's arrivals share the user)
        self._settled = gevent.event.Event()  # set while none is in flight
        self._settled.set()
        if getattr(environment.parsed_options, "http_client", "lean") == "lean" and self.host:
            self._lean = LeanSession(
                self.host, concurrency=self.concurrency, connection_timeout=self.connection_timeout,
                network_timeout=self.network_timeout, insecure=self.insecure,
                basic_auth=not (self._read_auth or self._write_auth),
            )  # fmt: skip
            duet_host = getattr(environment.parsed_options, "duet_host", "")
            if duet_host:
                self._duet = LeanSession(
                    duet_host, concurrency=self.concurrency, connection_timeout=self.connection_timeout,
                    network_timeout=self.network_timeout, insecure=self.insecure,
                    basic_auth=not (self._read_auth or self._write_auth),
                )  # fmt: skip

    def run(self) -> None:
        try:
            super().run()
        finally:  # the idle keep-alive connections go with the user (a web UI session starts new users per run)
            for session in (self._lean, self._duet):
                if session is not None:
                    session.close()

    def on_start(self) -> None:
        while True:
            started = time.time()
            try:
                ids = catalog_ids(self.host, token=self.read_token)
                break
            except RuntimeError as error:  # no traceback per user: logged once, counted, recorded as a failure
                systemic_errors(self.environment).report(str(error))
                self.environment.events.request.fire(
                    request_type="GET", name=CATALOG_REQUEST, response_time=(time.time() - started) * 1000.0,
                    response_length=0, exception=error, context={}, start_time=started, url=None, response=None,
                )  # fmt: skip
                gevent.sleep(CATALOG_RETRY_S)
        self.ids = ZipfIds(ids, self.zipf_exponent, seed=random.randrange(1 << 30))

    def stop(self, force: bool = False) -> bool:
        """Stop the user (Locust's ``User.stop``), but never in the middle of a request: one already sent is let
        finish (at most ``STOP_GRACE_S``) and recorded first, and none is sent from then on.

        Locust kills a stopping user at once (``--stop-timeout`` 0): the request it was waiting on had reached
        the service, which served and counted it, while the kill left Locust without its answer. The service
        then counted about one request per user more than the run recorded. A graceful stop (``--stop-timeout``:
        the running task is let finish) is Locust's own."""
        if force or self._state in (None, LOCUST_STATE_WAITING):  # Locust kills the greenlet
            self._stopping = True
            if self._in_flight and gevent.getcurrent() is not self._greenlet:
                side = latency_side(self.environment)
                if side is not None and open_model_enabled(self.environment):
                    side.open_model["rate_per_s"] = 0.0  # the open model's scheduler plans no arrival meanwhile
                self._settled.wait(STOP_GRACE_S)
        return super().stop(force)

    def request_json(self, method: str, path: str, name: str, check: Any = None, **kwargs: Any) -> Any:
        """Send a request named ``name`` with the run's token; mark it failed when no answer came (with the
        cause), when the status is not 2xx, or when ``check(body)`` objects. A stopping user sends nothing (the
        request is not made, not recorded) and returns None."""
        if self._stopping:
            return None
        self._in_flight += 1
        if self._in_flight == 1:
            self._settled.clear()
        try:
            return self._request_json(method, path, name, check, **kwargs)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._settled.set()

    def _request_json(self, method: str, path: str, name: str, check: Any = None, **kwargs: Any) -> Any:
        auth = self._read_auth if method.upper() in READ_METHODS else self._write_auth
        if auth:
            kwargs["headers"] = {**auth, **(kwargs.get("headers") or {})}
        if self._lean is not None and kwargs.keys() <= LEAN_KWARGS and isinstance(kwargs.get("data"), LEAN_BODIES):
            if self._duet is not None and duet_split(self.environment).to_duet(name):
                return self._lean_request_json(method, path, name + DUET_SUFFIX, check, session=self._duet, **kwargs)
            return self._lean_request_json(method, path, name, check, **kwargs)
        with self.client.request(method, path, name=name, catch_response=True, **kwargs) as response:
            body, failure = judge_outcome(
                response.status_code, getattr(response, "error", None), lambda: response.text, response.json, check
            )
            if failure is not None:
                response.failure(failure)
            return body

    def _lean_request_json(
        self, method: str, path: str, name: str, check: Any, json: Any = None, data: Any = None,
        headers: dict[str, str] | None = None, session: LeanSession | None = None,
    ) -> Any:  # fmt: skip
        """request_json over the LeanSession (``session``: the duet's, else the user's): the same outcomes, recorded
        with the same event fields as Locust's FastHttpSession (response time from the send to the whole body
        read, in ms)."""
        lean = session or self._lean
        assert lean is not None
        if json is not None:
            data = orjson.dumps(json, option=orjson.OPT_SERIALIZE_NUMPY)
            headers = {"Content-Type": "application/json", **(headers or {})}
        elif isinstance(data, str):
            data = data.encode()
        started, started_perf = time.time(), time.perf_counter()
        answer, error, body = None, None, None
        try:
            answer = lean.request(method.upper(), path, data, headers)
        except gevent.GreenletExit:
            raise
        except Exception as failure:  # no answer: the cause is the failure (never "HTTP 0")
            error = failure
        response_time = (time.perf_counter() - started_perf) * 1000.0
        if answer is not None:  # timed from the send: a wait for a free connection is not the service's time
            started, response_time = answer.sent_s, answer.elapsed_ms
            body, failure = judge_outcome(
                answer.status, None, lambda: answer.text, lambda: orjson.loads(answer.body), check
            )
            if failure is not None:
                error = failure if isinstance(failure, Exception) else CatchResponseError(failure)
        self.environment.events.request.fire(
            request_type=method, name=name, response_time=response_time,
            response_length=len(answer.body) if answer is not None else 0, exception=error, context=self.context(),
            start_time=started, url=lean.origin + lean.prefix + path,
            response=None,
        )  # fmt: skip
        return None if error is not None else body
