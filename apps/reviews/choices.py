"""Review decisions, flag kinds, and the flag state machine."""

from django.db import models


class ReviewDecision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REQUEST_CHANGES = "request_changes", "Request changes"
    COMMENT = "comment", "Comment"


# Decisions that set a reviewer's standing on a revision; a plain comment leaves the standing as it was.
STANDING_DECISIONS = (ReviewDecision.APPROVE, ReviewDecision.REQUEST_CHANGES)


class FlagKind(models.TextChoices):
    LICENSE_VIOLATION = "license_violation", "License violation"
    BENCHMARK_CONTAMINATION = "benchmark_contamination", "Benchmark contamination"
    MISLEADING_CARD = "misleading_card", "Misleading card"
    SAFETY = "safety", "Safety"
    SPAM = "spam", "Spam"
    OTHER = "other", "Other"


class FlagStatus(models.TextChoices):
    OPEN = "open", "Open"
    AWAITING_AUTHOR = "awaiting_author", "Waiting for the author"
    DISMISSED = "dismissed", "Dismissed"
    UPHELD = "upheld", "Upheld (confirmed)"


class FlagAction(models.TextChoices):
    DISMISS = "dismiss", "Dismiss"
    CONFIRM = "confirm", "Confirm (keep published)"
    UNPUBLISH = "unpublish", "Confirm and unpublish"
    ASK_AUTHOR = "ask_author", "Ask the author"


F = FlagStatus
# A decision can be reversed: an upheld flag can be dismissed later and the other way round.
FLAG_TRANSITIONS: dict[str, tuple[str, ...]] = {
    F.OPEN: (F.AWAITING_AUTHOR, F.DISMISSED, F.UPHELD),
    F.AWAITING_AUTHOR: (F.OPEN, F.DISMISSED, F.UPHELD),
    F.DISMISSED: (F.UPHELD,),
    F.UPHELD: (F.DISMISSED,),
}
ACTION_TARGET = {
    FlagAction.DISMISS: F.DISMISSED,
    FlagAction.CONFIRM: F.UPHELD,
    FlagAction.UNPUBLISH: F.UPHELD,
    FlagAction.ASK_AUTHOR: F.AWAITING_AUTHOR,
}
OPEN_FLAG_STATUSES = (F.OPEN, F.AWAITING_AUTHOR)
# Revision states in which reviewers may post reviews.
REVIEWABLE_STATUSES = ("submitted", "changes_requested", "approved")
