"""`commons` becomes a real organization whose admins are the maintainers (issue 14).

From here on the accounts app's ROLES_CHANGED_HOOKS keep it in step (apps.orgs.services.commons_sync_member).
The platform's own change: no actor, and no audit event (the audit chain is written by the services only)."""

from django.conf import settings
from django.db import migrations
from django.db.models import Q

DISPLAY_NAME = "Model Commons"
DESCRIPTION = "The maintainers' organization: original open models, registered for the community."


def create_commons(apps, schema_editor):
    Organization = apps.get_model("orgs", "Organization")
    Membership = apps.get_model("orgs", "Membership")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    name = settings.MC_COMMONS_USERNAME
    org = Organization.objects.filter(name__iexact=name).first()
    if org is None:
        org = Organization.objects.create(name=name, display_name=DISPLAY_NAME, description=DESCRIPTION)
    maintainers = User.objects.filter(Q(groups__name="maintainers") | Q(is_superuser=True), is_active=True).distinct()
    for user in maintainers:
        Membership.objects.update_or_create(org=org, user=user, defaults={"role": "admin"})


def remove_commons(apps, schema_editor):
    Organization = apps.get_model("orgs", "Organization")
    Organization.objects.filter(name__iexact=settings.MC_COMMONS_USERNAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("orgs", "0001_initial"),
        ("accounts", "0002_role_groups"),
    ]

    operations = [migrations.RunPython(create_commons, remove_commons)]
