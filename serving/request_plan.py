"""What one GetFeatures request means, resolved once: a read plan for Redis and the on-demand steps after it.

A request names features by refs (`entity` + `features`) or by a feature service (`service`); both resolve
to a `RequestPlan`: the stored features to read (the answer's, then the on-demand inputs the answer does
not show), and the on-demand steps computed over the decoded rows. A plan without on-demand features is
answered straight from the read plan, so plain requests pay nothing for this. Plans are cached by
feature list and by service name, as read plans are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, lru_cache

import pyarrow as pa

from assets.dtypes import arrow_type
from assets.registry import Registry
from serving.feature_refs import InvalidRequest, shown
from serving.get_features import FeatureRow, ReadPlan, build_read_plan
from serving.on_demand import Selection, compute, request_columns, request_values, select, select_service


@dataclass(frozen=True)
class RequestPlan:
    """A read plan plus the on-demand steps of one feature list; `refs`/`dtypes` are the answer's."""

    read: ReadPlan
    selection: Selection

    @property
    def entity(self) -> str:
        return self.read.entity

    @property
    def refs(self) -> tuple[str, ...]:
        return self.selection.outputs

    @property
    def dtypes(self) -> tuple[str, ...]:
        return self.selection.dtypes

    @cached_property
    def passthrough(self) -> bool:
        """Whether the read plan's rows are the answer as they are (no on-demand feature)."""
        return not self.selection.steps and self.read.refs == self.refs

    @cached_property
    def appends(self) -> bool:
        """Whether the answer is the read plan's rows with the on-demand values after them (added in place)."""
        return self.refs == self.read.refs + tuple(step.name for step in self.selection.steps)

    def request(self, request, now: datetime) -> dict:
        """The typed request fields of one call (`time` defaults to `now`); InvalidRequest when wrong."""
        return request_values(self.selection, request, now)


def build_request_plan(registry: Registry, prefix: str, entity: str, selection: Selection) -> RequestPlan:
    """The plan answering `selection` for `entity`: stored refs must all describe that entity."""
    return RequestPlan(read=build_read_plan(registry, prefix, entity, list(selection.reads)), selection=selection)


class RequestPlans:
    """Request plans by (entity, feature list) and by service name, each resolved once."""

    def __init__(self, registry: Registry, prefix: str, max_plans: int = 1024):
        self.registry = registry
        self.prefix = prefix
        self._by_refs = lru_cache(maxsize=max_plans)(self._plan_refs)
        self._by_service = lru_cache(maxsize=max_plans)(self._plan_service)

    def _plan_refs(self, entity: str, features: tuple[str, ...]) -> RequestPlan:
        return build_request_plan(self.registry, self.prefix, entity, select(self.registry, features))

    def _plan_service(self, name: str) -> RequestPlan:
        entity, selection = select_service(self.registry, name)
        return build_request_plan(self.registry, self.prefix, entity, selection)

    def plan(self, entity: str, features: Sequence[str]) -> RequestPlan:
        """The plan for `features` of `entity`, from the cache when this list was asked for before."""
        if not isinstance(features, (list, tuple)) or not all(isinstance(f, str) for f in features):
            raise InvalidRequest(f"features must be a list of feature refs, got {shown(features)}",
                                 'send e.g. ["user_upvotes.upvotes_7d", "user_upvotes"]')
        if not isinstance(entity, str):
            raise InvalidRequest(f"entity must be a name, got {shown(entity)}", 'send e.g. "user"')
        return self._by_refs(entity, tuple(features))

    def service(self, name: str) -> RequestPlan:
        """The plan of the feature service `name` (UnknownName when there is none)."""
        if not isinstance(name, str):
            raise InvalidRequest(f"service must be a name, got {shown(name)}", 'send e.g. "ranking"')
        return self._by_service(name)


def finish_rows(plan: RequestPlan, rows: list[FeatureRow], request: dict) -> list[FeatureRow]:
    """The answer's rows from the read plan's: stored values in answer order, plus each on-demand value.

    An on-demand value holds as of the oldest event time of its stored inputs, and is stale when one is.
    """
    if plan.passthrough:
        return rows
    selection, count = plan.selection, len(rows)
    needed = {name for step in selection.steps for _, name in step.inputs}
    dtypes = dict(zip(plan.read.refs, plan.read.dtypes))
    columns = {ref: pa.array([row.values[ref] for row in rows], arrow_type(dtypes[ref]))
               for ref in plan.read.refs if ref in needed}
    computed = {name: array.to_pylist()
                for name, array in compute(selection.steps, columns, request_columns(request, selection, count),
                                           count).items()}
    sources = {step.name: [n for _, n in step.inputs if n in dtypes] for step in selection.steps}
    if plan.appends:
        for name, values in computed.items():
            for row, value in zip(rows, values):
                known = [row.event_times[n] for n in sources[name] if row.event_times[n] is not None]
                row.values[name] = value
                row.event_times[name] = min(known) if known else None
                row.stale[name] = any(row.stale[n] for n in sources[name])
        return rows
    finished = []
    for index, row in enumerate(rows):
        values, times, stale = {}, {}, {}
        for ref in plan.refs:
            if ref in computed:
                values[ref] = computed[ref][index]
                known = [row.event_times[n] for n in sources[ref] if row.event_times[n] is not None]
                times[ref] = min(known) if known else None
                stale[ref] = any(row.stale[n] for n in sources[ref])
            else:
                values[ref], times[ref], stale[ref] = row.values[ref], row.event_times[ref], row.stale[ref]
        finished.append(FeatureRow(row.entity_id, values, times, stale))
    return finished
