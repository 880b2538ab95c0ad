from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from store.api_keys import create_api_key
from store.models import Deployment


class Command(BaseCommand):
    help = "Create an API key for an organization; the key is printed once, on the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--name", default="CLI key")
        parser.add_argument("--deployment", action="append", default=[],
                            help="restrict the key to this deployment slug (repeatable)")
        parser.add_argument("--requests-per-minute", type=int)
        parser.add_argument("--tokens-per-minute", type=int)

    def handle(self, *args, **options) -> None:
        organization = Organization.objects.filter(slug=options["org"]).first()
        if organization is None:
            raise CommandError(f"No organization with slug {options['org']!r}.")
        deployments = []
        for slug in options["deployment"]:
            deployment = Deployment.objects.filter(organization=organization, slug=slug).first()
            if deployment is None:
                raise CommandError(f"{organization.slug} has no deployment {slug!r}.")
            deployments.append(deployment)
        key, plaintext = create_api_key(organization, options["name"], deployments,
                                        requests_per_minute=options["requests_per_minute"],
                                        tokens_per_minute=options["tokens_per_minute"])
        scope = ", ".join(d.slug for d in deployments) or "every deployment and model"
        self.stdout.write(f"Created key {key.name!r} ({key.prefix}…) for {organization.name}, allowed: {scope}.")
        self.stdout.write("Store it now: it cannot be shown again.")
        self.stdout.write(plaintext)
