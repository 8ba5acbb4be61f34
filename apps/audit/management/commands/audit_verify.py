from django.core.management.base import BaseCommand, CommandError

from apps.audit.services import SEAL_WAIT_S, audit_chain_verify


class Command(BaseCommand):
    help = "Seal what can be sealed, then verify the audit log (seals, events, order) and name the first broken link."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--no-seal", action="store_true", help="verify only; do not seal pending events first")
        parser.add_argument(
            "--wait", type=float, default=SEAL_WAIT_S, help="seconds to wait for open transactions before sealing"
        )

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        report = audit_chain_verify(seal=not options["no_seal"], wait_s=options["wait"])
        if report.ok:
            self.stdout.write(
                self.style.SUCCESS(
                    f"audit log OK: {report.checked} events verified "
                    f"({report.sealed} sealed in {report.seals} seals, {report.checked - report.sealed} not yet)"
                )
            )
            return
        raise CommandError(
            f"audit log BROKEN at event #{report.broken_seq} (id={report.broken_id}): {report.reason}; "
            f"{report.checked} events before it verified"
        )
