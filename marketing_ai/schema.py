"""The OpenAPI schema's shared parts: the error shape and the error answers every operation can give.

A drf-spectacular post-processing hook adds, to every operation under /api/, the 4xx/5xx answers the
request path really produces (marketing_ai.api's exception handler, RequestGuardMiddleware, the
throttles), all in the one error shape ``{"error": {"code", "message", "fields"}}``:

- 400 bad input (a body, a query parameter, or a NUL/control byte in the path or query); 401 no or a
  bad login; 403 the role may not; 404 an unknown object or id; 500 a server failure;
- operations with a body also 413 (over ``DATA_UPLOAD_MAX_MEMORY_SIZE``) and 415 (not JSON/form);
- writes (POST/PUT/PATCH/DELETE) also 409 (the object's state forbids it) and 429 (rate limit, with
  ``Retry-After``).

It also states what every operation shares: a string in a path or query parameter holds no control
character (the guard answers 400), an empty choice in a query (``?status=``) means "not given", and an
operation with ``?format=csv`` answers ``text/csv`` as well.
"""

from __future__ import annotations

ERROR_COMPONENT = "Error"
ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error answer of the API.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "e.g. invalid, parse_error, not_found, conflict, throttled"},
                "message": {"type": "string", "description": "What went wrong, for a person"},
                "fields": {"type": "object", "additionalProperties": True,
                           "description": "Per field: the reasons (ingestion: rows with index, field, reason)"},
            },
            "required": ["code", "message", "fields"],
        }
    },
    "required": ["error"],
}
REASONS = {
    "400": "Bad input: the reasons per field in error.fields",
    "401": "Not logged in, or a bad token",
    "403": "The account's role may not do this",
    "404": "No such object",
    "409": "The object's state does not allow this",
    "413": "The body is over the size limit",
    "415": "The body is not JSON (or form data)",
    "429": "Rate limit reached; retry after Retry-After seconds",
    "500": "A server failure (logged)",
}
WRITES = {"post", "put", "patch", "delete"}
# What RequestGuardMiddleware lets through in a path or query value (no NUL or other control character).
STORABLE_TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"
CSV_ANSWER = {"schema": {"type": "string", "description": "CSV with a header row (?format=csv)"}}


def _error(status: str) -> dict:
    answer = {"description": REASONS[status],
              "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}}}
    if status == "429":
        answer["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}}
    return answer


def add_error_responses(result: dict, generator, request, public) -> dict:
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete", "head", "options"}:
                continue
            statuses = ["400", "401", "403", "404", "500"]
            if "requestBody" in operation or method in WRITES:
                statuses += ["413", "415"]
            if method in WRITES:
                statuses += ["409", "429"]
            responses = operation.setdefault("responses", {})
            for status in statuses:
                responses.setdefault(status, _error(status))
            csv = False
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                if schema.get("type") == "string" and "pattern" not in schema and "enum" not in schema \
                        and "format" not in schema:
                    schema["pattern"] = STORABLE_TEXT_PATTERN
                if parameter.get("in") == "query" and schema.get("type") == "string" and "enum" in schema \
                        and "" not in schema["enum"]:
                    schema["enum"] = [*schema["enum"], ""]  # an empty choice means "not given" (no filter, the default)
                if parameter.get("name") == "format" and "csv" in schema.get("enum", []):
                    csv = True
            if csv:  # ?format=csv answers the same rows as a CSV attachment
                for status, answer in responses.items():
                    if status.startswith("2") and "content" in answer:
                        answer["content"]["text/csv"] = CSV_ANSWER
    return result
