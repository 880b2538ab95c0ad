from django.apps import AppConfig


class MarketConfig(AppConfig):
    name = "market"
    verbose_name = "Marketplace"

    def ready(self) -> None:
        from market import installs
        from store import deploy

        # An organization may deploy every version of the listings it installed (pinned versions keep
        # working after the publisher unpublishes): the store asks this before serving a foreign model.
        deploy.register_model_grant("market", installs.granted_tuned_ids)
