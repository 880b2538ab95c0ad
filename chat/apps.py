from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Customer chat"

    def ready(self) -> None:
        from chat.models import Widget
        from chat.pipeline import forget_widget_rules
        from store.models import Deployment

        # A widget's rules name a sentiment deployment: edits to either apply to the next message.
        for model in (Widget, Deployment):
            post_save.connect(forget_widget_rules, sender=model, dispatch_uid=f"chat-rules-{model.__name__}")
            post_delete.connect(forget_widget_rules, sender=model, dispatch_uid=f"chat-rules-del-{model.__name__}")
