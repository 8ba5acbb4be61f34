from django.core.management.base import BaseCommand, CommandError

from apps.audit.services import audit_chain_verify


class Command(BaseCommand):
    help = "Verify the audit hash chain and name the first broken link."

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        report = audit_chain_verify()
        if report.ok:
            self.stdout.write(self.style.SUCCESS(f"audit chain OK: {report.checked} events verified"))
            return
        raise CommandError(
            f"audit chain BROKEN at event #{report.broken_seq} (id={report.broken_id}): {report.reason}; "
            f"{report.checked} events before it verified"
        )
