"""The table of the database cache (`mc_cache`), the shared cache when no Redis is configured: login throttling and
the API throttles keep their counters there, so every process sees the same counts (issue 12, finding 4).

`createcachetable` also creates the table of any other database cache named in CACHES at migration time, and it
does nothing for a table that exists (`make migrate` runs it again for caches configured later)."""

from django.core.management import call_command
from django.db import migrations

TABLE = "mc_cache"


def create_cache_tables(apps, schema_editor):
    alias = schema_editor.connection.alias
    call_command("createcachetable", TABLE, database=alias, verbosity=0)
    call_command("createcachetable", database=alias, verbosity=0)


def drop_cache_table(apps, schema_editor):
    schema_editor.execute(f"DROP TABLE IF EXISTS {schema_editor.quote_name(TABLE)}")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_role_groups")]
    operations = [migrations.RunPython(create_cache_tables, drop_cache_table)]
