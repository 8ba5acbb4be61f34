"""The one copy of the conditional-request rules (RFC 9110 §13.1): strong If-Match, weak If-None-Match."""

import pytest
from django.test import RequestFactory

from apps.core.conditional import (
    check_if_match,
    etag_for,
    etag_for_body,
    if_match_passes,
    if_none_match_hits,
    not_modified,
)
from apps.core.errors import PreconditionFailed

TAG = etag_for("variant:1:2026-12-03T08:00:00")


def test_etags_are_strong_quoted_and_change_with_the_stamp():
    assert TAG.startswith('"') and TAG.endswith('"') and len(TAG) == 34
    assert etag_for("variant:1:later") != TAG
    assert etag_for_body({"a": 1, "b": [2]}) == etag_for_body({"b": [2], "a": 1})
    assert etag_for(b"<svg/>") == etag_for("<svg/>")


def test_if_match_compares_strongly():
    assert if_match_passes(TAG, TAG)
    assert if_match_passes(f'"other", {TAG}', TAG)
    # §13.1.1: a weak tag never matches If-Match, even with the same opaque part.
    assert not if_match_passes(f"W/{TAG}", TAG)
    assert not if_match_passes('"stale"', TAG)


def test_if_match_star_matches_any_current_version():
    assert if_match_passes("*", TAG)
    assert if_match_passes(" * ", etag_for("anything"))


@pytest.mark.parametrize("header", ["", "unquoted", TAG[1:-1], f"{TAG[:-1]}", ","])
def test_a_malformed_if_match_lists_no_tag_and_never_matches(header):
    assert not if_match_passes(header, TAG)


def test_if_none_match_compares_weakly():
    assert if_none_match_hits(TAG, TAG)
    assert if_none_match_hits(f"W/{TAG}", TAG)
    assert if_none_match_hits("*", TAG)
    assert not if_none_match_hits('"stale"', TAG)


def test_not_modified_reads_the_request_header():
    rf = RequestFactory()
    assert not_modified(rf.get("/", HTTP_IF_NONE_MATCH=TAG), TAG)
    assert not not_modified(rf.get("/"), TAG)
    assert not not_modified(rf.get("/", HTTP_IF_NONE_MATCH='"old"'), TAG)


def test_check_if_match_raises_412_with_the_current_etag():
    check_if_match(None, TAG, what="x")  # no header, no condition
    check_if_match(TAG, TAG, what="x")
    with pytest.raises(PreconditionFailed) as exc:
        check_if_match(f"W/{TAG}", TAG, what="alice/model")
    assert exc.value.status == 412
    assert exc.value.extra == {"etag": TAG}
    assert exc.value.detail.startswith("alice/model changed since you read it")
