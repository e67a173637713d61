"""Platform actors and the platform pool on a real two-node local Ray cluster (loopback only).

One ``ray.cluster_utils.Cluster`` serves the whole module: a head node advertising two units of
``platform:test-alpha`` (and one of ``platform:cpu``) and a second node advertising
``platform:test-beta``. The test platforms below really time a small numpy workload and log each
completed measurement to a file, so the tests can count how often each architecture was measured.
Ray workers import this module (``plugins=[__name__]``) to register them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from protran_tune.cluster.raycompat import ensure_ray_importable, use_loopback

ensure_ray_importable()

import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from protran_tune.platforms import (  # noqa: E402
    Measurement,
    MeasurementError,
    Platform,
    Workload,
    available_platforms,
    register_platform,
)
from protran_tune.cluster.pool import PlatformPool  # noqa: E402
from protran_tune.platforms.records import read_records  # noqa: E402
from protran_tune.reporting import load_measurement_file  # noqa: E402
from protran_tune.space import Architecture  # noqa: E402

pytestmark = pytest.mark.ray

TESTS_DIR = str(Path(__file__).resolve().parent)
PLUGIN = Path(__file__).stem
WORKLOAD = Workload(batch_size=2, seq_len=16, min_repeats=3, max_repeats=5, warmup=1, vocab_size=100)


@register_platform("test-alpha")
class AlphaPlatform(Platform):
    """Times ``seq_len x hidden`` matmuls per layer with numpy; energy from a labelled constant-power model.

    ``delay_s`` makes each measurement last longer, ``hang_on`` (hashes) never return. Fault options: ``crash_once`` (hashes whose first attempt kills the process with ``os._exit``; a
    marker file in ``marker_dir`` remembers the attempt across restarts), ``crash_always`` (hashes that
    kill the process every time), ``fail_on`` (hashes that raise :class:`MeasurementError`).
    """

    POWER_W = 10.0

    def __init__(self, log: str | None = None, marker_dir: str | None = None, crash_once: tuple = (),
                 crash_always: tuple = (), fail_on: tuple = (), delay_s: float = 0.0, hang_on: tuple = ()) -> None:
        self.log, self.marker_dir, self.delay_s, self.hang_on = log, marker_dir, delay_s, set(hang_on)
        self.crash_once, self.crash_always, self.fail_on = set(crash_once), set(crash_always), set(fail_on)

    def measure(self, arch: Architecture, workload: Workload) -> Measurement:
        key = arch.content_hash()
        if key in self.crash_always:
            os._exit(3)
        if key in self.crash_once:
            try:
                fd = os.open(os.path.join(self.marker_dir, key), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                os._exit(3)
        if key in self.hang_on:
            time.sleep(3600)  # a wedged device
        if key in self.fail_on:
            raise MeasurementError("out of memory while allocating activations")
        rng = np.random.default_rng(workload.seed)
        batch = workload.batch_size or 1
        n = batch * workload.seq_len
        operands = [(rng.standard_normal((n, layer.hidden)), rng.standard_normal((layer.hidden, layer.hidden)))
                    for layer in arch.layers]
        times = []
        for i in range(workload.warmup + workload.min_repeats):
            start = time.perf_counter()
            for x, w in operands:
                np.tanh(x @ w)
            if i >= workload.warmup:
                times.append(time.perf_counter() - start)
        latency = float(np.median(times))
        time.sleep(self.delay_s)  # a slower device: keeps a measurement in flight
        q1, q3 = np.percentile(times, [25, 75])
        if self.log:
            with open(self.log, "a") as fh:
                fh.write(json.dumps({"arch_hash": key, "pid": os.getpid(), "platform": self.name}) + "\n")
        return Measurement(
            platform=self.name, device="numpy matmul", mode=workload.mode, batch_size=batch,
            seq_len=workload.seq_len, repeats=len(times), latency_s=latency, latency_iqr_s=float(q3 - q1),
            latency_ci_rel=0.05, source="modelled:constant-power", energy_j=latency * self.POWER_W,
            energy_above_idle_j=None, idle_power_w=None, peak_power_w=self.POWER_W, mean_power_w=self.POWER_W,
            unavailable={"energy_above_idle_j": "test platform has no idle model", "idle_power_w": "not measured"},
            meta={"power_w": self.POWER_W},
        )


@register_platform("test-beta")
class BetaPlatform(AlphaPlatform):
    """Same as :class:`AlphaPlatform`, registered under another name (a device of another kind)."""


def archs(n: int, offset: int = 0) -> list[Architecture]:
    """``n`` distinct small architectures."""
    return [Architecture.homogeneous(1 + (i % 3), 16 * (1 + (i + offset) // 3), 2, 32) for i in range(n)]


def logged(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture(scope="module")
def cluster():
    """Two loopback nodes: head (2 x platform:test-alpha, 1 x platform:cpu) and one platform:test-beta node."""
    restore_network = use_loopback()  # otherwise Ray rewrites 127.0.0.1 to the eth0 address
    old_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS_DIR, old_path) if p)  # workers import this module
    c = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False,
            "resources": {"platform:test-alpha": 2, "platform:cpu": 1},
        },
    )
    beta = c.add_node(num_cpus=1, node_ip_address="127.0.0.1", resources={"platform:test-beta": 1})
    try:
        ray.init(address=c.address, log_to_driver=False, logging_level="WARNING")
        yield {"head": c.head_node.node_id, "beta": beta.node_id, "cluster": c}
    finally:
        ray.shutdown()
        c.shutdown()
        restore_network()
        if old_path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old_path


def pool(platform: str = "test-alpha", **kwargs) -> PlatformPool:
    options = kwargs.pop("options", {})
    return PlatformPool(platform, options, workload=WORKLOAD, plugins=[PLUGIN], **kwargs)


def test_pool_uses_every_unit_and_returns_records_in_input_order(cluster, tmp_path):
    log = tmp_path / "log.jsonl"
    batch = archs(8)
    seen = []
    with pool(options={"log": str(log)}) as p:
        assert p.size == 2  # two units of platform:test-alpha advertised
        records = p.measure(batch, on_result=lambda rec, done, total: seen.append((rec["arch_hash"], done, total)))
    assert [r["arch_hash"] for r in records] == [a.content_hash() for a in batch]
    assert all(r["status"] == "ok" and r["error"] is None for r in records)
    assert [d for _, d, _ in seen] == list(range(1, 9)) and {t for _, _, t in seen} == {8}
    assert {r["node"]["node_id"] for r in records} == {cluster["head"]}
    assert len({r["node"]["pid"] for r in records}) == 2  # both actors measured
    first = Measurement.from_dict(records[0]["measurement"])
    assert first.platform == "test-alpha" and first.batch_size == 2 and first.seq_len == 16
    assert records[0]["workload"] == WORKLOAD.to_dict()
    assert records[0]["architecture"] == batch[0].to_dict()
    assert sorted(e["arch_hash"] for e in logged(log)) == sorted(a.content_hash() for a in batch)


def test_each_measurement_runs_on_the_node_of_its_platform(cluster, tmp_path):
    with pool("test-alpha") as alpha, pool("test-beta") as beta:
        assert (alpha.size, beta.size) == (2, 1)
        on_alpha = alpha.measure(archs(3))
        on_beta = beta.measure(archs(3, offset=5))
        described = beta.describe()
    assert {r["node"]["node_id"] for r in on_alpha} == {cluster["head"]}
    assert {r["node"]["node_id"] for r in on_beta} == {cluster["beta"]}
    assert cluster["head"] != cluster["beta"]
    assert {r["measurement"]["platform"] for r in on_beta} == {"test-beta"}
    assert {r["node"]["node_ip"] for r in on_alpha + on_beta} == {"127.0.0.1"}
    assert described[0]["platform"] == "test-beta" and described[0]["node"]["node_id"] == cluster["beta"]


def test_actor_killed_mid_batch_is_restarted_and_every_architecture_measured_once(cluster, tmp_path):
    log, out = tmp_path / "log.jsonl", tmp_path / "out.jsonl"
    batch = archs(6)
    victim = batch[2].content_hash()
    options = {"log": str(log), "marker_dir": str(tmp_path), "crash_once": [victim]}
    with pool(options=options) as p:
        pids_before = {d["node"]["pid"] for d in p.describe()}
        records = list(p.map(batch, out=out))
        stats = dict(p.stats)
        pids_after = {d["node"]["pid"] for d in p.describe()}
    assert sorted(r["arch_hash"] for r in records) == sorted(a.content_hash() for a in batch)
    assert all(r["status"] == "ok" for r in records)
    assert (tmp_path / victim).exists()  # the actor really died on its first attempt
    by_hash = {r["arch_hash"]: r for r in records}
    assert by_hash[victim]["attempts"] == 2 and stats["retried"] == 1 and stats["actor_errors"] == 1
    assert [e["arch_hash"] for e in logged(log)].count(victim) == 1
    assert sorted(e["arch_hash"] for e in logged(log)) == sorted(by_hash)  # exactly once each
    assert {r["arch_hash"] for _, r in read_records(out)} == set(by_hash) and len(out.read_text().splitlines()) == 6
    assert len(pids_after) == 2 and len(pids_before & pids_after) == 1  # one actor restarted in a new process


def test_node_lost_mid_batch_its_measurement_moves_to_a_surviving_node(cluster, tmp_path):
    c = cluster["cluster"]
    extra = c.add_node(num_cpus=1, node_ip_address="127.0.0.1", resources={"platform:test-beta": 1})
    log = tmp_path / "log.jsonl"
    batch = archs(6)
    try:
        with pool("test-beta", options={"log": str(log), "delay_s": 0.5}, start_timeout_s=5, max_replacements=1) as p:
            nodes = {d["node"]["node_id"] for d in p.describe()}
            assert p.size == 2 and nodes == {cluster["beta"], extra.node_id}  # one device per node

            def lose_node(record, done, total):
                if done == 1:
                    c.remove_node(extra, allow_graceful=False)

            records = p.measure(batch, on_result=lose_node)
            stats, size = dict(p.stats), p.size
    finally:
        if extra in c.worker_nodes:
            c.remove_node(extra)
    assert [r["status"] for r in records] == ["ok"] * 6
    assert sorted(r["arch_hash"] for r in records) == sorted(a.content_hash() for a in batch)  # one record each
    measured_at_most_twice_once(log, batch)
    assert stats["actor_errors"] >= 1 and stats["retried"] >= 1 and size == 1 and stats["dropped"] == 1
    after = [r for r in records if r["node"]["node_id"] != extra.node_id]
    assert len(after) >= 4 and {r["node"]["node_id"] for r in after} == {cluster["beta"]}


def test_architecture_that_kills_its_actor_twice_is_failed_and_the_batch_goes_on(cluster, tmp_path):
    batch = archs(4)
    poison = batch[1].content_hash()
    with pool(options={"crash_always": [poison]}, num_actors=1, max_restarts=3) as p:
        records = p.measure(batch)
    assert records[1]["status"] == "failed" and "actor died twice" in records[1]["error"]
    assert records[1]["attempts"] == 2 and records[1]["measurement"] is None
    assert [r["status"] for i, r in enumerate(records) if i != 1] == ["ok"] * 3


def test_wedged_measurement_is_restarted_retried_once_then_failed(cluster, tmp_path):
    batch = archs(3)
    wedged = batch[0].content_hash()
    with pool(options={"hang_on": [wedged]}, num_actors=1, max_restarts=3, measure_timeout_s=1.5) as p:
        records = p.measure(batch)
        assert p.stats["retried"] == 1 and p.size == 1
    assert records[0]["status"] == "failed" and records[0]["attempts"] == 2
    assert "measure_timeout_s=1.5" in records[0]["error"]
    assert [r["status"] for r in records[1:]] == ["ok", "ok"]


def test_actor_that_ray_gives_up_on_is_replaced(cluster, tmp_path):
    log = tmp_path / "log.jsonl"
    batch = archs(4)
    victim = batch[0].content_hash()
    options = {"log": str(log), "marker_dir": str(tmp_path), "crash_once": [victim]}
    with pool(options=options, num_actors=1, max_restarts=0) as p:
        records = p.measure(batch)
        assert p.stats["replaced"] == 1 and p.size == 1
    assert [r["status"] for r in records] == ["ok"] * 4
    assert sorted(e["arch_hash"] for e in logged(log)) == sorted(a.content_hash() for a in batch)


def measured_at_most_twice_once(log: Path, batch: list[Architecture]) -> None:
    """Every architecture's measurement completed; at most one twice (an actor killed from outside
    after its platform finished but before the result reached the pool is measured again)."""
    counts = Counter(e["arch_hash"] for e in logged(log))
    assert set(counts) == {a.content_hash() for a in batch}
    assert sum(counts.values()) - len(batch) <= 1


def test_ray_kill_of_an_actor_during_a_batch_loses_nothing(cluster, tmp_path):
    log, out = tmp_path / "log.jsonl", tmp_path / "out.jsonl"
    batch = archs(6)
    with pool(options={"log": str(log)}) as p:
        handle = p.actors[0]

        def kill_after_first(record, done, total):
            if done == 1:
                ray.kill(handle, no_restart=False)  # Ray restarts it (max_restarts)

        records = p.measure(batch, on_result=kill_after_first, out=out)
    assert [r["status"] for r in records] == ["ok"] * 6
    lines = [json.loads(line)["arch_hash"] for line in out.read_text().splitlines()]
    assert sorted(lines) == sorted(a.content_hash() for a in batch)  # one record each
    measured_at_most_twice_once(log, batch)


def test_rerun_with_the_same_output_measures_only_what_is_missing(cluster, tmp_path):
    log, out = tmp_path / "log.jsonl", tmp_path / "out.jsonl"
    batch = archs(6)
    with pool(options={"log": str(log)}) as p:
        p.measure(batch[:3], out=out)
        with open(out, "a") as fh:  # a record torn by a crash mid-write
            fh.write('{"arch_hash": "dead')
        records = p.measure(batch, out=out)
        assert p.stats["skipped"] == 3
        other = Workload(batch_size=2, seq_len=8, min_repeats=3, max_repeats=5, warmup=1, vocab_size=100)
        (again,) = p.measure(batch[:1], workload=other, out=out)  # another workload is another record
    assert [r["arch_hash"] for r in records] == [a.content_hash() for a in batch]
    assert len(logged(log)) == 7  # the first three were not measured again; one with the other workload
    assert again["workload"]["seq_len"] == 8 and again["measurement"]["seq_len"] == 8
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 7 and {r["arch_hash"] for r in lines} == {r["arch_hash"] for r in records}
    (dataset,) = load_measurement_file(out)  # the report reads the pool's output as it is
    assert dataset.label == "test-alpha" and set(dataset.values) == {r["arch_hash"] for r in records}


def test_measurement_error_is_a_failed_record_without_retry(cluster, tmp_path):
    batch = archs(3)
    bad = batch[0].content_hash()
    with pool(options={"fail_on": [bad]}) as p:
        records = p.measure(batch)
        assert p.stats["retried"] == 0 and p.stats["failed"] == 1
    assert records[0]["status"] == "failed" and records[0]["attempts"] == 1
    assert records[0]["error"] == "MeasurementError: out of memory while allocating activations"
    assert [r["status"] for r in records[1:]] == ["ok", "ok"]


def test_clear_errors_for_missing_resource_and_unbuildable_platform(cluster):
    with pytest.raises(ValueError, match=r"no node advertises resource 'platform:jetson'.*test-alpha"):
        PlatformPool("jetson")
    with pytest.raises(ValueError, match=r"num_actors must be an integer in \[1, 2\]"):
        pool(num_actors=3)
    with pytest.raises(ValueError, match=r"could not start platform 'test-alpha'.*TypeError.*bogus"):
        pool(options={"bogus": 1})
    with pool(num_actors=2) as p:  # the actors of the failed pool gave both units back
        assert [r["status"] for r in p.measure(archs(2))] == ["ok", "ok"]


@pytest.mark.skipif("cpu" not in available_platforms(), reason="the cpu platform is not built yet")
def test_real_cpu_platform_through_the_pool(cluster, tmp_path):
    arch = Architecture.homogeneous(1, 32, 2, 64)
    work = Workload(batch_size=1, seq_len=8, min_repeats=3, max_repeats=5, warmup=1, vocab_size=100)
    options = {"idle_window_s": 0.2, "energy_window_s": 0.3, "warmup_s": 0.0, "threads": 1}
    with PlatformPool("cpu", options, workload=work) as p:
        (record,) = p.measure([arch])
    assert record["status"] == "ok", record["error"]
    m = Measurement.from_dict(record["measurement"])
    assert m.platform == "cpu" and m.latency_s > 0 and record["node"]["node_id"] == cluster["head"]
    assert m.source.startswith(("measured:", "modelled:")) and m.power_trace  # a labelled source, a real trace


def test_broken_amdsmi_does_not_break_ray_import(tmp_path):
    # amdsmi 7.x (a Zeus dependency) raises KeyError at import without libamd_smi.so; Ray only tolerates
    # ImportError. A stand-in package reproduces that; the fix must let Ray import and reach child processes.
    broken = tmp_path / "amdsmi"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise KeyError('libamd_smi.so')\n")
    code = (
        "import os, sys\n"
        "from protran_tune.cluster.raycompat import SHIM_DIR, amdsmi_is_broken, ensure_ray_importable\n"
        "assert amdsmi_is_broken()\n"
        "assert ensure_ray_importable()\n"
        "import ray\n"
        "import ray._private.utils as u; u.get_visible_accelerator_ids()\n"
        "assert os.environ['PYTHONPATH'].split(os.pathsep)[0] == SHIM_DIR\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    failing = subprocess.run([sys.executable, "-c", "import ray"], env=env, capture_output=True, text=True)
    assert failing.returncode != 0 and "KeyError" in failing.stderr  # what the fix prevents
