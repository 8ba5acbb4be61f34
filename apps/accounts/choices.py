from django.db import models


class Role(models.TextChoices):
    REVIEWER = "reviewer", "Reviewer"
    MAINTAINER = "maintainer", "Maintainer"


ROLE_GROUPS = {Role.REVIEWER: "reviewers", Role.MAINTAINER: "maintainers"}


class TokenScope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Write"
    JOBS = "jobs", "Submit and manage jobs"
    REVIEW = "review", "Review"
    ADMIN = "admin", "Maintainer actions"


DEFAULT_TOKEN_SCOPES = ["read", "write", "jobs"]
