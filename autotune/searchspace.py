"""The search space of a config on the chain as Live reports it: physical bounds checked against devices.

Defaults come from the device (its range as learnt from the display, its steps for stepped parameters)
and from the targets: a limiter ceiling above the peak limit can only fail, and one far below it only
wastes loudness, so an unbounded `ceiling` searches the 6 dB just under the limit.
"""

from __future__ import annotations

from autotune.config import Choices, SweepConfig
from autotune.live.devices import MasterChain, ValueOutOfRange
from autotune.vocabulary.keys import split_key
from objectives import Choice, Dim, Range, param_name

CEILING_MARGIN_DB = 0.05
CEILING_SPAN_DB = 6.0


def build_space(chain: MasterChain, config: SweepConfig, *, from_targets: bool = True) -> dict[str, Dim]:
    """`from_targets=False` keeps plain device ranges (a sweep's fixed values may lie anywhere in them)."""
    space: dict[str, Dim] = {}
    keys = (
        config.search_keys()
        if from_targets
        else {a: dict.fromkeys(k) for a, k in config.physical_keys().items()}
    )
    for alias, bounds in keys.items():
        for key, bound in bounds.items():
            name = param_name(alias, key)
            lo, hi, _ = chain.learn(alias, key)
            steps = chain.choices(alias, key)
            if isinstance(bound, Choices):
                for v in bound.choices:
                    chain.check(alias, key, v, "search")
                space[name] = Choice(tuple(bound.choices))
                continue
            if isinstance(bound, list):
                chain.check(alias, key, bound[0], "search")
                chain.check(alias, key, bound[1], "search")
                lo, hi = bound
            elif from_targets and split_key(key)[0] == "ceiling":
                # Under a true-peak limit the (sample-peak) ceiling starts lower by the true peak's
                # allowance above it (objectives.limits): a ceiling at -1 dB does not give -1 dBTP.
                budget = config.limits().sample_budget_dbfs()
                lo = max(lo, budget - CEILING_SPAN_DB)
                hi = min(hi, budget - CEILING_MARGIN_DB)
            if steps is not None:
                inside = tuple(v for v in steps if lo - 1e-9 <= v <= hi + 1e-9)
                if not inside:
                    raise ValueOutOfRange(
                        f"search.{alias}.{key}: no setting of the parameter lies in {lo:g} .. {hi:g}"
                    )
                space[name] = Choice(inside)
            else:
                if not lo < hi:
                    raise ValueOutOfRange(f"search.{alias}.{key}: empty range {lo:g} .. {hi:g}")
                space[name] = Range(lo, hi)
    if not space:
        raise ValueOutOfRange("nothing to search: add a search section or parameter values to the runs")
    return space
