"""Each organization gets its namespace account (a User row with `is_organization`, inactive, no usable
password), which owns the organization's variants. The `commons` user, which owned the commons variants, becomes
the commons organization's account: its variants are the organization's from here on."""

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import migrations, models
from django.db.models import deletion


def link_accounts(apps, schema_editor):
    Organization = apps.get_model("orgs", "Organization")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    for org in Organization.objects.filter(account__isnull=True):
        account = User.objects.filter(username__iexact=org.name).first()
        if account is None:
            account = User(username=org.name)
        account.is_organization = True
        account.is_active = False
        account.password = make_password(None)
        account.save()
        org.account = account
        org.save(update_fields=["account"])


def unlink_accounts(apps, schema_editor):
    Organization = apps.get_model("orgs", "Organization")
    Organization.objects.update(account=None)


class Migration(migrations.Migration):
    dependencies = [
        ("orgs", "0002_commons_org"),
        ("accounts", "0004_user_is_organization"),
    ]

    operations = [
        migrations.AddField(
            model_name="organization",
            name="account",
            field=models.OneToOneField(
                editable=False,
                null=True,
                on_delete=deletion.PROTECT,
                related_name="organization",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="organization",
            name="daily_compute_seconds",
            field=models.PositiveIntegerField(
                blank=True, help_text="Compute seconds per rolling day; empty: the platform default.", null=True
            ),
        ),
        migrations.RunPython(link_accounts, unlink_accounts),
    ]
