"""Spread a batch of architectures over every device of a platform: :class:`PlatformPool`.

The pool asks the cluster how many units of the resource ``platform:<name>`` exist
(:func:`ray.cluster_resources`), starts one :data:`~protran_tune.cluster.actors.PlatformActor` per unit
(Ray places each on a node that advertises the resource) and feeds each actor the next architecture as
soon as it is free. Records are yielded as they complete and, with ``out=``, appended to a JSON-lines
file (flushed and fsynced one by one) in the ``measure`` command's format plus a ``node`` field, so a
run that is interrupted loses nothing already measured and a rerun with the same file measures only
what is missing.

Faults: an actor that dies (process crash, ``ray.kill``, node loss) is restarted by Ray
(``max_restarts``) and the measurement it was running is retried once, on whichever actor is free
first; an architecture that kills its actor twice is recorded as failed. When Ray gives up on an actor
(restarts exhausted, or no restart within ``start_timeout_s``, e.g. its node is gone) the pool starts a
replacement (``max_replacements``) if the cluster still has a free unit of the platform, and otherwise
goes on with fewer actors. With ``measure_timeout_s`` a wedged measurement restarts its actor and is
retried like a crash. Measurement errors inside a live actor (out of memory, sensor unreadable) are
failed records, never exceptions.

Example (a local Ray with two ``cpu`` devices)::

    import ray
    from protran_tune.cluster.pool import PlatformPool
    ray.init(num_cpus=2, resources={"platform:cpu": 2}, include_dashboard=False)
    with PlatformPool("cpu") as pool:
        for record in pool.map(archs, out="results.jsonl"):
            print(record["arch_hash"], record["status"], record["node"]["hostname"])
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Mapping, Sequence

from protran_tune.cluster.actors import RESOURCE_PREFIX, platform_resource, start_platform_actor
from protran_tune.platforms.base import Workload
from protran_tune.platforms.records import finish_record, read_records, record_key, records_to_skip
from protran_tune.space import Architecture

import ray  # noqa: E402  (imported after actors, which makes ``import ray`` safe)
from ray.exceptions import GetTimeoutError, RayActorError, RayError  # noqa: E402

#: ``on_result(record, done, total)``: called once per finished architecture, in completion order.
ProgressCallback = Callable[[dict, int, int], None]


def _as_architecture(item: Architecture | Mapping[str, Any], index: int) -> Architecture:
    if isinstance(item, Architecture):
        return item
    try:
        return Architecture.from_dict(item)
    except ValueError as exc:
        raise ValueError(f"archs[{index}]: {exc}") from None


def platform_units(platform: str) -> float:
    """Units of resource ``platform:<platform>`` in the connected cluster (0 when none advertise it)."""
    return float(ray.cluster_resources().get(platform_resource(platform), 0.0))


def advertised_platforms() -> dict[str, float]:
    """``{platform: units}`` for every ``platform:*`` resource of the connected cluster."""
    return {
        key[len(RESOURCE_PREFIX):]: float(value)
        for key, value in ray.cluster_resources().items()
        if key.startswith(RESOURCE_PREFIX)
    }


class PlatformPool:
    """One :data:`PlatformActor` per device of ``platform``; :meth:`map` measures batches over all of them.

    Args:
        platform: registry name; devices advertise resource ``platform:<platform>``.
        options: keyword options of the platform, built inside each actor.
        workload: default :class:`Workload` of :meth:`map` (``Workload()`` when ``None``).
        num_actors: actors to start; ``None`` = one per ``units_per_actor`` units in the cluster.
        units_per_actor: resource units each actor holds (1 = one device).
        plugins: modules imported in each actor first, to register platforms defined outside
            protran-tune (importable on every node).
        max_restarts: Ray restarts of a dead actor (``-1`` = unlimited).
        max_replacements: new actors the pool may start after Ray gives up on one (default: ``num_actors``).
        start_timeout_s: how long to wait for an actor to start or restart before giving up on it.
        measure_timeout_s: a measurement running longer is treated as a wedged device: its actor is
            killed and restarted and the measurement retried once (``None``: no limit).
        actor_options: extra ``.options`` of the actors (``num_cpus``, ``runtime_env``, ...).

    Raises:
        ValueError: Ray is not connected, no node advertises the platform, ``num_actors`` exceeds the
            devices, or the platform cannot be built in an actor (unknown name, bad options).
    """

    def __init__(
        self,
        platform: str,
        options: Mapping[str, Any] | None = None,
        *,
        workload: Workload | None = None,
        num_actors: int | None = None,
        units_per_actor: float = 1.0,
        plugins: Sequence[str] = (),
        max_restarts: int = 2,
        max_replacements: int | None = None,
        start_timeout_s: float = 300.0,
        measure_timeout_s: float | None = None,
        actor_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not ray.is_initialized():
            raise ValueError("Ray is not connected: call ray.init(...) (or ray.init(address='auto')) first")
        resource = platform_resource(platform)
        if not units_per_actor > 0:
            raise ValueError(f"units_per_actor must be positive, got {units_per_actor!r}")
        available = platform_units(platform)
        capacity = int(available // units_per_actor + 1e-9)
        if capacity < 1:
            raise ValueError(
                f"no node advertises resource {resource!r} ({units_per_actor} unit(s) per actor needed); "
                f"advertised platforms: {advertised_platforms() or 'none'}. Start a node with "
                f"--resources '{{\"{resource}\": 1}}'"
            )
        if num_actors is None:
            num_actors = capacity
        if isinstance(num_actors, bool) or not isinstance(num_actors, int) or not 1 <= num_actors <= capacity:
            raise ValueError(f"num_actors must be an integer in [1, {capacity}] ({resource}={available:g}), got {num_actors!r}")
        if workload is not None and not isinstance(workload, Workload):
            raise ValueError(f"workload must be a Workload, got {type(workload).__name__}")
        self.platform = platform
        self.options = dict(options or {})
        self.workload = workload or Workload()
        self.plugins = tuple(plugins)
        self.units_per_actor = units_per_actor
        self.max_restarts = max_restarts
        self.max_replacements = num_actors if max_replacements is None else int(max_replacements)
        self.start_timeout_s = float(start_timeout_s)
        if measure_timeout_s is not None and not measure_timeout_s > 0:
            raise ValueError(f"measure_timeout_s must be positive or None, got {measure_timeout_s!r}")
        self.measure_timeout_s = measure_timeout_s
        self.actor_options = dict(actor_options or {})
        self.stats = {"measured": 0, "failed": 0, "actor_errors": 0, "retried": 0, "replaced": 0, "dropped": 0, "skipped": 0}
        self._actors: list[Any] = [self._start_actor() for _ in range(num_actors)]
        self._wait_started(self._actors)

    # ----------------------------------------------------------------- actors
    def _start_actor(self) -> Any:
        return start_platform_actor(
            self.platform, self.options, plugins=self.plugins, units=self.units_per_actor,
            max_restarts=self.max_restarts, **self.actor_options,
        )

    def _wait_started(self, actors: Sequence[Any]) -> None:
        refs = [actor.ping.remote() for actor in actors]
        try:
            ray.get(refs, timeout=self.start_timeout_s)
        except RayActorError as exc:
            self.shutdown()
            raise ValueError(f"could not start platform {self.platform!r} in a Ray actor: {_cause(exc)}") from None
        except GetTimeoutError:
            self.shutdown()
            raise ValueError(
                f"platform actors for {self.platform!r} did not start within {self.start_timeout_s:g} s"
            ) from None

    @property
    def size(self) -> int:
        """Live actors (devices measuring in parallel)."""
        return sum(actor is not None for actor in self._actors)

    @property
    def actors(self) -> list[Any]:
        """Handles of the live actors (e.g. to ``ray.kill`` one in a fault drill)."""
        return [a for a in self._actors if a is not None]

    def describe(self) -> list[dict[str, Any]]:
        """Each live actor's platform description and node."""
        return ray.get([a.describe.remote() for a in self._actors if a is not None])

    def shutdown(self) -> None:
        """Kill the actors (idempotent)."""
        for i, actor in enumerate(self._actors):
            if actor is not None:
                ray.kill(actor, no_restart=True)
                self._actors[i] = None

    def __enter__(self) -> "PlatformPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ----------------------------------------------------------------- measuring
    def measure(
        self, archs: Iterable[Architecture | Mapping[str, Any]], workload: Workload | None = None, **kwargs: Any
    ) -> list[dict[str, Any]]:
        """Measure a batch and return one record per input, in input order (duplicates share a record).

        Keyword arguments are those of :meth:`map`; with ``out`` and ``resume``, architectures already in
        the file are read back from it rather than measured again.
        """
        items = [_as_architecture(item, i) for i, item in enumerate(archs)]
        by_hash = {rec["arch_hash"]: rec for rec in self.map(items, workload=workload, **kwargs)}
        out = kwargs.get("out")
        missing = {a.content_hash() for a in items} - set(by_hash)
        if missing and out is not None:
            wanted = {self._key(h, (workload or self.workload).to_dict()) for h in missing}
            for _, rec in read_records(out):
                if record_key(rec) in wanted:
                    by_hash[rec["arch_hash"]] = rec
        return [by_hash[a.content_hash()] for a in items]

    def _key(self, arch_hash: str, workload: dict[str, Any]) -> str:
        return record_key({"arch_hash": arch_hash, "platform": self.platform, "workload": workload, "repeat": 0})

    def map(
        self,
        archs: Iterable[Architecture | Mapping[str, Any]],
        *,
        workload: Workload | None = None,
        out: str | Path | None = None,
        resume: bool = True,
        retry_failed: bool = False,
        on_result: ProgressCallback | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Measure every distinct architecture once; yield its record as soon as it completes.

        Args:
            archs: :class:`Architecture` objects, their ``to_dict()`` or ProTran ``model_dict`` s.
                Duplicates are measured once.
            workload: overrides the pool's workload for this batch.
            out: JSON-lines file the records are appended to as they arrive.
            resume: with ``out``, skip architectures already in it for this platform and workload
                (same key as the ``measure`` command: hash, platform, mode, batch size, sequence length).
            retry_failed: with ``resume``, measure again architectures whose record there failed.
            on_result: ``on_result(record, done, total)`` after each record.

        Records: the ``measure`` command's keys (``repeat`` is 0, ``finished_at`` UTC) plus ``node``
        (node id, IP, host name, pid of the actor) and ``attempts`` (1, or 2 after an actor died while
        measuring it).
        """
        work = workload or self.workload
        if not isinstance(work, Workload):
            raise ValueError(f"workload must be a Workload, got {type(work).__name__}")
        todo: deque[tuple[str, dict[str, Any]]] = deque()
        wd = work.to_dict()
        measured = set(records_to_skip(out, retry_failed)) if out is not None and resume else set()
        seen: set[str] = set()
        for index, item in enumerate(archs):
            arch = _as_architecture(item, index)
            key = arch.content_hash()
            if self._key(key, wd) in measured:
                self.stats["skipped"] += 1
            elif key not in seen:
                todo.append((key, arch.to_dict()))
            seen.add(key)
        total = len(todo)
        sink = open(out, "a") if out is not None else None
        try:
            yield from self._run(todo, wd, total, sink, on_result)
        finally:
            if sink is not None:
                sink.close()

    def _run(
        self,
        todo: deque[tuple[str, dict[str, Any]]],
        workload: dict[str, Any],
        total: int,
        sink: IO[str] | None,
        on_result: ProgressCallback | None,
    ) -> Iterator[dict[str, Any]]:
        """Feed ``todo`` to the actors until every item has a record (see :class:`_BatchRun`)."""
        run = _BatchRun(self, todo, workload, total, sink, on_result)
        while todo or run.inflight:
            run.submit()
            if not run.inflight:  # work left but every actor is lost
                yield from run.fail_remaining()
                break
            ref = run.wait()
            if ref is None:
                run.expire()
            else:
                yield from run.collect(ref)

    def _replace_or_drop(self, slot: int, check: Callable[[int], None]) -> None:
        """Ray gave up on the actor of ``slot`` (or it did not come back in time): start a new one where
        the cluster still has a free unit of the platform and replacements are left, else drop the slot."""
        old = self._actors[slot]
        if old is not None:
            ray.kill(old, no_restart=True)  # also cancels a restart still waiting for a node
        self._actors[slot] = None
        others = sum(a is not None for a in self._actors)
        room = platform_units(self.platform) + 1e-9 >= (others + 1) * self.units_per_actor
        if room and self.stats["replaced"] < self.max_replacements:
            self.stats["replaced"] += 1
            self._actors[slot] = self._start_actor()
            check(slot)
        else:
            self.stats["dropped"] += 1

    def _failed(self, key: str, arch: dict[str, Any], workload: dict[str, Any], attempts: int, error: str) -> dict[str, Any]:
        return {
            "arch_hash": key, "architecture": arch, "platform": self.platform, "status": "failed",
            "error": error, "measurement": None, "workload": workload, "node": None, "attempts": attempts,
        }


class _BatchRun:
    """The state of one :meth:`PlatformPool.map` batch: queued work, calls in flight, attempts per item.

    ``inflight`` maps each Ray object ref to ``(kind, slot, item, due)``: ``kind`` ``"measure"`` (``item``
    is ``(arch_hash, arch dict)``) or ``"ping"`` (a restarted actor's liveness check), ``due`` the
    ``time.monotonic()`` deadline after which it counts as wedged (or the actor as gone).
    """

    def __init__(self, pool: PlatformPool, todo: deque[tuple[str, dict[str, Any]]], workload: dict[str, Any],
                 total: int, sink: IO[str] | None, on_result: ProgressCallback | None) -> None:
        self.pool, self.todo, self.workload, self.total = pool, todo, workload, total
        self.sink, self.on_result = sink, on_result
        self.attempts: dict[str, int] = {}
        self.timed_out: set[str] = set()
        self.limit = float("inf") if pool.measure_timeout_s is None else pool.measure_timeout_s
        self.idle: deque[int] = deque(i for i, a in enumerate(pool._actors) if a is not None)
        self.inflight: dict[Any, tuple[str, int, tuple[str, dict[str, Any]] | None, float]] = {}
        self.done = 0

    def finish(self, record: dict[str, Any]) -> dict[str, Any]:
        """Count ``record``, append it to the sink and report progress; returns it."""
        self.done += 1
        record.setdefault("repeat", 0)
        self.pool.stats["measured" if record.get("status") == "ok" else "failed"] += 1
        finish_record(record, self.sink)
        if self.on_result is not None:
            self.on_result(record, self.done, self.total)
        return record

    def check(self, slot: int) -> None:
        """Ping the actor of ``slot``: Ray queues the ping until a restarted actor is up; a
        ``RayActorError`` means it is gone."""
        ref = self.pool._actors[slot].ping.remote()
        self.inflight[ref] = ("ping", slot, None, time.monotonic() + self.pool.start_timeout_s)

    def submit(self) -> None:
        """Give every idle actor the next queued architecture."""
        while self.idle and self.todo:
            slot = self.idle.popleft()
            key, arch = item = self.todo.popleft()
            self.attempts[key] = self.attempts.get(key, 0) + 1
            ref = self.pool._actors[slot].measure.remote(arch, self.workload)
            self.inflight[ref] = ("measure", slot, item, time.monotonic() + self.limit)

    def fail_remaining(self) -> Iterator[dict[str, Any]]:
        """Failed records for the queued work when no actor is left."""
        while self.todo:
            key, arch = self.todo.popleft()
            yield self.finish(self.pool._failed(key, arch, self.workload, self.attempts.get(key, 0),
                                                f"no live {self.pool.platform!r} actor left to measure it"))

    def wait(self) -> Any | None:
        """The first call to finish, or ``None`` when the earliest deadline passed first."""
        deadline = min(entry[3] for entry in self.inflight.values())
        timeout = None if deadline == float("inf") else max(0.0, deadline - time.monotonic())
        ready, _ = ray.wait(list(self.inflight), num_returns=1, timeout=timeout)
        return ready[0] if ready else None

    def expire(self) -> None:
        """Past their deadline: a ping gives up on its actor; a wedged measurement restarts its actor (the
        call then fails and is retried like a crash)."""
        now = time.monotonic()
        for ref, (kind, slot, item, due) in list(self.inflight.items()):
            if due > now:
                continue
            if kind == "ping":
                del self.inflight[ref]
                self.pool._replace_or_drop(slot, self.check)
            else:
                self.timed_out.add(item[0])
                self.inflight[ref] = (kind, slot, item, float("inf"))
                ray.kill(self.pool._actors[slot], no_restart=False)

    def collect(self, ref: Any) -> Iterator[dict[str, Any]]:
        """Handle the finished call ``ref``: a record, a retry after an actor death, or a failed record."""
        kind, slot, item, _ = self.inflight.pop(ref)
        try:
            value = ray.get(ref)
        except RayError as exc:
            if kind == "ping":  # Ray gave up on this actor
                self.pool._replace_or_drop(slot, self.check)
            else:
                yield from self._measure_error(slot, item, exc)
            return
        self.idle.append(slot)
        if kind == "measure":
            value["attempts"] = self.attempts[item[0]]
            yield self.finish(value)

    def _measure_error(self, slot: int, item: tuple[str, dict[str, Any]], exc: RayError) -> Iterator[dict[str, Any]]:
        key, arch = item
        stats = self.pool.stats
        if not isinstance(exc, RayActorError):  # the call itself failed; the actor lives
            self.idle.append(slot)
            yield self.finish(self.pool._failed(key, arch, self.workload, self.attempts[key], _cause(exc)))
            return
        stats["actor_errors"] += 1
        if self.attempts[key] < 2:
            stats["retried"] += 1
            self.todo.appendleft(item)
        else:
            why = f"actor died twice while measuring it: {_cause(exc)}"
            if key in self.timed_out:
                why += f" (restarted after exceeding measure_timeout_s={self.pool.measure_timeout_s:g} s)"
            yield self.finish(self.pool._failed(key, arch, self.workload, self.attempts[key], why))
        self.check(slot)


def _cause(exc: BaseException) -> str:
    """The most telling line of a Ray error (the original exception where Ray kept it)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error:" in line or "Exception:" in line:
            return line
    return lines[0] if lines else type(exc).__name__
