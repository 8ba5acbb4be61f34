from django.core.management.base import BaseCommand

from apps.audit.services import SEAL_WAIT_S, audit_seal


class Command(BaseCommand):
    help = "Seal the audit events committed so far into signed batches (run it periodically; audit_verify also does)."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument(
            "--wait", type=float, default=SEAL_WAIT_S, help="seconds to wait for open transactions before sealing"
        )

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        sealed = audit_seal(wait_s=options["wait"])
        self.stdout.write(self.style.SUCCESS(f"sealed {sealed} events"))
