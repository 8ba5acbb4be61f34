from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from apps.demo.seed import DEMO_ACCOUNTS, seed_demo


class Command(BaseCommand):
    help = (
        "Create the demo accounts, the demo variants and every benchmark whose runner is installed, with their "
        "local models, and queue the demo jobs (idempotent: a second run finds the same rows and jobs)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-runs",
            action="store_true",
            help="only the digits benchmark and the registry demo: no other benchmarks, models or jobs",
        )
        parser.add_argument("--no-jobs", action="store_true", help="register benchmarks and models, queue no job")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        password = settings.DEMO_PASSWORD
        runs = not options["no_runs"]
        summary = seed_demo(password, runs=runs, queue_jobs=runs and not options["no_jobs"])
        self.stdout.write(
            self.style.SUCCESS(
                f"demo ready: {summary['variants']} variants, benchmarks: {', '.join(summary['benchmarks'])}"
            )
        )
        for slug, why in sorted(summary["skipped"].items()):
            self.stdout.write(f"  not in this demo: {slug}: {why}")
        if summary["jobs"]:
            self.stdout.write(f"demo jobs ({summary['new_jobs']} new; the worker runs them, see /api/v1/jobs/):")
            for job in summary["jobs"]:
                self.stdout.write(
                    f"  job {job.pk:<5} {job.benchmark.slug:<18} {job.revision.variant.full_name:<28} {job.status}"
                )
        self.stdout.write("demo accounts (password from DEMO_PASSWORD):")
        for username, roles in DEMO_ACCOUNTS:
            self.stdout.write(f"  {username:<11} {', '.join(roles) or 'contributor'}  password: {password}")
        self.stdout.write(
            f"demo organizations: {', '.join(summary['orgs'])} (see /api/v1/orgs/; reviewer1 has an invitation)"
        )
