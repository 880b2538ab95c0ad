"""The OpenAPI document and a human page generated from it (no external assets)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from store.api.openapi import openapi_document


def _fields(schema: dict, components: dict) -> list[dict]:
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    required = set(schema.get("required", []))
    rows = []
    for name, spec in schema.get("properties", {}).items():
        kind = spec.get("type") or " | ".join(
            option.get("type", option.get("$ref", "").rsplit("/", 1)[-1]) for option in spec.get("anyOf", []))
        if not kind and "$ref" in spec:
            kind = spec["$ref"].rsplit("/", 1)[-1]
        rows.append({"name": name, "type": kind or "object", "required": name in required,
                     "description": spec.get("description", "")})
    return rows


@require_GET
def openapi_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(openapi_document(), json_dumps_params={"indent": 2})


@require_GET
def api_docs(request: HttpRequest) -> HttpResponse:
    document = openapi_document()
    components = document["components"]["schemas"]
    operations = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            body = operation.get("requestBody", {}).get("content", {})
            request_schema = body.get("application/json", {}).get("schema")
            # A JSON object, or (file content) the uploaded file itself.
            response_schema = operation["responses"]["200"]["content"].get("application/json", {}).get("schema")
            operations.append({
                "method": method.upper(), "path": path, "summary": operation["summary"], "tag": operation["tags"][0],
                "description": operation.get("description", ""), "anchor": operation["operationId"],
                "request_fields": _fields(request_schema, components) if request_schema else [],
                "multipart": "multipart/form-data" in body,
                "response_name": response_schema["$ref"].rsplit("/", 1)[-1] if response_schema else "the file's bytes",
                "response_fields": _fields(response_schema, components) if response_schema else [],
            })
    return render(request, "store/api_docs.html", {"operations": operations,
                                                   "base_url": request.build_absolute_uri("/v1")})
