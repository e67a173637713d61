"""Optuna's own generic sampler suite (``optuna.testing.pytest_samplers``) run on our samplers.

Every whole-architecture sampler, built with its default constructor arguments, passes the test cases
Optuna applies to its own samplers: ``BasicSamplerTestCase`` (independent sampling of every distribution
type, NaN values, partially fixed and conditional parameters, dynamic ranges),
``RelativeSamplerTestCase`` (``sample_relative`` on explicit search spaces, ``n_jobs=2``) and
``MultiObjectiveSamplerTestCase``. The suite's objectives suggest no architecture: their parameters go
to the default independent sampler, and their values, which describe no architecture, are never learned
by the surrogates. ``SingleOnlySamplerTestCase`` is for samplers that refuse multi-objective studies;
ours accept them.
"""

from __future__ import annotations

import warnings
from typing import Callable

import pytest
from optuna.samplers import BaseSampler
from optuna.testing.pytest_samplers import BasicSamplerTestCase, MultiObjectiveSamplerTestCase, RelativeSamplerTestCase

from protran_tune.samplers import (
    ActiveLearningSampler,
    HaltonSampler,
    HammerslySampler,
    LatinHypercubeSampler,
    RandomArchitectureSampler,
    SobolSampler,
)
from protran_tune.samplers.pareto import ParetoSampler


@pytest.fixture(autouse=True)
def _quiet_seed_sets():
    """The suite's studies outlast the 16-point seed sets, which warn once per trial past their end."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".* is past the .* points of the .* set", category=UserWarning)
        yield


class _OptunaSuite(BasicSamplerTestCase, RelativeSamplerTestCase, MultiObjectiveSamplerTestCase):
    sampler_class: type[BaseSampler]

    @pytest.fixture
    def sampler(self) -> Callable[[], BaseSampler]:
        return self.sampler_class  # called with no arguments: the defaults


class TestLatinHypercubeSampler(_OptunaSuite):
    sampler_class = LatinHypercubeSampler


class TestSobolSampler(_OptunaSuite):
    sampler_class = SobolSampler


class TestHaltonSampler(_OptunaSuite):
    sampler_class = HaltonSampler


class TestHammerslySampler(_OptunaSuite):
    sampler_class = HammerslySampler


class TestRandomArchitectureSampler(_OptunaSuite):
    sampler_class = RandomArchitectureSampler


class TestActiveLearningSampler(_OptunaSuite):
    sampler_class = ActiveLearningSampler


class TestParetoSampler(_OptunaSuite):
    sampler_class = ParetoSampler
