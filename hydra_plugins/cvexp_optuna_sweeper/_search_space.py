"""Hydra sweep overrides -> Optuna distributions, in the syntax of hydra-optuna-sweeper:

| override                              | distribution                                        |
|---------------------------------------|-----------------------------------------------------|
| `key=choice(a, b, c)`                 | CategoricalDistribution([a, b, c])                  |
| `key=interval(0.1, 1.0)`              | FloatDistribution(0.1, 1.0) (IntDistribution when both ends are ints) |
| `key=tag(log, interval(1e-4, 1e-1))`  | the same with log=True                              |
| `key=range(8, 65, 8)`                 | IntDistribution(8, 64, step=8): Hydra's range, the stop excluded (hydra-optuna-sweeper kept it) |
| `key=shuffle(range(...))`             | CategoricalDistribution of the range's values       |
| `key=value`                           | a fixed value, passed on to every trial             |

A mistake (an unsupported sweep, an empty interval, log of a range reaching 0) is a `SearchSpaceError`
with one line naming the key and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Glob, IntervalSweep, Override, RangeSweep, Transformer
from hydra.errors import HydraException


class SearchSpaceError(ValueError):
    """A search space the sweeper cannot use; the message is one line naming the key."""


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _text(override: Override) -> str:
    """The value as written (`interval(1e-4, 1e-2)`)."""
    line = getattr(override, "input_line", None) or ""
    return line.split("=", 1)[1].strip() if "=" in line else line


def distribution_of(override: Override) -> Any:
    """The Optuna distribution of a sweep override, or the fixed value (a str) of a plain one."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    key = override.get_key_element()
    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    value = override.value()
    if isinstance(value, Glob):
        raise SearchSpaceError(f"{key}: {_text(override)} is not a search space the Optuna sweeper takes; list the "
                               "options: choice(a, b, c)")
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        assert isinstance(value, (ChoiceSweep, RangeSweep))
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        bad = [c for c in choices if not isinstance(c, (str, int, float, bool, type(None)))]
        if bad:
            raise SearchSpaceError(f"{key}: choice() takes plain values (str, int, float, bool, null), not {bad[0]!r}")
        if not choices:
            raise SearchSpaceError(f"{key}: choice() needs at least one value")
        return CategoricalDistribution(choices)
    if override.is_range_sweep():
        assert isinstance(value, RangeSweep)
        values = list(override.sweep_iterator())
        if not values:
            raise SearchSpaceError(f"{key}={_text(override)} holds no value (the stop is excluded); "
                                   "widen it, e.g. range(1, 5) = 1, 2, 3, 4")
        step = value.step
        if all(isinstance(v, int) for v in values) and float(step).is_integer():
            return IntDistribution(int(values[0]), int(values[-1]), step=int(step))
        return FloatDistribution(float(values[0]), float(values[-1]), step=float(step))
    if override.is_interval_sweep():
        assert isinstance(value, IntervalSweep)
        lo, hi, log = value.start, value.end, "log" in value.tags
        if not (_number(lo) and _number(hi)) or not lo < hi:
            raise SearchSpaceError(f"{key}: interval(low, high) needs numbers with low < high, got "
                                   f"{_text(override)}")
        if log and lo <= 0:
            raise SearchSpaceError(f"{key}: tag(log, interval(...)) needs low > 0, got {lo}; use a positive low "
                                   "end (e.g. 1e-5) or drop the log tag")
        if isinstance(lo, int) and isinstance(hi, int):
            return IntDistribution(lo, hi, log=log)
        return FloatDistribution(float(lo), float(hi), log=log)
    raise SearchSpaceError(f"{key}: {_text(override)} is not a search space the Optuna sweeper "
                           "takes; use choice(...), range(...), interval(...) or tag(log, interval(...))")


def parse(arguments: Iterable[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(search space {key: distribution}, fixed overrides {key: value}) of `arguments`, later ones
    replacing earlier ones of the same key (the command line after `hydra.sweeper.params`)."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(arguments))
    except HydraException as e:
        raise SearchSpaceError(str(e).strip().splitlines()[0]) from None
    space: dict[str, Any] = {}
    fixed: dict[str, str] = {}
    for override in parsed:
        key = override.get_key_element()
        value = distribution_of(override)
        space.pop(key, None)
        fixed.pop(key, None)
        if isinstance(value, str):
            fixed[key] = value
        else:
            space[key] = value
    return space, fixed


def params_arguments(params: Any) -> list[str]:
    """`hydra.sweeper.params` ({key: "choice(...)"}) as override strings."""
    return [f"{k!s}={v}" for k, v in (params or {}).items()]


def format_value(value: Any) -> str:
    """A sampled value as an override value that Hydra reads back as the same value (strings that
    would read as something else, e.g. `a,b` or `1`, are quoted)."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, str):
        try:
            back = OverridesParser.create().parse_override(f"k={value}")
            if not back.is_sweep_override() and back.value() == value and isinstance(back.value(), str):
                return value
        except HydraException:
            pass
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)


def trial_overrides(params: dict[str, Any], fixed: dict[str, str]) -> list[str]:
    """The overrides of one trial: the sampled values, then the fixed ones."""
    return [f"{k}={format_value(v)}" for k, v in params.items()] + [f"{k}={v}" for k, v in fixed.items()]


def grid_of(space: dict[str, Any]) -> dict[str, Sequence[Any]]:
    """The search space of GridSampler: every value of each (finite) distribution."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    grid: dict[str, Sequence[Any]] = {}
    for key, d in space.items():
        if isinstance(d, CategoricalDistribution):
            grid[key] = list(d.choices)
        elif isinstance(d, IntDistribution) and not d.log:
            grid[key] = list(range(d.low, d.high + 1, d.step))
        elif isinstance(d, FloatDistribution) and d.step is not None:
            n = int(round((d.high - d.low) / d.step))
            grid[key] = [d.low + i * d.step for i in range(n + 1)]
        else:
            raise SearchSpaceError(f"{key}: hydra/sweeper/sampler=grid needs finite values (choice or range), "
                                   "not an interval")
    return grid
