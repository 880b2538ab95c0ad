from django.apps import AppConfig


class FinetuneConfig(AppConfig):
    name = "finetune"
    verbose_name = "Fine-tuning"

    def ready(self) -> None:
        # A job's checkpoints are /v1 models; the store resolves model names but cannot import finetune.
        from finetune.checkpoint_models import checkpoint_target
        from store.api.targets import register_lookup

        register_lookup(checkpoint_target)
