from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_cache_table")]

    operations = [
        migrations.AddField(
            model_name="user",
            name="is_organization",
            field=models.BooleanField(default=False, editable=False),
        ),
    ]
