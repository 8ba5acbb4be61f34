from apps.registry.choices import ArtifactFormat
from workers.runners.formats import EXTENSION_FORMATS, SAFE_FORMATS, UNSAFE_FORMATS


def test_every_format_the_rules_know_can_be_declared_on_an_artifact():
    known = SAFE_FORMATS | UNSAFE_FORMATS | set(EXTENSION_FORMATS.values())
    assert known <= set(ArtifactFormat.values)
