"""Request and response schemas of the OpenAI-compatible /v1 API (pydantic), in one module.

Requests accept OpenAI's field names. Options we do not implement are rejected with a 400 that
names the parameter (see UNSUPPORTED) — never silently ignored. The OpenAPI document is built
from these classes.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.bounds import BATCH_SIZE, EPOCHS, LEARNING_RATE_MULTIPLIER, MAX_TOKENS, SEED

# --- shared -----------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


# --- models -----------------------------------------------------------------------------------


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    # Extensions: what the id is, and the base model it descends from.
    kind: Literal["deployment", "tuned", "base"]
    task: str
    root: str = Field(description="catalog slug of the base model")
    parent: str | None = Field(None, description="the tuned model a deployment serves, if any")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


# --- chat completions -------------------------------------------------------------------------


# What the document advertises is what the server accepts; the checks themselves stay in completions.py, where
# a refusal names the parameter in words ("Only n=1 is supported.") rather than in pydantic's.
class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = Field(json_schema_extra={"enum": ["text"]})
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str = Field(json_schema_extra={"enum": ["system", "developer", "user", "assistant"]})
    content: str | list[TextPart]  # every message carries text (no tool calls here)
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=MAX_TOKENS.low, le=MAX_TOKENS.high)
    max_completion_tokens: int | None = Field(None, ge=MAX_TOKENS.low, le=MAX_TOKENS.high)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=SEED.low, le=SEED.high)
    n: int | None = Field(None, ge=1, json_schema_extra={"maximum": 1})
    stream: bool = False
    stream_options: StreamOptions | None = None
    # Accepted, and meaningful only as metadata: they do not change the output.
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    logprobs: bool | None = Field(None, json_schema_extra={"enum": [False, None]})


# Parameters of OpenAI's API that we do not implement: a request that sets them gets a 400 naming
# the parameter, so a client never believes an option took effect when it did not.
UNSUPPORTED = {
    "tools": "Tool calling is not supported by GPT Store models.",
    "tool_choice": "Tool calling is not supported by GPT Store models.",
    "functions": "Function calling is not supported by GPT Store models.",
    "function_call": "Function calling is not supported by GPT Store models.",
    "parallel_tool_calls": "Tool calling is not supported by GPT Store models.",
    "response_format": "Structured output (response_format) is not supported; omit it or use {\"type\": \"text\"}.",
    "top_logprobs": "logprobs are not supported.",
    "logit_bias": "logit_bias is not supported.",
    "audio": "Audio output is not supported.",
    "modalities": "Only text output is supported.",
    "prediction": "Predicted outputs are not supported.",
    "reasoning_effort": "These models do not reason; reasoning_effort is not supported.",
    "web_search_options": "Web search is not supported.",
    "service_tier": "Service tiers are not supported.",
    "verbosity": "verbosity is not supported.",
}


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


class EmbeddingObject(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of little-endian float32")


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    data: list[EmbeddingObject]
    usage: Usage


class ChatCompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(BaseModel):
    index: int
    message: ChatCompletionMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class Citation(BaseModel):
    passage_id: int
    source_id: int
    title: str = Field(description="where the passage sits, e.g. 'Shipping › How much does shipping cost?'")
    url: str = Field("", description="the source's link, if it has one")
    confidence: float = Field(description="how sure the bot is that the passage answers the question (0..1; the "
                                          "embedding model's calibrated similarity, 0.5 at its measured cut)")


class RelatedEntry(BaseModel):
    passage_id: int
    title: str = Field(description="where the entry sits, e.g. 'Returns › When will I get my refund?'")
    question: str = Field(description="what to ask to get it: the entry's question or heading")


class Outcome(StrEnum):
    """How a bot reply was made: the codes the API's `grounding.outcome`, the stored messages and every page
    use (knowledge/replies.py decides which)."""

    GENERATED = "generated"  # no knowledge: the model on its own
    QUOTED = "quoted"
    GROUNDED = "grounded"
    REPLACED = "replaced"  # grounded, but a sentence failed the check: the quote answer instead
    DID_NOT_KNOW = "did_not_know"
    # just below the threshold, or a follow-up the entry before may answer: says so, shows that entry, offers a person
    NOT_SURE = "not_sure"
    SMALL_TALK = "small_talk"


# What each outcome means, in the words every page uses: the console's bot replies, the playground's note
# under a reply and the "ask the knowledge base" box all say it from here.
OUTCOME_LABELS: dict[str, str] = {
    Outcome.QUOTED: "Quoted from the knowledge base",
    Outcome.GROUNDED: "Phrased by the model from the passages; every specific checked",
    Outcome.REPLACED: "The model stated what the passages do not hold; replaced by the quoted passage",
    Outcome.DID_NOT_KNOW: "Did not know: the knowledge base does not answer it",
    Outcome.NOT_SURE: "Not sure: showed the closest entry and offered a person",
    Outcome.SMALL_TALK: "Small talk: answered without a lookup",
    Outcome.GENERATED: "The model on its own: no knowledge base",
}


class Grounding(BaseModel):
    outcome: Outcome = Field(
        description="quoted: the reply is the passage; grounded: the model phrased it from the passages; replaced: "
                    "a grounded reply stated something the passages do not hold and the passage was used instead; "
                    "did_not_know: the knowledge base does not answer it; not_sure: just below the threshold (or a "
                    "follow-up that only the entry the conversation is about may answer), the reply says so, quotes "
                    "that entry (in citations) and offers a person; small_talk: a "
                    "greeting or thanks answered without a lookup; generated: no knowledge base")
    confidence: float | None = None
    unsupported: list[str] | None = Field(None, description="what a replaced reply stated without support")
    unstated: str | None = Field(None, description="did_not_know because the question asks for a specific (price, "
                                 "year, time, count, phone number, person) or a choice between options it names "
                                 "(choice) that the passages found do not state")
    retrieval_ms: float | None = Field(None, description="time spent retrieving and checking passages")
    related: list[RelatedEntry] | None = Field(None, description="other entries nearly as close to the question, "
                                               "offered under an answer as questions to ask next (the widget "
                                               "shows them as buttons)")


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None
    # Extensions (the SDKs keep unknown fields): the sources of a deployment's knowledge-based reply.
    citations: list[Citation] = Field(default_factory=list)
    grounding: Grounding | None = None


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    citations: list[Citation] | None = Field(None, description="on the chunk that carries the finish_reason")
    grounding: Grounding | None = None


# --- sentiment (ours) -------------------------------------------------------------------------


class SentimentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    input: str | list[str]


class SentimentResult(BaseModel):
    index: int
    label: str
    score: float
    scores: dict[str, float]


class SentimentResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[SentimentResult]
    model: str
    usage: Usage


# --- files and fine-tuning --------------------------------------------------------------------


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["processed"] = "processed"
    status_details: str | None = None


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    has_more: bool = False


class DeletedObject(BaseModel):
    id: str
    object: str
    deleted: bool


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_epochs: Annotated[int, Field(ge=EPOCHS.low, le=EPOCHS.high)] | Literal["auto"] = "auto"
    batch_size: Annotated[int, Field(ge=BATCH_SIZE.low, le=BATCH_SIZE.high)] | Literal["auto"] = "auto"
    learning_rate_multiplier: Annotated[float, Field(ge=LEARNING_RATE_MULTIPLIER.low,
                                                     le=LEARNING_RATE_MULTIPLIER.high)] | Literal["auto"] = "auto"


class SupervisedMethod(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hyperparameters: Hyperparameters | None = None


class Method(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str
    supervised: SupervisedMethod | None = None


class TuningExtension(BaseModel):
    """GPT Store's own settings, passed with the SDKs' `extra_body={"tuning": {...}}`."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["lora", "adalora", "ia3", "prefix_tuning", "full"] | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)


class FineTuningJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    training_file: str
    validation_file: str | None = None
    suffix: str | None = Field(None, max_length=40)
    seed: int | None = Field(None, ge=SEED.low, le=SEED.high)
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None
    tuning: TuningExtension | None = None
    metadata: dict[str, str] | None = None
    integrations: list[Any] | None = None


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class FineTuningJob(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    finished_at: int | None
    model: str
    fine_tuned_model: str | None
    organization_id: str
    status: str
    hyperparameters: dict[str, Any]
    method: dict[str, Any]
    training_file: str
    validation_file: str | None
    result_files: list[str]
    trained_tokens: int | None
    error: JobError | None
    seed: int
    estimated_finish: int | None
    user_provided_suffix: str | None
    integrations: list[Any] = Field(default_factory=list)
    metadata: dict[str, str] | None = None
    tuning: dict[str, Any] = Field(description="GPT Store extension: method, hyperparameters, progress")


class FineTuningJobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJob]
    has_more: bool


class FineTuningJobEvent(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: str
    message: str
    type: str
    data: dict[str, Any] | None


class FineTuningJobEventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobEvent]
    has_more: bool


class FineTuningJobCheckpoint(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    step_number: int
    metrics: dict[str, Any]


class FineTuningJobCheckpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobCheckpoint]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None
