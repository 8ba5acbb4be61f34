"""Settings shared by every environment. Every value comes from the environment (django-environ)."""

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parents[3]
# Data (the SQLite database, media, the filesystem broker) lives outside the checkout, so that nothing a user
# uploads sits in the code tree: $XDG_DATA_HOME/modelcommons, by default ~/.local/share/modelcommons.
_DATA_HOME = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
VAR_DIR = Path(environ.Env().str("MC_VAR_DIR", default=str(_DATA_HOME / "modelcommons")))

env = environ.Env()
# Made private to its owner when created: the database file and every upload are under it.
VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env.str("SECRET_KEY", default="dev-insecure-secret-key-change-me")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "apps.core",
    "apps.accounts",
    "apps.audit",
    "apps.orgs",
    "apps.registry",
    "apps.benchmarks",
    "apps.checklists",
    "apps.leaderboards",
    "apps.reviews",
    "apps.notifications",
    "apps.transfers",
    "apps.hub",
    "apps.moderation",
    "apps.web",
    "apps.demo",
]

MIDDLEWARE = [
    # Outermost: every error under /api/ leaves as problem+json, whoever produced it (DEBUG pages included).
    "apps.core.problems.ApiProblemMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "apps.core.middleware.RequestIdMiddleware",
    "apps.core.middleware.NulRefusalMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A 404 for a transferred variant's old name becomes a 308 to its new one (only ever looks at 404s).
    "apps.registry.redirects.VariantRedirectMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "modelcommons.urls"
WSGI_APPLICATION = "modelcommons.wsgi.application"
AUTH_USER_MODEL = "accounts.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# The embedded default is SQLite in WAL mode; production and CI point DATABASE_URL at PostgreSQL.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'modelcommons.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].update(
        {
            # WAL lets the web process read while a worker writes; IMMEDIATE avoids lock-upgrade deadlocks.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Server-side parameter binding lets psycopg prepare a statement it has run twice on a connection, so the hot
    # reads skip PostgreSQL's parse and plan (half a joined lookup's time; CONN_MAX_AGE keeps the connections, and
    # with them the plans). Turn it off behind a transaction-mode pooler (PgBouncer without max_prepared_statements).
    if env.bool("DB_PREPARED_STATEMENTS", default=True):
        DATABASES["default"].setdefault("OPTIONS", {}).update({"server_side_binding": True, "prepare_threshold": 2})
# Each thread keeps its connection between requests, on SQLite too: there a request opening its own paid for the
# PRAGMAs above and for Django registering its SQL functions, most of a small GET under `make run`.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": env.str("DEFAULT_FILE_STORAGE", default="django.core.files.storage.FileSystemStorage")},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Artifact storage (issue 13): the file system under MEDIA_ROOT by default; MC_STORAGE=s3 stores artifacts in any
# S3-compatible bucket through django-storages (the `s3` extra), configured from the AWS_* variables below. Downloads
# from S3 are answered with a 302 to a presigned URL valid for MC_DOWNLOAD_REDIRECT_TTL_S seconds.
MC_STORAGE = env.str("MC_STORAGE", default="filesystem")
MC_DOWNLOAD_REDIRECT_TTL_S = env.int("MC_DOWNLOAD_REDIRECT_TTL_S", default=300)
if MC_STORAGE == "s3":
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("AWS_STORAGE_BUCKET_NAME"),
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("AWS_S3_REGION_NAME", default="") or None,
            "access_key": env.str("AWS_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("AWS_SECRET_ACCESS_KEY", default="") or None,
            "querystring_auth": True,
            "querystring_expire": MC_DOWNLOAD_REDIRECT_TTL_S,
            "signature_version": env.str("AWS_S3_SIGNATURE_VERSION", default="s3v4"),
            "file_overwrite": True,  # content-addressed: the same name always holds the same bytes
            "default_acl": None,
        },
    }
elif MC_STORAGE != "filesystem":
    raise ImproperlyConfigured(f"MC_STORAGE must be 'filesystem' or 's3', not {MC_STORAGE!r}.")
FIXTURES_DIR = BASE_DIR / "fixtures"

# Uploads: Django keeps at most this much in memory before spooling to a temp file.
FILE_UPLOAD_MAX_MEMORY_SIZE = env.int("FILE_UPLOAD_MAX_MEMORY_SIZE", default=2 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=5 * 1024 * 1024)
# The largest artifact file (resumable uploads, issue 13); a one-shot upload is also capped by MC_UPLOAD_MAX_BYTES,
# which caps every request body that carries file bytes (one multipart upload, or one chunk of a resumable one).
MC_ARTIFACT_MAX_BYTES = env.int("MC_ARTIFACT_MAX_BYTES", default=50 * 1024**3)
MC_UPLOAD_MAX_BYTES = env.int("MC_UPLOAD_MAX_BYTES", default=512 * 1024**2)
# Every multipart body (API with any authentication, web forms, the admin) streams through this one handler:
# hashed on the way to a temporary file, and refused (413) past MC_UPLOAD_MAX_BYTES while it streams.
FILE_UPLOAD_HANDLERS = ["apps.registry.uploads.HashingUploadHandler"]
# JSON request bodies: refused (413) past this size before parsing.
MC_JSON_MAX_BYTES = env.int("MC_JSON_MAX_BYTES", default=1024 * 1024)

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "apps.accounts.permissions.TokenScopePermission",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "apps.core.parsers.JSONParser",
        "apps.core.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "apps.core.filters.StrictFilterBackend",
        "rest_framework.filters.SearchFilter",
        "apps.core.filters.StrictOrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "apps.core.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "apps.core.problems.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "apps.core.schema.AutoSchema",
    # DRF's throttles keyed by the one client address (apps.core.throttling.client_address), counted in the
    # shared default cache below.
    # Anonymous, per-user and per-scope limits (rates below), recorded in one Redis round trip.
    "DEFAULT_THROTTLE_CLASSES": ["apps.core.throttling.ApiRateThrottles"],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("THROTTLE_ANON", default="600/min"),
        "user": env.str("THROTTLE_USER", default="3000/min"),
        "tokens": env.str("THROTTLE_TOKENS", default="60/min"),
        "jobs": env.str("THROTTLE_JOBS", default="600/min"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS: dict[str, Any] = {
    "TITLE": "Model Commons API",
    "DESCRIPTION": "Registry, benchmark jobs, reviews and checklists for open AI model variants.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI assets are vendored by drf-spectacular-sidecar: no CDN, works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.core.schema.add_problem_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "apps.benchmarks.choices.JobStatus",
        "RevisionStatusEnum": "apps.registry.choices.RevisionStatus",
        "NotificationKindEnum": "apps.notifications.choices.NotificationKind",
        "DeliveryStatusEnum": "apps.notifications.choices.DeliveryStatus",
        "FlagKindEnum": "apps.reviews.choices.FlagKind",
        "FlagStatusEnum": "apps.reviews.choices.FlagStatus",
        "FlagActionEnum": "apps.reviews.choices.FlagAction",
        "VerificationStatusEnum": "apps.benchmarks.choices.VerificationStatus",
        "CompatStatusEnum": "apps.registry.choices.CompatStatus",
    },
}

# --- Cache -------------------------------------------------------------------------------------
# Login throttling and the API throttles count in the default cache, so it must be one cache for every process
# (web workers, Celery): CACHE_URL if set; else Redis at REDIS_URL, or at CELERY_BROKER_URL when the broker is
# Redis; else the database cache (table mc_cache, created by the accounts migrations). Never a per-process
# locmem cache. On a Redis shared with the broker the keys carry their own prefix; never call cache.clear()
# there (it is a FLUSHDB of the broker's database).
MC_DB_CACHE_TABLE = "mc_cache"


def _shared_cache() -> dict[str, object]:
    if env.str("CACHE_URL", default=""):
        return env.cache("CACHE_URL")
    redis_url = env.str("REDIS_URL", default="") or env.str("CELERY_BROKER_URL", default="")
    if redis_url.split("://", 1)[0] in ("redis", "rediss"):
        return {
            "BACKEND": "apps.core.cache.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": "mc-cache",
        }
    # Culling keeps at most this many rows; set high so that a flood of entries cannot push counters out.
    return {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": MC_DB_CACHE_TABLE,
        "OPTIONS": {"MAX_ENTRIES": env.int("MC_DB_CACHE_MAX_ENTRIES", default=100_000)},
    }


CACHES = {"default": _shared_cache()}

# --- Celery -----------------------------------------------------------------------------------
# Embedded default: kombu's filesystem transport, so `make run` needs no broker service. Its folder is the broker's
# address: every process on it (a worker with its own MC_VAR_DIR too) must name the same MC_BROKER_DIR.
BROKER_DIR = Path(env.str("MC_BROKER_DIR", default=str(VAR_DIR / "broker")))
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem"):
    for _sub in ("out", "processed", "control"):
        (BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "control_folder": str(BROKER_DIR / "control"),
        "data_folder_in": str(BROKER_DIR / "out"),
        "data_folder_out": str(BROKER_DIR / "out"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "workers.tasks.maintenance.*": {"queue": "default"},
    # Webhook deliveries wait on other people's servers: they have a queue (and, in the Procfile, a worker) of
    # their own, so a slow receiver never holds a slot that benchmark jobs or recovery need.
    "notifications.deliver_webhook": {"queue": "webhooks"},
}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULE = {
    "jobs-recover": {
        "task": "workers.tasks.jobs_recover",
        "schedule": timedelta(seconds=env.int("MC_RECOVER_EVERY_S", default=30)),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Product settings ---------------------------------------------------------------------------
MC_DEFAULT_MAX_ACTIVE_JOBS = env.int("MC_DEFAULT_MAX_ACTIVE_JOBS", default=5)
MC_DEFAULT_DAILY_COMPUTE_SECONDS = env.int("MC_DEFAULT_DAILY_COMPUTE_SECONDS", default=3600)
MC_JOB_HEARTBEAT_S = env.int("MC_JOB_HEARTBEAT_S", default=5)
MC_JOB_STALE_AFTER_S = env.int("MC_JOB_STALE_AFTER_S", default=60)
MC_JOB_UNDELIVERED_AFTER_S = env.int("MC_JOB_UNDELIVERED_AFTER_S", default=60)
MC_RUNNER_MEMORY_MB = env.int("MC_RUNNER_MEMORY_MB", default=4096)
MC_TOKEN_DEFAULT_TTL_DAYS = env.int("MC_TOKEN_DEFAULT_TTL_DAYS", default=90)
MC_TOKEN_MAX_TTL_DAYS = env.int("MC_TOKEN_MAX_TTL_DAYS", default=366)
MC_PUBLISH_MIN_APPROVALS = env.int("MC_PUBLISH_MIN_APPROVALS", default=2)
MC_MIN_CARD_CHARS = env.int("MC_MIN_CARD_CHARS", default=200)
DEMO_PASSWORD = env.str("DEMO_PASSWORD", default="commons-demo")

LOGIN_URL = "/admin/login/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Web pages (apps/web) -----------------------------------------------------------------------
# django-htmx gives views `request.htmx`, so one view serves a full page or just the fragment htmx asked for.
INSTALLED_APPS += ["django_htmx"]
MIDDLEWARE += ["django_htmx.middleware.HtmxMiddleware"]
LOGIN_URL = "web:login"
LOGIN_REDIRECT_URL = "web:dashboard"
LOGOUT_REDIRECT_URL = "web:home"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Model Commons <noreply@modelcommons.local>")

# --- Registry (issue 3) ---------------------------------------------------------------------------
# The maintainers' namespace for original models; maintainers act for it (nobody logs in as it).
MC_COMMONS_USERNAME = env.str("MC_COMMONS_USERNAME", default="commons")
# Organizations (issue 14): an invitation not accepted or declined within this many days expires.
MC_ORG_INVITATION_TTL_DAYS = env.int("MC_ORG_INVITATION_TTL_DAYS", default=14)
# Quotas of an organization's namespace (jobs its members queue on its variants), unless maintainers set its own.
MC_ORG_MAX_QUEUED_JOBS = env.int("MC_ORG_MAX_QUEUED_JOBS", default=20)
MC_ORG_DAILY_COMPUTE_SECONDS = env.int("MC_ORG_DAILY_COMPUTE_SECONDS", default=4 * 3600)
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update(
    {"OrgRoleEnum": "apps.orgs.choices.OrgRole", "InvitationStatusEnum": "apps.orgs.choices.InvitationStatus"}
)
MC_CARD_MAX_CHARS = env.int("MC_CARD_MAX_CHARS", default=200_000)
# Artifacts recorded by URI (not stored here) may be as large as real checkpoints.
MC_ARTIFACT_RECORD_MAX_BYTES = env.int("MC_ARTIFACT_RECORD_MAX_BYTES", default=2 * 1024**4)
# file:// artifact URIs point workers at their own disk: development only.
MC_ARTIFACT_ALLOW_FILE_URIS = env.bool("MC_ARTIFACT_ALLOW_FILE_URIS", default=False)

# --- Benchmark engine (issue 4) -----------------------------------------------------------------------
# Fair-share dispatch keeps at most this many sent-but-unclaimed jobs of sandboxed runners per broker queue
# (about the number of worker slots consuming it): more keeps fast workers busier, fewer keeps the queue fairer.
MC_DISPATCH_BUFFER = env.int("MC_DISPATCH_BUFFER", default=4)
# Jobs of in-process runners (MC_IN_PROCESS_RUNNERS: milliseconds each) have a lane of their own: this many sent
# ahead, up to MC_DISPATCH_CHUNK ids (and half this buffer) per message. A worker claims a chunk in one statement,
# runs its jobs one after the other, and writes their results in bulk at least every MC_RESULT_FLUSH_S (and at the
# chunk's end).
# A message costs about 26 ms of worker CPU whatever its size (the claim, the bulk writes, the job-finished hooks)
# and a no-op job about 2 ms more: at 64 ids the fixed part is a sixth of a chunk's cost, at 32 a third (a worker's
# CPU per job 2.1-2.5 ms against 3.2-3.3 ms, one process, issue 16). A chunk of millisecond jobs still ends within
# a fraction of a second, which bounds how long a newly arrived namespace waits behind the lane.
MC_DISPATCH_QUICK_BUFFER = env.int("MC_DISPATCH_QUICK_BUFFER", default=128)
MC_DISPATCH_CHUNK = env.int("MC_DISPATCH_CHUNK", default=64)
# Nagle's rule for that lane: fewer than a chunk of such jobs waiting are held back while jobs of the lane sent or
# started within this many seconds are in flight, and go together when that work ends (0: send at once). Work in
# flight for longer (a slow chunk, a dead worker, a lost message) holds nothing back.
MC_DISPATCH_HOLD_S = env.float("MC_DISPATCH_HOLD_S", default=0.5)
MC_RESULT_FLUSH_S = env.float("MC_RESULT_FLUSH_S", default=0.25)
MC_DISPATCH_EVERY_S = env.float("MC_DISPATCH_EVERY_S", default=5.0)
# Submissions ask a worker to dispatch after their commit (a message on the default queue), at most twice per
# this many seconds per queue however many arrive (0: once per submission).
MC_DISPATCH_COALESCE_S = env.float("MC_DISPATCH_COALESCE_S", default=0.2)
# Publishing to a down broker fails fast: the job stays in the database and the beat sends it later.
MC_DISPATCH_RETRY_POLICY = {
    "max_retries": env.int("MC_DISPATCH_PUBLISH_RETRIES", default=1),
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
MC_DISPATCH_BROKER_BACKOFF_S = env.float("MC_DISPATCH_BROKER_BACKOFF_S", default=5.0)
# Celery's Django fixup closes every database connection before and after each task unless this is set: a
# new PostgreSQL connection per job costs more than the whole no-op job. Workers keep their connection for
# this many tasks (CONN_MAX_AGE and CONN_HEALTH_CHECKS still apply: run_job checks it first).
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
# A sent message not claimed after this long is sent again whatever the reason (the broker's visibility
# timeout: by then a Redis broker would redeliver it anyway).
MC_JOB_REDISPATCH_MAX_S = env.int("MC_JOB_REDISPATCH_MAX_S", default=3600)
MC_JOB_RETRY_BACKOFF_S = env.float("MC_JOB_RETRY_BACKOFF_S", default=5.0)
MC_JOB_RETRY_BACKOFF_MAX_S = env.float("MC_JOB_RETRY_BACKOFF_MAX_S", default=300.0)
MC_JOB_PROGRESS_MIN_INTERVAL_S = env.float("MC_JOB_PROGRESS_MIN_INTERVAL_S", default=0.5)
# Workers report presence so verification re-runs can be routed to a different worker.
MC_WORKER_PRESENCE_S = env.float("MC_WORKER_PRESENCE_S", default=10.0)
MC_WORKER_STALE_S = env.float("MC_WORKER_STALE_S", default=35.0)
# Runners that load nothing run inside the worker process instead of a sandbox child (no interpreter start).
MC_IN_PROCESS_RUNNERS = env.list("MC_IN_PROCESS_RUNNERS", default=["noop"])
# Wall-clock limits (seconds): every run stops at its benchmark's timeout_s, and never later than this cap; runs
# inside the worker process (MC_IN_PROCESS_RUNNERS) also never later than the second, lower cap.
MC_RUNNER_MAX_WALL_S = env.int("MC_RUNNER_MAX_WALL_S", default=6 * 3600)
MC_IN_PROCESS_MAX_WALL_S = env.int("MC_IN_PROCESS_MAX_WALL_S", default=60)
# Jobs on benchmarks with these runners are for maintainers only (noop: pipeline drills, nothing to evaluate).
MC_MAINTAINER_ONLY_RUNNERS = env.list("MC_MAINTAINER_ONLY_RUNNERS", default=["noop"])
# The runner sandbox (workers/runners/sandbox.py). strict: bubblewrap namespaces (no network, only the runner's
# code and staged inputs visible), and a root worker drops the child to MC_SANDBOX_USER; sandboxed jobs fail
# with sandbox_unavailable where that cannot be set up. weak: no namespaces (an operator's explicit choice).
MC_SANDBOX = env.str("MC_SANDBOX", default="strict")
MC_SANDBOX_USER = env.str("MC_SANDBOX_USER", default="nobody")
# Where private run folders are made (default: the system temporary folder); on the media folder's filesystem,
# artifacts are hard-linked into them instead of copied.
MC_SANDBOX_DIR = env.str("MC_SANDBOX_DIR", default="")
# Further folders a runner child may read (the code of a runner installed outside the virtualenv).
MC_SANDBOX_READONLY_PATHS = env.list("MC_SANDBOX_READONLY_PATHS", default=[])
MC_SANDBOX_MAX_PROCESSES = env.int("MC_SANDBOX_MAX_PROCESSES", default=512)
MC_SANDBOX_MAX_FILE_MB = env.int("MC_SANDBOX_MAX_FILE_MB", default=1024)
# The folders of lm-eval YAML tasks a job's include_path may name (never a folder under MEDIA_ROOT or VAR_DIR).
MC_LMEVAL_TASK_DIRS = env.list("MC_LMEVAL_TASK_DIRS", default=[str(BASE_DIR / "fixtures" / "tinylm" / "tasks")])
# "module.path:Class" as a benchmark's runner: tests and development only.
MC_ALLOW_RUNNER_PATHS = env.bool("MC_ALLOW_RUNNER_PATHS", default=False)
# Adaptive verification (BOINC): always re-run results of sources with fewer consecutive agreements than
# MC_VERIFY_TRUST_AFTER, then less often, down to MC_VERIFY_MIN_RATE.
MC_SPOT_CHECKS = env.bool("MC_SPOT_CHECKS", default=True)
MC_VERIFY_TRUST_AFTER = env.int("MC_VERIFY_TRUST_AFTER", default=3)
MC_VERIFY_MIN_RATE = env.float("MC_VERIFY_MIN_RATE", default=0.05)
MC_VERIFY_MAX_HANDBACKS = env.int("MC_VERIFY_MAX_HANDBACKS", default=5)
MC_IDEMPOTENCY_TTL_S = env.int("MC_IDEMPOTENCY_TTL_S", default=24 * 3600)
CELERY_BEAT_SCHEDULE["jobs-dispatch"] = {
    "task": "workers.tasks.jobs_dispatch",
    "schedule": timedelta(seconds=MC_DISPATCH_EVERY_S),
}

# --- Reviews, notifications, webhooks (issue 5) ------------------------------------------------------------
# Publish automatically (actor: the platform) as soon as the publication gate holds.
MC_AUTO_PUBLISH = env.bool("MC_AUTO_PUBLISH", default=False)
# Assign this many least-loaded reviewers to each submitted revision (0: reviewers self-assign from the queue).
MC_REVIEW_AUTO_ASSIGN = env.int("MC_REVIEW_AUTO_ASSIGN", default=0)
MC_COMMENT_EDIT_WINDOW_S = env.int("MC_COMMENT_EDIT_WINDOW_S", default=15 * 60)
# Absolute links in notification e-mails.
MC_SITE_URL = env.str("MC_SITE_URL", default="http://127.0.0.1:8000")
# Webhook targets on loopback or private networks are refused unless this is on (tests, local development).
MC_WEBHOOKS_ALLOW_PRIVATE = env.bool("MC_WEBHOOKS_ALLOW_PRIVATE", default=False)
MC_WEBHOOKS_PER_USER = env.int("MC_WEBHOOKS_PER_USER", default=20)
# One delivery attempt (DNS, connect, TLS, sending, reading the answer) ends after this many seconds in total,
# however slowly the receiver sends its bytes.
MC_WEBHOOK_TIMEOUT_S = env.float("MC_WEBHOOK_TIMEOUT_S", default=10.0)
# At most this many bytes of a receiver's answer are read (the delivery log keeps its first 2,048 characters).
MC_WEBHOOK_RESPONSE_MAX_BYTES = env.int("MC_WEBHOOK_RESPONSE_MAX_BYTES", default=64 * 1024)
# Pings and redeliveries on request: one per user per this many seconds (429 with Retry-After otherwise).
MC_WEBHOOK_PING_COOLDOWN_S = env.int("MC_WEBHOOK_PING_COOLDOWN_S", default=30)
MC_WEBHOOK_MAX_ATTEMPTS = env.int("MC_WEBHOOK_MAX_ATTEMPTS", default=8)
# Exponential backoff between attempts: base * 2^(attempt-1) seconds, capped (below the broker's visibility
# timeout, so a countdown never outlives a Redis message).
MC_WEBHOOK_RETRY_BASE_S = env.float("MC_WEBHOOK_RETRY_BASE_S", default=10.0)
MC_WEBHOOK_RETRY_MAX_S = env.float("MC_WEBHOOK_RETRY_MAX_S", default=1800.0)
# Open deliveries this overdue are re-dispatched by the beat (their message was lost).
MC_WEBHOOK_RECOVER_GRACE_S = env.int("MC_WEBHOOK_RECOVER_GRACE_S", default=120)
CELERY_BEAT_SCHEDULE["webhooks-recover"] = {
    "task": "notifications.webhooks_recover",
    "schedule": timedelta(seconds=env.int("MC_WEBHOOKS_RECOVER_EVERY_S", default=60)),
}

# --- Checklists (issue 6) ---------------------------------------------------------------------------
# The template new revisions get until a maintainer makes another one the default (fixtures/checklists/).
MC_CHECKLIST_DEFAULT_TEMPLATE_FILE = env.str(
    "MC_CHECKLIST_DEFAULT_TEMPLATE_FILE", default="open-model-practices-v1.json"
)
# The shortest justification an N/A answer, or a met answer on a justification item, may carry.
MC_CHECKLIST_MIN_JUSTIFICATION_CHARS = env.int("MC_CHECKLIST_MIN_JUSTIFICATION_CHARS", default=20)
# How long README image proxies may cache the badge of a published revision.
MC_CHECKLIST_BADGE_MAX_AGE_S = env.int("MC_CHECKLIST_BADGE_MAX_AGE_S", default=300)
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update(
    {
        "ChecklistItemStatusEnum": "apps.checklists.choices.ItemStatus",
        "ChecklistLevelEnum": "apps.checklists.choices.Level",
        "ChecklistLevelReachedEnum": "apps.checklists.choices.LEVEL_REACHED_CHOICES",
        "ChecklistItemKindEnum": "apps.checklists.choices.Kind",
        "ChecklistEvidenceEnum": "apps.checklists.choices.Evidence",
        "ChecklistAnswerSourceEnum": "apps.checklists.choices.ANSWER_SOURCES",
        "MofClassEnum": "apps.checklists.choices.MofClass",
        "MofClassStatusEnum": "apps.checklists.choices.MofClassStatus",
        "MofComponentEnum": "apps.checklists.choices.MofComponent",
        "MofContentTypeEnum": "apps.checklists.choices.ContentType",
    }
)

# --- Models out: downloads and resumable uploads (issue 13) -------------------------------------------------
# Partial files of resumable uploads. Every web process must see the same folder (one host, or a shared volume);
# on the file-system storage, keep it on the same file system as MEDIA_ROOT so completion is a rename.
MC_UPLOAD_TEMP_DIR = Path(env.str("MC_UPLOAD_TEMP_DIR", default=str(VAR_DIR / "uploads")))
# An upload session expires this long after its last chunk; the beat then removes its partial file.
MC_UPLOAD_SESSION_TTL_S = env.int("MC_UPLOAD_SESSION_TTL_S", default=24 * 3600)
CELERY_BEAT_SCHEDULE["uploads-expire"] = {
    "task": "transfers.uploads_expire",
    "schedule": timedelta(seconds=env.int("MC_UPLOADS_EXPIRE_EVERY_S", default=900)),
}
# Download counts are kept in Redis (HINCRBY, no database write per download) and written to Variant.downloads
# in bulk by the beat every MC_DOWNLOADS_FLUSH_S. Without Redis each web process keeps its own counts and writes
# them in one statement at most every MC_DOWNLOADS_FLUSH_S (counts of a process that stops meanwhile are lost).
MC_DOWNLOADS_REDIS_URL = env.str(
    "MC_DOWNLOADS_REDIS_URL",
    default=CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else "",
)
MC_DOWNLOADS_KEY = env.str("MC_DOWNLOADS_KEY", default="mc:downloads")
MC_DOWNLOADS_FLUSH_S = env.int("MC_DOWNLOADS_FLUSH_S", default=60)
# The audit log (apps.audit.services): events are written without a lock and sealed in order into signed batches.
# The key signs events and seals; it must outlive the log (set it to the current SECRET_KEY before rotating that).
MC_AUDIT_KEY = env.str("MC_AUDIT_KEY", default="")
# A committing write seals at most this often per process (0: only the beat, audit_seal and audit_verify seal).
MC_AUDIT_SEAL_EVERY_S = env.float("MC_AUDIT_SEAL_EVERY_S", default=5.0)
CELERY_BEAT_SCHEDULE["audit-seal"] = {
    "task": "audit.seal",
    "schedule": timedelta(seconds=env.int("MC_AUDIT_SEAL_BEAT_S", default=30)),
}
CELERY_BEAT_SCHEDULE["downloads-flush"] = {
    "task": "transfers.downloads_flush",
    "schedule": timedelta(seconds=MC_DOWNLOADS_FLUSH_S),
}

# --- Workers need no shared disk (issue 13 part 5) ------------------------------------------------------------
# How a worker gets a job's files (workers/execution.py, workers/staging.py):
#   auto  (default) in place from MEDIA_ROOT when MC_STORAGE=filesystem and the file is there (one machine, or a
#         shared volume); from the bucket when MC_STORAGE=s3; otherwise over HTTP from MC_PLATFORM_URL;
#   local only in place (today's shared-disk fast path; a missing file fails the job as artifact_unavailable);
#   http  always from the platform's internal endpoint (GET /api/v1/internal/blobs/<sha256>/);
#   s3    always straight from the bucket (MC_STORAGE=s3 and its AWS_* settings, read-only credentials suffice).
# http and s3 copy each file into the worker's cache, verify its sha256 and keep it for the next job.
MC_WORKER_STAGING = env.str("MC_WORKER_STAGING", default="auto")
if MC_WORKER_STAGING not in ("auto", "local", "http", "s3"):
    raise ImproperlyConfigured(f"MC_WORKER_STAGING must be auto, local, http or s3, not {MC_WORKER_STAGING!r}.")
# The platform as the workers reach it (an internal address may differ from the public MC_SITE_URL).
MC_PLATFORM_URL = env.str("MC_PLATFORM_URL", default=MC_SITE_URL)
# The worker's content-addressed cache (blobs/sha256/aa/bb/<sha256>), local to each worker machine, and its size
# cap: least recently used files are evicted past it (never a file a running job uses).
MC_WORKER_CACHE_DIR = Path(env.str("MC_WORKER_CACHE_DIR", default=str(VAR_DIR / "worker-cache")))
MC_WORKER_CACHE_MAX_MB = env.int("MC_WORKER_CACHE_MAX_MB", default=20 * 1024)
# Workers sign their blob tokens with this secret (HMAC through django.core.signing, a salt of its own); the web
# tier checks them with it. Empty: SECRET_KEY, which every worker already has. A token opens one blob for
# MC_WORKER_TOKEN_TTL_S seconds (checked when the request starts: a long download is not cut off).
MC_WORKER_SECRET = env.str("MC_WORKER_SECRET", default="")
MC_WORKER_TOKEN_TTL_S = env.int("MC_WORKER_TOKEN_TTL_S", default=300)
# Seconds a fetch waits for the platform or the bucket to answer (each read, not the whole transfer).
MC_WORKER_FETCH_TIMEOUT_S = env.float("MC_WORKER_FETCH_TIMEOUT_S", default=60.0)

# --- Login throttling (issue 12) ------------------------------------------------------------------------
# How many reverse proxies in front of the application server append to X-Forwarded-For: the client is the
# address the outermost of them saw. 0 (nothing in front): X-Forwarded-For is ignored, REMOTE_ADDR is the client.
MC_TRUSTED_PROXIES = env.int("MC_TRUSTED_PROXIES", default=0)
REST_FRAMEWORK["NUM_PROXIES"] = MC_TRUSTED_PROXIES
# Password logins (HTTP Basic, web and admin login) go through this backend: the failure that brings an account
# (the username tried) to MC_LOGIN_FAILURES_PER_ACCOUNT failures, or a client address (IPv6: its /64) to
# MC_LOGIN_FAILURES_PER_ADDRESS, within MC_LOGIN_WINDOW_S seconds locks it for MC_LOGIN_LOCKOUT_S seconds:
# 429 with Retry-After, the password not even checked. A successful login clears its account's count only.
AUTHENTICATION_BACKENDS = ["apps.accounts.backends.LimitedModelBackend"]
MC_LOGIN_FAILURES_PER_ACCOUNT = env.int("MC_LOGIN_FAILURES_PER_ACCOUNT", default=10)
MC_LOGIN_FAILURES_PER_ADDRESS = env.int("MC_LOGIN_FAILURES_PER_ADDRESS", default=50)
MC_LOGIN_WINDOW_S = env.int("MC_LOGIN_WINDOW_S", default=15 * 60)
MC_LOGIN_LOCKOUT_S = env.int("MC_LOGIN_LOCKOUT_S", default=15 * 60)
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["UploadStatusEnum"] = "apps.transfers.choices.UploadStatus"
