"""Hypothesis settings shared by the fuzz stage: bounded, reproducible (derandomize) and CI-friendly.

FUZZ_SCALE multiplies every example budget (default 1) for a deeper run by hand, e.g.
`FUZZ_SCALE=10 make fuzz`; CI keeps the default, which bounds the stage to a few minutes per database."""
import os

from hypothesis import HealthCheck, settings

SCALE = float(os.environ.get("FUZZ_SCALE", "1"))


def examples(n: int) -> int:
    return max(1, int(n * SCALE))


def fuzz_settings(max_examples: int, **kwargs) -> settings:
    return settings(
        max_examples=examples(max_examples),
        derandomize=True,  # the same inputs on every run: CI is reproducible, a failure is found again
        database=None,  # nothing carried over from an earlier run (or another branch)
        deadline=None,  # the database, not the code under test, decides the timing
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                               HealthCheck.function_scoped_fixture, HealthCheck.large_base_example],
        **kwargs,
    )
