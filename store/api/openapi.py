"""The OpenAPI 3.1 document of /v1, built from the pydantic schemas in protocol.py."""

from __future__ import annotations

from functools import lru_cache

from pydantic.json_schema import models_json_schema

from core.bounds import PAGE_SIZE
from store.api import protocol as p

REF = "#/components/schemas/{model}"

# (method, path, summary, request schema or "multipart", response schema, tag, description)
FILE_BYTES = "file bytes"  # a response that is the uploaded file itself, not JSON

OPERATIONS: list[tuple[str, str, str, object, type | str, str, str]] = [
    ("get", "/v1/models", "List models", None, p.ModelList, "Models",
     "Deployments (by slug), tuned models (ft:…) and catalog base models this key may use."),
    ("get", "/v1/models/{model}", "Retrieve a model", None, p.ModelObject, "Models",
     "One model id; unknown and foreign ids both answer 404."),
    ("post", "/v1/chat/completions", "Create a chat completion", p.ChatCompletionRequest, p.ChatCompletion, "Chat",
     "OpenAI-compatible. With `stream: true` the answer is Server-Sent Events of `chat.completion.chunk` "
     "objects ending with `data: [DONE]`; `stream_options.include_usage` adds a usage chunk. Unsupported "
     "options (tools, response_format, logprobs, n>1, …) answer 400 naming the parameter. A deployment with a "
     "knowledge base answers from it: the response adds `citations` (the passages used) and `grounding` "
     "(how the reply was made and its confidence); a stream carries both on its last chunk."),
    ("post", "/v1/embeddings", "Create embeddings", p.EmbeddingsRequest, p.EmbeddingsResponse, "Embeddings",
     "OpenAI-compatible. `encoding_format` float (lists of numbers) or base64 (little-endian float32, what "
     "the SDKs ask for by default). Models: all-minilm-l6-v2 and your tuned embedding models (or their "
     "deployments). Up to 2048 inputs; an input longer than the model reads is refused, never cut."),
    ("post", "/v1/sentiment", "Score sentiment", p.SentimentRequest, p.SentimentResponse, "Sentiment",
     "GPT Store's own endpoint: label, score and per-label probabilities for each input, from a tuned "
     "sentiment model or its deployment. Up to 256 inputs per request."),
    ("get", "/v1/files", "List files", None, p.FileList, "Files", "Training files of your organization."),
    ("post", "/v1/files", "Upload a file", "multipart", p.FileObject, "Files",
     "multipart/form-data with `file` and `purpose=fine-tune`. The whole file is validated first; an invalid "
     "file answers 400 listing its problems with line numbers and nothing is stored."),
    ("get", "/v1/files/{file_id}", "Retrieve a file", None, p.FileObject, "Files", ""),
    ("delete", "/v1/files/{file_id}", "Delete a file", None, p.DeletedObject, "Files", ""),
    ("get", "/v1/files/{file_id}/content", "Retrieve file content", None, FILE_BYTES, "Files",
     "The file as it was uploaded (`client.files.content(id)`): CSV or JSONL, sent as an attachment."),
    ("post", "/v1/fine_tuning/jobs", "Create a fine-tuning job", p.FineTuningJobCreate, p.FineTuningJob,
     "Fine-tuning", "The task (dialogue or sentiment) is inferred from the training file. Pass GPT Store's "
                    "method and hyperparameters as `tuning` (SDKs: `extra_body={\"tuning\": {...}}`)."),
    ("get", "/v1/fine_tuning/jobs", "List fine-tuning jobs", None, p.FineTuningJobList, "Fine-tuning",
     "Newest first; paginate with `after` and `limit`."),
    ("get", "/v1/fine_tuning/jobs/{fine_tuning_job_id}", "Retrieve a fine-tuning job", None, p.FineTuningJob,
     "Fine-tuning", ""),
    ("post", "/v1/fine_tuning/jobs/{fine_tuning_job_id}/cancel", "Cancel a fine-tuning job", None, p.FineTuningJob,
     "Fine-tuning", ""),
    ("get", "/v1/fine_tuning/jobs/{fine_tuning_job_id}/events", "List job events", None, p.FineTuningJobEventList,
     "Fine-tuning", ""),
    ("get", "/v1/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints", "List job checkpoints", None,
     p.FineTuningJobCheckpointList, "Fine-tuning", ""),
]

ERRORS = {"400": "Bad request (the `param` names the offending field)", "401": "Missing or invalid API key",
          "403": "The API key is restricted to deployments: it may call only their models and inference endpoints",
          "404": "Unknown, or not yours", "409": "The deployment is paused", "413": "Too large",
          "429": "Rate limited (see Retry-After); for fine-tuning jobs, also: too many jobs queued or running",
          "503": "No inference worker answered in time (see Retry-After)"}
INFERENCE = ("/v1/chat/completions", "/v1/embeddings", "/v1/sentiment")


def error_statuses(method: str, path: str) -> list[str]:
    """The error statuses an operation answers, as store/api/auth.py and the views produce them."""
    statuses = ["401", "404", "429"]
    if method != "get" or path.endswith(("jobs", "events", "checkpoints", "files")):
        statuses.append("400")  # a body, or the `after`/`limit` of a list
    if method == "post":
        statuses.append("413")
    if path in INFERENCE:
        statuses += ["409", "503"]
    elif not path.startswith("/v1/models"):
        statuses.append("403")
    return sorted(statuses)


# A stream is a sequence of events whose `data` is a chunk, an error (a failure after the headers were sent), or
# the final `[DONE]`; OpenAPI 3.1 describes each event with `schema`.
STREAM_EVENT = {"type": "object", "required": ["data"], "properties": {"data": {"anyOf": [
    {"const": "[DONE]"},
    {"type": "string", "contentMediaType": "application/json", "contentSchema": {"anyOf": [
        {"$ref": REF.format(model="ChatCompletionChunk")}, {"$ref": REF.format(model="ErrorResponse")}]}}]}}}


@lru_cache(maxsize=1)
def openapi_document() -> dict:
    models: set[type] = {p.ErrorResponse}
    for _method, _path, _summary, request, response, _tag, _desc in OPERATIONS:
        if isinstance(response, type):
            models.add(response)
        if isinstance(request, type):
            models.add(request)
    _, schema = models_json_schema([(model, "validation") for model in sorted(models, key=lambda m: m.__name__)],
                                   ref_template=REF)
    paths: dict = {}
    for method, path, summary, request, response, tag, description in OPERATIONS:
        operation: dict = {
            "summary": summary, "tags": [tag], "description": description,
            "operationId": f"{method}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
            "responses": {"200": {"description": "OK", "content": {"application/json": {
                "schema": {"$ref": REF.format(model=response.__name__)}}} if isinstance(response, type) else {
                media: {"schema": {"type": "string"}} for media in ("text/csv", "application/jsonl")}}},
        }
        if path == "/v1/chat/completions":
            operation["responses"]["200"]["content"]["text/event-stream"] = {"schema": STREAM_EVENT}
        for status in error_statuses(method, path):
            operation["responses"][status] = {"description": ERRORS[status], "content": {"application/json": {
                "schema": {"$ref": REF.format(model="ErrorResponse")}}}}
        parameters = [{"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
                      for part in path.split("/") if part.startswith("{")]
        if method == "get" and path.endswith(("jobs", "events", "checkpoints", "files")):
            parameters += [{"name": "after", "in": "query", "schema": {"type": "string"},
                            "description": "the id of the last object of the previous page"},
                           {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": PAGE_SIZE.low,
                                                                       "maximum": PAGE_SIZE.high}}]
        if method == "get" and path == "/v1/files":
            parameters.append({"name": "purpose", "in": "query", "schema": {"type": "string"},
                               "description": "only files of this purpose"})
        if parameters:
            operation["parameters"] = parameters
        if request == "multipart":
            operation["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file", "purpose"],
                "properties": {"file": {"type": "string", "format": "binary"},
                               "purpose": {"type": "string", "enum": ["fine-tune"]}}}}}}
        elif request is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": REF.format(model=request.__name__)}}}}  # type: ignore[attr-defined]
        paths.setdefault(path, {})[method] = operation
    components = schema.get("$defs", {})
    components.setdefault("ChatCompletionChunk", p.ChatCompletionChunk.model_json_schema(ref_template=REF))
    for name, sub in components["ChatCompletionChunk"].pop("$defs", {}).items():
        components.setdefault(name, sub)
    return {
        "openapi": "3.1.0",
        "info": {"title": "GPT Store API", "version": "1.0.0",
                 "description": "OpenAI-compatible API of GPT Store: point any OpenAI SDK at `<host>/v1`."},
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
    }
