"""The feature service's OpenAPI 3.1 document, built from the registry so it lists the served features."""

from __future__ import annotations

from assets.registry import Registry
from serving.feature_refs import REF

ERROR = {"$ref": "#/components/schemas/Error"}


def _catalog(registry: Registry) -> str:
    lines = []
    for group in registry.groups.values():
        features = ", ".join([f"{f.name} ({f.dtype})" for f in group.features]
                             + [f"{f.name} ({f.dtype}, on demand)" for f in group.on_demand])
        ttl = f"TTL {group.ttl}" if group.ttl else "no TTL"
        lines.append(f"- `{group.name}` v{group.version}, entity `{group.entity}`, {ttl}: {features}")
    return "\n".join(lines)


def _services(registry: Registry) -> str:
    return "\n".join(f"- `{s.name}` v{s.version}, entity `{s.entity}`: "
                     + ", ".join([*s.features, *(f"{s.name}.{f.name}" for f in s.on_demand)])
                     for s in registry.services.values())


def _error_response(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


def openapi_document(registry: Registry, max_ids: int) -> dict:
    """The document served at /openapi.json."""
    example_group = next(iter(registry.groups.values()))
    example = {"entity": example_group.entity, "ids": [42, 7],
               "features": [f"{example_group.name}.{example_group.features[0].name}", example_group.name]}
    ids = {"type": "array", "minItems": 1, "maxItems": max_ids,
           "items": {"oneOf": [{"type": "integer"}, {"type": "string", "minLength": 1}]},
           "description": "Entity ids; int64 entities take integers or strings of digits."}
    request_fields = {"type": "object", "properties": {"time": {"type": "string", "format": "date-time"}},
                      "description": "Request fields of on-demand features: `time` (default: now) and the "
                                     "fields their declarations name; scalars, the same for every id."}
    by_service = {
        "type": "object",
        "additionalProperties": False,
        "required": ["service", "ids"],
        "properties": {
            "service": {"type": "string", "enum": sorted(registry.services),
                        "description": "A feature service, answered with its features in its order:\n"
                                       + _services(registry)},
            "ids": ids,
            "request": request_fields,
        },
    }
    request = {
        "type": "object",
        "additionalProperties": False,
        "required": ["entity", "ids", "features"],
        "properties": {
            "entity": {"type": "string", "enum": sorted(registry.entities)},
            "ids": ids,
            "request": request_fields,
            "features": {"type": "array", "minItems": 1,
                         "items": {"type": "string", "pattern": REF.pattern},
                         "description": "Feature refs: `group`, `group.feature`, `group@vN`, `group@vN.feature`. "
                                        "Served groups:\n" + _catalog(registry)},
        },
        "examples": [example],
    }
    row = {
        "type": "object",
        "required": ["entity_id", "values", "event_times", "stale"],
        "properties": {
            "entity_id": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
            "values": {"type": "object", "description": "Per feature ref: its value, null when absent. "
                       "Timestamps and dates are ISO 8601 text; non-finite floats are \"inf\", \"-inf\", \"nan\"."},
            "event_times": {"type": "object", "additionalProperties": {"type": ["string", "null"],
                                                                       "format": "date-time"},
                            "description": "Per feature ref: the event time its value holds as of."},
            "stale": {"type": "object", "additionalProperties": {"type": "boolean"},
                      "description": "Per feature ref: true when the value is older than its group's TTL."},
        },
    }
    response = {
        "type": "object",
        "required": ["entity", "features", "rows"],
        "properties": {
            "entity": {"type": "string"},
            "features": {"type": "array", "items": {"type": "object", "required": ["name", "dtype"], "properties": {
                "name": {"type": "string"}, "dtype": {"type": "string"}}}},
            "rows": {"type": "array", "items": {"$ref": "#/components/schemas/FeatureRow"}},
        },
    }
    error = {"type": "object", "required": ["error"], "properties": {
        "error": {"type": "string", "description": "What was wrong."},
        "fix": {"type": ["string", "null"], "description": "What to do about it."}}}
    json_body = {"application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/FeaturesRequest"},
                                                           {"$ref": "#/components/schemas/ServiceRequest"}]}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "feature-platform feature service", "version": "1",
                 "description": "GetFeatures(entity, ids, features) from the online store in one Redis round trip."},
        "paths": {
            "/features": {"post": {
                "summary": "Feature values, event times and staleness for many ids",
                "requestBody": {"required": True, "content": json_body},
                "responses": {
                    "200": {"description": "One row per id, in request order; unknown ids get nulls.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FeaturesResponse"}}}},
                    "400": _error_response("The body is not a JSON object with entity, ids and features, or "
                                           "service and ids."),
                    "401": _error_response("Missing or wrong API token."),
                    "404": _error_response("Unknown entity, group, version, feature or service."),
                    "422": _error_response("Bad or too many ids, a malformed ref, features of another entity, or "
                                           "a missing or mistyped request field."),
                    "503": _error_response("Redis did not answer; retry later."),
                },
                "security": [{"bearer": []}, {}],
            }},
            "/healthz": {"get": {"summary": "Ready when Redis answers",
                                 "responses": {"200": {"description": "ok"},
                                               "503": _error_response("Redis did not answer.")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
                "200": {"description": "Text exposition format 0.0.4", "content": {"text/plain": {}}}}}},
        },
        "components": {
            "schemas": {"FeaturesRequest": request, "ServiceRequest": by_service, "FeaturesResponse": response, "FeatureRow": row, "Error": error},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "Required when FP_SERVING_API_TOKEN is set."}},
        },
    }
