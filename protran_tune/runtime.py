"""Embedded defaults of the product commands: study storage, MLflow tracking URI and a local Ray.

* Optuna storage ``sqlite:///protran.db`` and MLflow ``sqlite:///mlflow.db`` in the working directory.
* A local Ray started by the command (bound to 127.0.0.1, token authentication on) and shut down by it,
  or an existing cluster from ``--ray-address`` / ``RAY_ADDRESS``; what a killed command left of its
  Ray (processes, the ``/tmp/ptray-*`` folder) is reaped by the next start.
* Owners: a process that leaves state behind (a RUNNING trial, an MLflow run, a Ray folder) records
  itself as an :class:`Owner` (host, pid, start time), so others can tell a dead owner from a live one.
* :func:`sqlite_lock`: one process of this host at a time on a sqlite database (table creation,
  claiming trials), through a ``<database>.lock`` file beside it.

Bad or unreachable URIs raise :class:`~protran_tune.errors.UsageError` with a one-line message, which the
CLI prints and turns into exit code 2. Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from protran_tune.errors import UsageError

DEFAULT_STORAGE = "sqlite:///protran.db"
DEFAULT_MLFLOW_URI = "sqlite:///mlflow.db"
LOOPBACK = "127.0.0.1"
_SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "oracle")


def sqlite_path(uri: str) -> Path | None:
    """Path of a ``sqlite:///`` URI (``None`` for ``sqlite://`` in-memory)."""
    rest = uri.split(":", 1)[1]
    if not rest.startswith("///"):
        if rest in ("", "//"):
            return None
        raise UsageError(f"malformed sqlite URI {uri!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db")
    return Path(rest[3:])


def _check_sqlite_dir(uri: str, what: str) -> None:
    path = sqlite_path(uri)
    if path is None:
        return
    parent = path.resolve().parent
    if not parent.is_dir():
        raise UsageError(f"{what} {uri!r}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{what} {uri!r}: directory {parent} is not writable")
    if path.exists() and path.is_dir():
        raise UsageError(f"{what} {uri!r}: {path} is a directory, not a database file")


def _scheme(uri: str) -> str:
    return urllib.parse.urlparse(uri).scheme.split("+", 1)[0].lower()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def check_storage_url(url: str) -> str:
    """Validate an Optuna RDB storage URL without opening it; returns it unchanged."""
    if not isinstance(url, str) or "://" not in url:
        raise UsageError(f"storage must be a database URL such as {DEFAULT_STORAGE}, got {url!r}")
    scheme = _scheme(url)
    if scheme not in _SQL_SCHEMES:
        raise UsageError(f"storage {url!r}: scheme {scheme!r} is not supported (use one of {list(_SQL_SCHEMES)})")
    if scheme == "sqlite":
        _check_sqlite_dir(url, "storage")
    return url


_SQLITE_TUNED = False


def tune_sqlite() -> None:
    """Put every sqlite database this process opens (study storage, MLflow) in WAL mode with
    ``synchronous=NORMAL``.

    Optuna commits once per suggested parameter (about 70 per architecture) and sqlite's default
    (rollback journal, ``synchronous=FULL``) fsyncs on every commit. WAL + NORMAL keeps every committed
    transaction across a killed process (``kill -9``); only an OS crash or power loss may roll back the
    last transactions. Readers (optuna-dashboard) no longer block the writer.
    """
    global _SQLITE_TUNED
    if _SQLITE_TUNED:
        return
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.DatabaseError:  # in-memory or read-only databases keep their defaults
                pass
            finally:
                cursor.close()

    _SQLITE_TUNED = True


def open_storage(url: str = DEFAULT_STORAGE, heartbeat_interval_s: int | None = None,
                 grace_period_s: int | None = None) -> Any:
    """An ``optuna.storages.RDBStorage`` for ``url``; unreachable or bad URLs raise ``UsageError``.

    ``heartbeat_interval_s`` / ``grace_period_s`` (seconds) turn on Optuna's trial heartbeats, by which
    a RUNNING trial whose owner stopped beating for ``grace_period_s`` is told stale (other hosts too).
    Tables are created under :func:`sqlite_lock`, so processes starting together on a new file don't race.
    """
    import warnings

    import optuna

    check_storage_url(url)
    kwargs: dict[str, Any] = {"heartbeat_interval": heartbeat_interval_s, "grace_period": grace_period_s}
    if _scheme(url) == "sqlite":
        tune_sqlite()
        # Several processes (profile, dashboard, Ray workers) share one file: wait on locks, don't fail.
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    else:
        kwargs["engine_kwargs"] = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 5}}
    try:
        with sqlite_lock(url), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
            return optuna.storages.RDBStorage(url, **kwargs)
    except ImportError as exc:
        raise UsageError(f"storage {url!r}: database driver missing ({_first_line(exc)})") from None
    except Exception as exc:  # sqlalchemy.exc.OperationalError & co: one line, no traceback
        raise UsageError(f"storage {url!r} is unreachable: {_first_line(exc)}") from None


# --------------------------------------------------------------------------- owners and locks
def process_start(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (Linux ``/proc``), else ``None``: with the
    pid it names one process, even after the pid is reused."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (a zombie awaiting its parent does not)."""
    if Path("/proc/self").exists():
        return _alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Owner:
    """The process that owns a piece of shared state, written as ``host:pid:start``.

    ``start`` is the process start time (:func:`process_start`; ``None`` where unknown or in the older
    ``host:pid`` form), which tells a reused pid from the owner.
    """

    host: str
    pid: int
    start: int | None = None

    @classmethod
    def current(cls) -> "Owner":
        return cls(socket.gethostname(), os.getpid(), process_start(os.getpid()))

    @classmethod
    def parse(cls, text: Any) -> "Owner | None":
        """``host:pid:start`` or ``host:pid``; ``None`` for anything else."""
        if not isinstance(text, str):
            return None
        parts = text.split(":")
        if len(parts) in (2, 3) and all(p.isdigit() for p in parts[1:]) and parts[0]:
            return cls(parts[0], int(parts[1]), int(parts[2]) if len(parts) == 3 else None)
        return None

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}" + ("" if self.start is None else f":{self.start}")

    def alive(self) -> bool | None:
        """``True``/``False`` for an owner on this host; ``None`` on another host (ask its heartbeat)."""
        if self.host != socket.gethostname():
            return None
        if self == Owner.current():
            return True
        if self.pid == os.getpid() or not pid_alive(self.pid):
            return False
        return self.start is None or process_start(self.pid) in (None, self.start)


HEARTBEAT_INTERVAL_S = 10  # seconds between heartbeats of work in progress (RUNNING trials, MLflow runs)
HEARTBEAT_GRACE_S = 60  # seconds without a heartbeat after which work of a live or unknown owner is stale

_LOCKS: dict[str, list[Any]] = {}  # lock file -> [threading.RLock, depth, open file]
_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def sqlite_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock shared by the processes of this host on the sqlite database of ``uri``.

    The lock is ``flock`` on ``<database>.lock`` beside the file (never on the database itself, whose
    POSIX locks sqlite owns); re-entrant in a process. A no-op for other URIs and where ``fcntl`` is
    missing. Used for table creation and for claiming trials (check and ask as one step).
    """
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    path = sqlite_path(uri) if _scheme(uri) == "sqlite" else None
    if path is None:
        yield
        return
    key = str(path.resolve()) + ".lock"
    with _LOCKS_GUARD:
        entry = _LOCKS.setdefault(key, [threading.RLock(), 0, None])
    with entry[0]:
        if entry[1] == 0:
            entry[2] = open(key, "a")  # noqa: SIM115 (held across the block)
            fcntl.flock(entry[2].fileno(), fcntl.LOCK_EX)
        entry[1] += 1
        try:
            yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                fcntl.flock(entry[2].fileno(), fcntl.LOCK_UN)
                entry[2].close()
                entry[2] = None


def check_tracking_uri(uri: str = DEFAULT_MLFLOW_URI, timeout_s: float = 5.0) -> str:
    """Validate an MLflow tracking URI (sqlite file, SQL database or HTTP server); returns it.

    HTTP servers are probed at ``/health``; a ``file:`` store is refused (MLflow 3.13+ refuses it too).
    """
    if not isinstance(uri, str) or not uri:
        raise UsageError(f"MLflow tracking URI must be a non-empty string, got {uri!r}")
    scheme = _scheme(uri)
    if scheme in ("", "file"):
        raise UsageError(
            f"MLflow tracking URI {uri!r}: the file store is not supported by MLflow 3.13+; "
            f"use {DEFAULT_MLFLOW_URI} or an http(s):// tracking server"
        )
    if scheme == "sqlite":
        _check_sqlite_dir(uri, "MLflow tracking URI")
    elif scheme in ("http", "https"):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (user-given URL)
                if response.status >= 400:
                    raise UsageError(f"MLflow tracking server {uri!r} answered HTTP {response.status}")
        except UsageError:
            raise
        except urllib.error.HTTPError as exc:
            raise UsageError(f"MLflow tracking server {uri!r} answered HTTP {exc.code} at /health") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UsageError(f"MLflow tracking server {uri!r} is unreachable: {reason}") from None
    elif scheme in _SQL_SCHEMES or scheme == "databricks":
        pass
    else:
        raise UsageError(f"MLflow tracking URI {uri!r}: unsupported scheme {scheme!r} (use sqlite, a SQL database or http(s))")
    return uri


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on ``host`` right now."""
    return free_ports(1, host)[0]


def free_ports(n: int, host: str = LOOPBACK) -> list[int]:
    """``n`` distinct TCP ports free on ``host`` right now (held open together while drawn, so no port is
    drawn twice, as separate :func:`free_port` calls can)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def resolve_ray_address(address: str | None) -> str | None:
    """``--ray-address`` if given, else ``RAY_ADDRESS``, else ``None`` (start a local Ray)."""
    if address:
        return address
    return os.environ.get("RAY_ADDRESS") or None


def check_ray_address(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast (``UsageError``) when a ``host:port`` or ``ray://host:port`` cluster address does not answer
    (``ray.init`` would retry for minutes)."""
    target = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise UsageError(f"Ray address {address!r} must be 'auto', host:port or ray://host:port")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise UsageError(f"could not connect to Ray cluster {address!r}: {exc.strerror or exc}") from None


def _enable_token_auth() -> None:
    """``RAY_AUTH_MODE=token`` for this process and its children, also if Ray is already imported."""
    os.environ["RAY_AUTH_MODE"] = "token"
    if "ray" in sys.modules:  # Ray caches its config at import: refresh it (as ray.init does for its default)
        from ray._raylet import Config

        Config.initialize("")


@contextlib.contextmanager
def ray_session(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    resources: Mapping[str, float] | None = None,
    runtime_env: Mapping[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Connect to a Ray cluster, or start a local one on 127.0.0.1 and stop it on exit.

    Args:
        address: cluster address (``auto``, ``host:port`` or ``ray://...``); ``None`` falls back to
            ``RAY_ADDRESS`` and otherwise starts a local Ray owned by this process.
        num_cpus / resources: resources of a local Ray (e.g. ``{"platform:cpu": 1}``); ignored when
            connecting to a cluster, whose nodes advertise their own.
    Yields:
        ``{"address": ..., "started": bool}``. Token authentication stays on for local Rays
        (``RAY_AUTH_MODE=token`` unless the user set it); Ray generates the token on first start.
    """
    from protran_tune.cluster.raycompat import ensure_ray_importable, use_loopback

    address = resolve_ray_address(address)
    restore_network: Callable[[], None] = lambda: None  # noqa: E731
    if address is None:
        if "RAY_AUTH_MODE" not in os.environ:
            _enable_token_auth()
        restore_network = use_loopback()
    ensure_ray_importable()
    import ray

    if ray.is_initialized():  # already connected (e.g. inside a Ray job): use it, leave it running
        restore_network()
        yield {"address": address or "current", "started": False}
        return
    if address not in (None, "auto", "local"):
        check_ray_address(address)
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if runtime_env:
        kwargs["runtime_env"] = dict(runtime_env)
    started = address is None
    temp_dir = None
    if started:
        # "local" forces a new Ray owned by this process even where another Ray runs on the machine;
        # its own temp dir keeps it apart from them (sockets, session files, logs).
        root = "/tmp" if os.path.isdir("/tmp") else None
        reap_ray_debris(root)
        temp_dir = tempfile.mkdtemp(prefix=RAY_TEMP_PREFIX, dir=root)
        (Path(temp_dir) / RAY_OWNER_FILE).write_text(str(Owner.current()))
        address = "local"
        kwargs.update(
            num_cpus=num_cpus,
            resources=dict(resources or {}),
            include_dashboard=False,
            _node_ip_address=LOOPBACK,
            _temp_dir=temp_dir,
        )
    try:
        context = ray.init(address=address, **kwargs)
    except Exception as exc:  # ConnectionError, RuntimeError, AuthenticationError, ...
        with contextlib.suppress(Exception):
            ray.shutdown()
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
        restore_network()
        where = "a local Ray" if started else f"Ray cluster {address!r}"
        raise UsageError(f"could not connect to {where}: {_first_line(exc)}") from None
    try:
        yield {"address": getattr(context, "address_info", {}).get("gcs_address", address), "started": started}
    finally:
        ray.shutdown()
        restore_network()
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


def ray_processes(temp_dir: str | Path) -> list[int]:
    """PIDs of the Ray processes of the cluster started with ``--temp-dir temp_dir`` (Linux ``/proc``):
    those naming it on their command line, and those holding a file under it open (Ray's agents and
    workers rename themselves ``ray::...`` but keep their log files open)."""
    needle = str(temp_dir).encode()
    prefix = str(Path(temp_dir).resolve()) + os.sep
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline or _holds_file_under(entry, prefix):
            pids.append(int(entry.name))
    return sorted(pids)


def _holds_file_under(proc: Path, prefix: str) -> bool:
    try:
        fds = list((proc / "fd").iterdir())
    except OSError:  # gone, or another user's process
        return False
    for fd in fds:
        try:
            if os.readlink(fd).startswith(prefix):
                return True
        except OSError:
            continue
    return False


RAY_TEMP_PREFIX = "ptray-"
RAY_OWNER_FILE = "owner"


def _ray_dir_owner(path: Path) -> Owner | None:
    """Owner of a local Ray folder: its ``owner`` file, else the driver pid Ray put in the session
    folder's name (``session_<date>_<time>_<pid>``); ``None`` if neither exists yet."""
    with contextlib.suppress(OSError):
        return Owner.parse((path / RAY_OWNER_FILE).read_text().strip())
    sessions = sorted(p.name for p in path.glob("session_2*"))
    if sessions and sessions[-1].rsplit("_", 1)[-1].isdigit():
        return Owner(socket.gethostname(), int(sessions[-1].rsplit("_", 1)[-1]))
    return None


def reap_ray_debris(root: str | Path | None = None) -> list[Path]:
    """Stop the processes and remove the folders of local Rays (``<root>/ptray-*``, default the temp
    dir) whose owner process is dead, e.g. a ``profile`` killed with ``kill -9``; folders of live or
    unknown owners are left alone. Returns the folders removed."""
    reaped = []
    for path in sorted(Path(root or tempfile.gettempdir()).glob(RAY_TEMP_PREFIX + "*")):
        owner = _ray_dir_owner(path)
        if not path.is_dir() or owner is None or owner.alive() is not False:
            continue
        stop_ray_processes(path, grace_s=5.0)
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            reaped.append(path)
            logging.getLogger(__name__).info("removed the Ray folder %s of dead process %s", path, owner)
    return reaped


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie awaiting its parent)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def stop_ray_processes(temp_dir: str | Path, grace_s: float = 10.0) -> list[int]:
    """Stop the one Ray cluster started with ``--temp-dir temp_dir`` (``ray stop`` would stop every Ray
    on the machine): SIGTERM its processes, SIGKILL what is left after ``grace_s``. Returns the PIDs."""
    import signal
    import time

    pids = ray_processes(temp_dir)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    for pid in ray_processes(temp_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


if __name__ == "__main__":  # python -m protran_tune.runtime stop-ray TEMP_DIR
    if len(sys.argv) == 3 and sys.argv[1] == "stop-ray":
        print(" ".join(map(str, stop_ray_processes(sys.argv[2]))))
    else:
        print("usage: python -m protran_tune.runtime stop-ray TEMP_DIR", file=sys.stderr)
        sys.exit(2)
