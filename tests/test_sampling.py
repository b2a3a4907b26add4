"""OTEL_TRACES_SAMPLER's values, each to the sampler the OpenTelemetry specification names."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, TraceIdRatioBased

from b2b_otel.setup.sampling import build_sampler
from b2b_otel.setup.settings import resolve


@pytest.mark.parametrize(
    ("name", "description"),
    [
        ("always_on", ALWAYS_ON.get_description()),
        ("always_off", ALWAYS_OFF.get_description()),
        ("traceidratio", TraceIdRatioBased(0.25).get_description()),
        ("parentbased_always_on", ParentBased(ALWAYS_ON).get_description()),
        ("parentbased_always_off", ParentBased(ALWAYS_OFF).get_description()),
        ("parentbased_traceidratio", ParentBased(TraceIdRatioBased(0.25)).get_description()),
    ],
)
def test_each_sampler_name_builds_the_sampler_it_names(name: str, description: str) -> None:
    settings = resolve({}, {"OTEL_TRACES_SAMPLER": name, "OTEL_TRACES_SAMPLER_ARG": "0.25"})
    assert build_sampler(settings).get_description() == description


def test_the_default_sampler_is_parent_based_always_on() -> None:
    assert build_sampler(resolve({}, {})).get_description() == ParentBased(ALWAYS_ON).get_description()
