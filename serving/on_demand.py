"""On-demand features: request-time functions of a folder's on_demand.py, one implementation for every engine.

A feature list (refs, or a service) splits into the stored features read from Redis or the offline
history, and on-demand steps. Each step calls its function once per batch with one pandas Series per
argument (a stored feature, the request time, a request field) and must return one Series of the same
length; the result is checked against the declared dtype on the way out. The service runs a step over the
ids of one call, training sets over the observation rows (with the observation time as the request time),
and both build the Series through Arrow from the same dtypes, so both see the same values and types.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa

from assets.dtypes import INT_RANGES, arrow_type
from assets.registry import Registry
from assets.specs import FeatureGroup, OnDemandFeature
from assets.udfs import load_udf_module
from infra.errors import PlatformError
from serving.feature_refs import REF, InvalidRequest, UnknownName, resolve_refs, shown


@dataclass(frozen=True)
class OnDemandStep:
    """One on-demand feature of a request: its output name, declaration, module and resolved inputs."""

    name: str                           # output name: `<group>.<feature>` or `<service>.<feature>`
    feature: OnDemandFeature
    module_path: Path
    owner: str                          # the group or service whose on_demand.py holds the function
    inputs: tuple[tuple[str, str], ...]  # (argument, stored ref's output name or `request.<field>`)

    @property
    def dtype(self) -> str:
        return self.feature.dtype

    def function(self):
        """The declared function, from the owner's on_demand.py (loaded once per process)."""
        return getattr(_module(self.module_path, self.owner), self.feature.function)


@functools.lru_cache(maxsize=None)
def _module(path: Path, owner: str):
    return load_udf_module(path, f"{owner}_on_demand")


@dataclass(frozen=True)
class Selection:
    """What a feature list asks for: outputs in order, the stored refs to read, the on-demand steps."""

    outputs: tuple[str, ...]            # output names, in answer order
    dtypes: tuple[str, ...]             # declared dtype per output
    stored: tuple[str, ...]             # stored refs among the outputs (resolved names)
    inputs: tuple[str, ...]             # stored refs read only as on-demand inputs
    steps: tuple[OnDemandStep, ...]
    request_fields: Mapping[str, str]   # request fields the steps read (besides the time), with dtypes

    @property
    def reads(self) -> tuple[str, ...]:
        """Every stored ref to fetch: the outputs, then the inputs."""
        return self.stored + self.inputs


def _step(registry: Registry, owner: str, module_path: Path, feature: OnDemandFeature, name: str,
          group: str | None = None) -> OnDemandStep:
    """The step computing `feature`; its stored inputs resolved (bare names: features of `group`)."""
    stored = feature.feature_inputs(group)
    inputs = [(argument, resolve_refs(registry, [stored[argument]])[0].name if argument in stored else source)
              for argument, source in feature.inputs.items()]
    return OnDemandStep(name=name, feature=feature, module_path=module_path, owner=owner, inputs=tuple(inputs))


def _group_on_demand(registry: Registry, ref: str) -> tuple[FeatureGroup, OnDemandFeature] | None:
    """The group's on-demand feature `ref` names (`group.feature`, `group@vN.feature`), if it names one."""
    match = REF.match(ref) if isinstance(ref, str) else None
    group = registry.groups.get(match["group"]) if match else None
    if group is None or match["feature"] is None:
        return None
    feature = next((f for f in group.on_demand if f.name == match["feature"]), None)
    if feature is None:
        return None
    resolve_refs(registry, [match["group"] + (f"@v{match['version']}" if match["version"] else "")])  # version check
    return group, feature


def select(registry: Registry, refs: Sequence[str], service_steps: Sequence[OnDemandStep] = ()) -> Selection:
    """Split refs into stored features and on-demand steps, in request order and without duplicates."""
    if not refs:
        raise InvalidRequest("no features requested", "name features as group.feature, group or group@vN")
    outputs: dict[str, str] = {}
    stored: list[str] = []
    steps: list[OnDemandStep] = []
    for ref in refs:
        on_demand = _group_on_demand(registry, ref)
        if on_demand is not None:
            group, feature = on_demand
            if ref not in outputs:
                steps.append(_step(registry, group.name, group.on_demand_path, feature, ref, group.name))
                outputs[ref] = feature.dtype
            continue
        for resolved in resolve_refs(registry, [ref]):
            if resolved.name not in outputs:
                outputs[resolved.name] = resolved.feature.dtype
                stored.append(resolved.name)
    for step in service_steps:
        steps.append(step)
        outputs[step.name] = step.dtype
    inputs = [n for s in steps for _, n in s.inputs if not n.startswith("request.") and n not in outputs]
    fields: dict[str, str] = {}
    for step in steps:
        fields.update(step.feature.request_fields)
    return Selection(outputs=tuple(outputs), dtypes=tuple(outputs.values()), stored=tuple(stored),
                     inputs=tuple(dict.fromkeys(inputs)), steps=tuple(steps), request_fields=fields)


def select_service(registry: Registry, name: str) -> tuple[str, Selection]:
    """The entity and selection of the feature service `name`; an unknown name lists the services."""
    service = registry.services.get(name) if isinstance(name, str) else None
    if service is None:
        known = ", ".join(sorted(registry.services)) or "none: add assets/services/<name>.yaml"
        raise UnknownName(f"unknown feature service {shown(name)}", f"use one of: {known}")
    steps = [_step(registry, f"service_{service.name}", service.on_demand_path, f, f"{service.name}.{f.name}")
             for f in service.on_demand]
    return service.entity, select(registry, service.features, steps)


# --- request fields -------------------------------------------------------------------------------------

def _parse_time(value) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _field_value(dtype: str, value):
    """A JSON value as a value of `dtype`, or a ValueError (bool is not an integer, text is not a number, an
    integer must fit its dtype's range)."""
    if dtype in INT_RANGES and type(value) is int:
        low, high = INT_RANGES[dtype]
        if not low <= value <= high:
            raise ValueError(f"is out of the {dtype} range {low}..{high}")
        return value
    if dtype == "float64" and type(value) in (int, float):
        return float(value)
    if dtype == "string" and isinstance(value, str):
        return value
    if dtype == "bool" and type(value) is bool:
        return value
    if dtype == "timestamp" and _parse_time(value) is not None:
        return _parse_time(value)
    if dtype == "date" and isinstance(value, str):
        return date.fromisoformat(value)
    raise ValueError(f"is not a {dtype} value")


def request_values(selection: Selection, request, now: datetime) -> dict:
    """The request fields of one call, typed: `time` (default `now`) and each field the steps read.

    A missing, unknown or mistyped field is an InvalidRequest naming it (the service answers 422).
    """
    if request is None:
        request = {}
    if not isinstance(request, dict):
        raise InvalidRequest(f"request must be an object of request fields, got {shown(request)}",
                             'send e.g. {"time": "2026-01-09T12:00:00Z"}')
    expected = {"time": "timestamp", **selection.request_fields}
    unknown = sorted(request.keys() - expected.keys())
    if unknown:
        raise InvalidRequest(f"unknown request field(s) {', '.join(unknown)}",
                             f"this request reads: {', '.join(expected)}")
    values = {"time": now}
    for field, dtype in expected.items():
        if field not in request:
            if field != "time":
                readers = [s.name for s in selection.steps if field in s.feature.request_fields]
                raise InvalidRequest(f"request field {field!r} ({dtype}) is missing: {', '.join(readers)} read(s) it",
                                     f'send "request": {{"{field}": ...}}')
            continue
        try:
            values[field] = _field_value(dtype, request[field])
        except ValueError as exc:
            raise InvalidRequest(f"request.{field} = {shown(request[field])} {exc}",
                                 f"send a {dtype} (timestamps and dates as ISO 8601 text)") from None
    return values


# --- computing ------------------------------------------------------------------------------------------

def as_series(values: pa.Array | pa.ChunkedArray) -> pd.Series:
    """The pandas Series a function receives for an Arrow column (the one conversion of every engine).

    Timestamps become datetime64[us, UTC] through NumPy, as `to_pandas` makes them but 3x faster on the
    few values of a service call (where this is most of an on-demand feature's fixed cost).
    """
    if pa.types.is_timestamp(values.type) and values.type.tz is not None:
        return pd.Series(pd.DatetimeIndex(values.to_numpy(zero_copy_only=False)).tz_localize(values.type.tz))
    return values.to_pandas()


def typed_output(step: OnDemandStep, result, rows: int) -> pa.Array:
    """The function's result as an Arrow array of the declared dtype, or an error naming the function."""
    where = f"{step.module_path.name}: {step.feature.function}() for {step.name}"
    if not isinstance(result, pd.Series) or len(result) != rows:
        got = f"{type(result).__name__} of length {len(result)}" if hasattr(result, "__len__") else type(result).__name__
        raise PlatformError(f"{where}: returned {got}, not a pandas Series of {rows} values",
                            "return one value per input row, as a Series")
    target = arrow_type(step.dtype)
    try:
        array = pa.Array.from_pandas(result.reset_index(drop=True))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise PlatformError(f"{where}: returned values Arrow cannot type: {exc}",
                            f"return {step.dtype} values") from None
    same_kind = (array.type == target or pa.types.is_null(array.type)
                 or (pa.types.is_floating(target) and (pa.types.is_integer(array.type) or pa.types.is_floating(array.type)))
                 or (pa.types.is_integer(target) and pa.types.is_integer(array.type))
                 or (pa.types.is_timestamp(target) and pa.types.is_timestamp(array.type)))
    if not same_kind:
        raise PlatformError(f"{where}: returned {array.type} values, but it is declared {step.dtype}",
                            f"return {step.dtype} values or change the declared dtype")
    try:
        return array.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise PlatformError(f"{where}: its values do not fit {step.dtype}: {exc}",
                            f"return {step.dtype} values") from None


def compute(steps: Sequence[OnDemandStep], columns: Mapping[str, pa.Array | pa.ChunkedArray],
            request: Mapping[str, pa.Array | pa.ChunkedArray], rows: int,
            functions: Mapping[str, Callable] | None = None) -> dict[str, pa.Array]:
    """Each step's output over `rows` rows, from stored columns (by ref name) and request columns (by field).

    `functions` (by step name) are the steps' functions already loaded, as a Spark executor receives them.
    """
    out = {}
    for step in steps:
        arguments = {}
        for argument, source in step.inputs:
            column = request[source.removeprefix("request.")] if source.startswith("request.") else columns[source]
            arguments[argument] = as_series(column)
        function = functions[step.name] if functions else step.function()
        out[step.name] = typed_output(step, function(**arguments), rows)
    return out


def request_columns(values: Mapping[str, object], selection: Selection, rows: int) -> dict[str, pa.Array]:
    """One call's request fields repeated over its `rows` ids, as typed Arrow columns."""
    dtypes = {"time": "timestamp", **selection.request_fields}
    return {field: pa.array([value] * rows, arrow_type(dtypes[field])) for field, value in values.items()}
