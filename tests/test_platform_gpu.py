"""The ``cuda`` platform on a real NVIDIA GPU (skipped without CUDA and NVML)."""

from __future__ import annotations

import pytest
import torch

from protran_tune.platforms import Workload, get_platform
from protran_tune.space import Architecture

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

BERT_TINY = Architecture.homogeneous(2, 128, 2, 512)


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_cuda_measures_with_nvml(cuda_graph: bool) -> None:
    pytest.importorskip("pynvml")
    with get_platform("cuda", cuda_graph=cuda_graph, baseline_idle_s=0.5) as gpu:
        m = gpu.measure(BERT_TINY, Workload(batch_size=32, seq_len=128, max_repeats=50))
    assert m.source == "measured:nvml" and m.meta["energy_window"]["method"] == "counter"
    assert m.meta["energy_window"]["counter_updates"] >= 5
    assert m.idle_power_w > 0 and m.energy_j > 0 and m.peak_power_w >= m.idle_power_w
    assert m.energy_above_idle_j == pytest.approx(m.energy_j - m.idle_power_w * m.meta["energy_window"]["batch_time_s"])
    assert m.meta["execution"] == ("cuda-graph" if cuda_graph else "eager")
    assert m.meta["idle_power_before_context_w"] > 0
    assert len(m.power_trace) > 10


def test_cuda_training_step() -> None:
    pytest.importorskip("pynvml")
    with get_platform("cuda", baseline_idle_s=0) as gpu:
        m = gpu.measure(BERT_TINY, Workload(mode="training", batch_size=32, max_repeats=30))
    assert m.mode == "training" and m.latency_s > 0 and m.energy_j > 0
