"""`manage.py runstack`: the whole site on one machine, one command.

Prepares the database and catalog, starts an embedded redis-server unless REDIS_URL is set,
then runs every Procfile process (Daphne, the training and inference workers, beat) under
core.supervisor: a process that crashes is restarted (with backoff, a few times a minute at most)
while the rest of the site keeps serving. Ctrl-C stops them all, then Redis.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from honcho.environ import parse_procfile

from core.embedded_redis import EmbeddedRedis
from core.env import envbool
from core.supervisor import Supervisor
from stack.demo import ensure_demo_organization, ensure_demo_sentiment, ensure_demo_widget
from store.models import Deployment


class Command(BaseCommand):
    help = "Run the whole GPT Store stack (web, workers, beat, embedded Redis) in the foreground."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
        parser.add_argument("--bind", default=os.environ.get("BIND", "127.0.0.1"))
        parser.add_argument("--procfile", default=str(Path(settings.BASE_DIR) / "Procfile"))
        parser.add_argument("--skip-prepare", action="store_true", help="do not migrate or sync the catalog")
        parser.add_argument("--demo-port", type=int, default=int(os.environ.get("DEMO_PORT", 8001)),
                            help="port of the Acme Shoes demo shop (another origin, with the widget)")
        parser.add_argument("--no-demo", action="store_true", default=not envbool("GPT_STORE_DEMO", True),
                            help="skip the demo models, widget and shop (GPT_STORE_DEMO=0)")

    def handle(self, *args, port: int, bind: str, procfile: str, skip_prepare: bool, demo_port: int,
               no_demo: bool, **options) -> None:
        if not skip_prepare:
            self.stdout.write("Preparing the database and the model catalog…")
            call_command("migrate", interactive=False, verbosity=0)
            call_command("sync_catalog", verbosity=0, stdout=self.stdout)
        demo = ensure_demo_organization()

        # The Procfile names `daphne` and `celery`: find them next to this interpreter even when
        # the virtualenv is not activated (`make run` calls .venv/bin/python directly).
        bin_dir = str(Path(sys.executable).parent)
        path = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
        env = dict(os.environ, PATH=path, PORT=str(port), BIND=bind, GPT_STORE_DATA_DIR=str(settings.DATA_DIR),
                   PYTHONUNBUFFERED="1", HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"),
                   TRANSFORMERS_OFFLINE=os.environ.get("TRANSFORMERS_OFFLINE", "1"))
        redis = None
        if not os.environ.get("REDIS_URL"):
            redis = EmbeddedRedis(settings.EMBEDDED_REDIS_SOCKET, log_path=Path(settings.DATA_DIR) / "redis.log")
            env["REDIS_URL"] = redis.start()
            self.stdout.write(f"Embedded redis-server on {redis.socket_path}")

        site = f"http://{'127.0.0.1' if bind in ('0.0.0.0', '::') else bind}:{port}"  # noqa: S104
        # Without the web server there is no site: if it keeps crashing, stop everything.
        manager = Supervisor(essential={"web"})
        processes = parse_procfile(Path(procfile).read_text()).processes
        for name, command in processes.items():
            manager.add_process(name, command, env=env, cwd=str(settings.BASE_DIR))
        demo_job = None
        if not no_demo:
            # The bot, its widget and the sentiment job exist before the workers start: the training
            # worker picks the job up as soon as it is ready.
            ensure_demo_widget(demo.organization, [f"http://localhost:{demo_port}", f"http://127.0.0.1:{demo_port}"])
            demo_job = ensure_demo_sentiment(demo.organization)
            manager.add_process("demo-shop", f"{sys.executable} manage.py serve_demo_shop --port {demo_port} "
                                f"--site-url {site}", env=env, cwd=str(settings.BASE_DIR))

        threading.Thread(target=self._announce_when_up, args=(site, demo, None if no_demo else demo_port, demo_job),
                         daemon=True).start()
        try:
            returncode = manager.loop()
        finally:
            if redis is not None:
                redis.stop()
                self.stdout.write("Embedded redis-server stopped.")
        sys.exit(returncode)

    def _announce_when_up(self, site: str, demo, demo_port: int | None, demo_job) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{site}/healthz", timeout=2) as response:  # noqa: S310 - our own URL
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        banner = [
            "",
            "=" * 72,
            f"  GPT Store is running at {site}/",
            f"  Demo organization: {demo.organization.name}",
            f"    admin  {demo.admin_email}  password: {demo.admin_password}",
            f"    agent  {demo.agent_email}  password: {demo.agent_password}",
            f"  Django admin: {site}/admin/   API: {site}/v1/   Agent console: {site}/console/",
            *([f"  Demo shop (chat as a customer): http://localhost:{demo_port}/"] if demo_port else []),
            "  Press Ctrl-C to stop everything.",
            "=" * 72,
            "",
        ]
        self.stdout.write("\n".join(banner))
        self.stdout.flush()
        if demo_port is not None:
            self._follow_demo_knowledge(demo.organization)
        if demo_job is not None and not isinstance(demo_job, Deployment):
            self._follow_demo_training(demo_job.pk, demo.organization)

    def _follow_demo_knowledge(self, organization) -> None:
        """Say when the demo bot's knowledge base is embedded (an inference worker does it on first start)."""
        from knowledge import sources
        from knowledge.models import KnowledgeBase
        from stack.demo import DEMO_KNOWLEDGE

        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            knowledge_base = KnowledgeBase.objects.filter(organization=organization, name=DEMO_KNOWLEDGE).first()
            if knowledge_base is None:
                return
            if not sources.pending_versions(knowledge_base).exists():
                count = sources.live_passages(knowledge_base).count()
                self.stdout.write(f"Acme's help centre is live ({count} passages): the demo bot answers from it, "
                                  "with its sources, and says so when it does not know.")
                self.stdout.flush()
                return
            time.sleep(1)

    def _follow_demo_training(self, job_id: int, organization) -> None:
        """Print the demo sentiment model's training progress, then deploy it."""
        from finetune.models import ACTIVE_STATUSES, FineTuneJob, JobStatus

        self.stdout.write("Training the demo sentiment model (all-MiniLM-L6-v2 on acme-support-sentiment)…")
        last = ""
        while True:
            job = FineTuneJob.objects.get(pk=job_id)
            if job.status not in ACTIVE_STATUSES:
                break
            line = (f"  demo sentiment model: {job.status}, step {job.current_step}/{job.total_steps or '?'}"
                    + (f", ETA {job.eta_seconds:.0f} s" if job.eta_seconds else ""))
            if line != last:
                self.stdout.write(line)
                self.stdout.flush()
                last = line
            time.sleep(5)
        if job.status == JobStatus.SUCCEEDED:
            ensure_demo_sentiment(organization)
            f1 = (job.metrics.get("tuned") or {}).get("macro_f1")
            self.stdout.write(f"Demo sentiment model deployed as acme-sentiment (test macro-F1 {f1:.3f}): every "
                              "customer message in the demo shop is now scored." if f1 is not None else
                              "Demo sentiment model deployed as acme-sentiment.")
        else:
            self.stdout.write(f"The demo sentiment model {job.status}: {job.error_message or 'see the Fine-tune page'}")
        self.stdout.flush()
