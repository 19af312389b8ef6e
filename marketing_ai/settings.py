"""Settings, read from the environment (12-factor).

Development defaults are safe and need no service: SQLite in the project folder and
Celery running tasks eagerly. With DEBUG off, a missing SECRET_KEY or ALLOWED_HOSTS
stops start-up with a message naming the variable.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
DEBUG: bool = env.bool("DEBUG", default=True)


def _required_in_production(name: str, dev_default):
    value = env(name, default=None)
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(f"{name} must be set when DEBUG is off (production).")


SECRET_KEY: str = _required_in_production("SECRET_KEY", "dev-only-insecure-key-do-not-use-in-production")
ALLOWED_HOSTS: list[str] = [
    h.strip() for h in _required_in_production("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h.strip()
]
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "csp",
    "axes",
    "django_celery_beat",
    "marketing_ai",
    "campaigns",
    "analytics",
    "abtests",
    "optimizer",
]

MIDDLEWARE = [
    "marketing_ai.middleware.ApiErrorShapeMiddleware",  # outermost: shapes 4xx from any middleware below
    "django.middleware.security.SecurityMiddleware",
    "marketing_ai.middleware.RequestGuardMiddleware",  # NUL/control bytes in paths and queries, 413, API errors on pages
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "marketing_ai.middleware.PageRoleMiddleware",  # pages check the API's roles
    "marketing_ai.middleware.PageThrottleMiddleware",  # page form writes: the API's write rate limits
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "marketing_ai.middleware.ApiNotFoundMiddleware",
    "marketing_ai.outages.DatabaseUnavailableMiddleware",  # a lost database connection: 503, not 500
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out login into its 429 page
]

ROOT_URLCONF = "marketing_ai.urls"
WSGI_APPLICATION = "marketing_ai.wsgi.application"
ASGI_APPLICATION = "marketing_ai.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the demo server read while a job writes.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("init_command", "PRAGMA journal_mode=WAL;")
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 30)
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # A database host that does not answer fails a request (503) in seconds instead of holding its thread.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=3))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# An optional streaming replica serves the analytics reads (marketing_ai/replica.py, docs/operations.md).
REPLICA_READ_APPS = ("analytics", "campaigns")
REPLICA_READ_PATHS = ("/api/v1/analytics/", "/api/analytics/", "/analytics/")
if env.str("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = env.db("DATABASE_REPLICA_URL")
    for key in ("ATOMIC_REQUESTS", "CONN_MAX_AGE", "CONN_HEALTH_CHECKS"):
        if key in DATABASES["default"]:
            DATABASES["replica"][key] = DATABASES["default"][key]
    DATABASES["replica"].setdefault("OPTIONS", {}).setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=3))
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}  # tests read what they wrote
    DATABASE_ROUTERS = ["marketing_ai.replica.ReadReplicaRouter"]
    MIDDLEWARE.insert(MIDDLEWARE.index("marketing_ai.middleware.PageRoleMiddleware") + 1,
                      "marketing_ai.replica.ReplicaReadsMiddleware")

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
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# Repeated failed logins (either login form: /accounts/login/ and /admin/login/) lock that username
# from that IP for AXES_COOLOFF_TIME; the lockout page is a 429. Attempts are kept in the database
# (admin: Axes). Unlock early with `manage.py axes_reset_username NAME`.
AUTHENTICATION_BACKENDS = [
    "marketing_ai.auth.LoginLockoutBackend",  # django-axes, first: refuses a locked-out attempt before the password check
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT: int = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Where trained model artifacts (skops files) are kept.
MODEL_ARTIFACT_DIR = Path(env("MODEL_ARTIFACT_DIR", default=str(BASE_DIR / "var" / "models")))

# The daily_analytics job re-aggregates this many most recent days, so late events are counted.
ANALYTICS_WINDOW_DAYS: int = env.int("ANALYTICS_WINDOW_DAYS", default=3)
# PostgreSQL's events table is partitioned by UTC month (docs/operations.md, "Event partitions"): the
# event_partitions job keeps this many months created ahead of the current one, and with a retention set drops
# the months older than that many months before the current one, once their aggregates exist (unset: keep all).
EVENT_PARTITIONS_AHEAD_MONTHS: int = env.int("EVENT_PARTITIONS_AHEAD_MONTHS", default=3)
EVENT_RETENTION_MONTHS: int | None = env.int("EVENT_RETENTION_MONTHS", default=None)
if EVENT_PARTITIONS_AHEAD_MONTHS < 0:
    raise ImproperlyConfigured(f"EVENT_PARTITIONS_AHEAD_MONTHS must be at least 0, got {EVENT_PARTITIONS_AHEAD_MONTHS}")
if EVENT_RETENTION_MONTHS is not None and EVENT_RETENTION_MONTHS < 1:
    # The current and the previous month are always kept (late events land there).
    raise ImproperlyConfigured(f"EVENT_RETENTION_MONTHS must be at least 1 (or unset), got {EVENT_RETENTION_MONTHS}")
# Hourly trend points are kept for this many most recent UTC days (today included).
ANALYTICS_HOURLY_DAYS: int = env.int("ANALYTICS_HOURLY_DAYS", default=7)
if ANALYTICS_HOURLY_DAYS < 1:
    raise ImproperlyConfigured(f"ANALYTICS_HOURLY_DAYS must be at least 1, got {ANALYTICS_HOURLY_DAYS}")

# --- Security (on when DEBUG is off; `manage.py check --deploy` stays clean) ---
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Content-Security-Policy (django-csp): scripts only from our own static files, never inline (chart
# data travels in <script type="application/json"> blocks, see marketing_ai/charts.py). Inline styles
# stay allowed: Plotly sets them on every chart element, and style attributes cannot run code.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],  # Plotly's "download as PNG" and the admin's icons
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- Caches (local memory, per process) ---
# "default": the analytics and optimizer answer caches (keys include the data version, so a new
# aggregation is seen at once). Django's default cap of 300 entries is below one answer per
# campaign x range on a real portfolio, and a full cache culls a third of itself at every set.
# "auth": CachedTokenAuthentication's token -> user and roles, kept AUTH_TOKEN_CACHE_SECONDS.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "default",
                "OPTIONS": {"MAX_ENTRIES": env.int("CACHE_MAX_ENTRIES", default=20000)}},
    "auth": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "auth",
             "OPTIONS": {"MAX_ENTRIES": 10000}},
    # Rate-limit counters (marketing_ai/throttles.py): shared by every process through Redis in
    # production (short timeouts: a frozen Redis must not hold a request), per process otherwise.
    "throttle": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "throttle",
                 "OPTIONS": {"MAX_ENTRIES": 100000}},
}
# How long a revoked token (or a changed role) may keep working in another process; 0: no cache.
# The stated bound (docs/api.md, "Revocation"): at most 5 s by default; the changing process at once.
AUTH_TOKEN_CACHE_SECONDS: int = env.int("AUTH_TOKEN_CACHE_SECONDS", default=5)
# How long a process reuses the analytics data version before asking the database again (a new
# aggregation run reaches the API within this bound).
ANALYTICS_VERSION_CACHE_SECONDS: float = env.float("ANALYTICS_VERSION_CACHE_SECONDS", default=1.0)

# --- Rate limits (marketing_ai/throttles.py): requests per minute, per scope and per user or client IP ---
THROTTLE_RATES: dict[str, int] = {
    "ingest_per_user": env.int("THROTTLE_INGEST_PER_USER", default=600),  # 600 batches of 5,000 events a minute
    "ingest_per_ip": env.int("THROTTLE_INGEST_PER_IP", default=1200),
    "write_per_user": env.int("THROTTLE_WRITE_PER_USER", default=120),
    "write_per_ip": env.int("THROTTLE_WRITE_PER_IP", default=300),
    "jobs_per_user": env.int("THROTTLE_JOBS_PER_USER", default=10),
    "jobs_per_ip": env.int("THROTTLE_JOBS_PER_IP", default=20),
}
# Prepended to every rate-limit counter's key: environments (or test runs) sharing one Redis count apart.
THROTTLE_KEY_PREFIX: str = env.str("THROTTLE_KEY_PREFIX", default="")
THROTTLE_TRUST_X_FORWARDED_FOR: bool = env.bool("THROTTLE_TRUST_X_FORWARDED_FOR", default=False)

# --- REST API ---
# POST /api/v1/events/ takes 5,000 events; with 64-character ids that is ~3 MB of JSON (Django's default cap: 2.5 MB).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=8 * 1024 * 1024)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "marketing_ai.auth.CachedTokenAuthentication",  # DRF's, with a short per-process cache (marketing_ai/auth.py)
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["marketing_ai.api.RolePermission"],
    "DEFAULT_THROTTLE_CLASSES": ["marketing_ai.throttles.UserRateThrottle", "marketing_ai.throttles.IPRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "marketing_ai.api.Pagination",
    "DEFAULT_PARSER_CLASSES": [
        "marketing_ai.api.WholeBodyJSONParser",  # DRF's JSON parser without its per-chunk decoding
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "marketing_ai.api.exception_handler",
    "DEFAULT_FILTER_BACKENDS": [],  # list endpoints set marketing_ai.filters.ListFilterBackend and their FilterSet
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "URL_FORMAT_OVERRIDE": None,  # ?format= is ours (CSV export), not DRF's renderer switch
}
SPECTACULAR_SETTINGS = {
    "TITLE": "marketing_ai API",
    "DESCRIPTION": "Campaign analytics, A/B testing and optimisation recommendations.",
    "VERSION": "4.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Every operation documents the error answers the request path can give (marketing_ai/schema.py).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "marketing_ai.schema.add_error_responses"],
    # Only the health checks answer without authentication; the schema and its docs need a login too.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Choice sets shared by several serializers get one stable name each (and `check --deploy` stays clean).
    "ENUM_NAME_OVERRIDES": {
        "JobRunStatusEnum": "marketing_ai.models.JobRun.Status",
        "CampaignStatusEnum": "campaigns.models.Campaign.Status",
        "ABTestStatusEnum": "abtests.models.ABTest.Status",
        "ABTestMetricEnum": "abtests.models.ABTest.Metric",
        "ABTestSideMetricEnum": "abtests.metrics.METRIC_NAMES",
        "SendTimeMethodEnum": "optimizer.models.UserSendTime.Method",
        "DueSendMethodEnum": "optimizer.serializers.DUE_METHODS",
        "OptimizationStatusEnum": "optimizer.models.CampaignOptimization.Status",
    },
}

# --- Mail (the alert e-mails) ---
# The console backend prints each mail (development, the demo); production sets an SMTP backend and host.
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="marketing_ai <alerts@localhost>")

# --- Celery ---
REDIS_URL: str | None = env("REDIS_URL", default=None) or None
if REDIS_URL:
    CACHES["throttle"] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "mai",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_RESULT_EXPIRES = None  # no result backend, so no backend_cleanup entry in beat
CELERY_TASK_ALWAYS_EAGER = REDIS_URL is None  # no broker: run jobs in-process (demo, bare tests)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=30 * 60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=35 * 60)
# With acks_late, Redis hands an unacknowledged task to another worker after the visibility timeout:
# keep it longer than the hard limit so a long job is never delivered twice while it still runs.
# Every Redis call made while serving a request (enqueueing a job, a job lock, readiness) gives up
# after REDIS_SOCKET_TIMEOUT seconds: a frozen Redis then costs a request a fast 503, not a thread.
# It must stay above kombu's 1 s BRPOP poll, which the workers' consumer makes on the same options.
REDIS_SOCKET_TIMEOUT: float = env.float("REDIS_SOCKET_TIMEOUT", default=2.0)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_TASK_TIME_LIMIT + 15 * 60,
    "socket_timeout": REDIS_SOCKET_TIMEOUT,
    "socket_connect_timeout": REDIS_SOCKET_TIMEOUT,
}
CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_SOCKET_TIMEOUT
# Publishing retries once (a dropped connection is reopened), so a dead broker costs at most ~2 timeouts.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
# A redelivered run whose killed attempt's session still holds the job lock terminates that session
# and waits this long for the lock; a retried run waits this long before it is retried later.
JOB_LOCK_WAIT_SECONDS: float = env.float("JOB_LOCK_WAIT_SECONDS", default=30.0)
# A job_runs row still "queued" this long after it was sent, and no longer in the broker, was lost
# (e.g. Redis restarted without persistence): the reconciliation marks it failed and sends it again.
JOB_QUEUED_LOST_AFTER_SECONDS: int = env.int("JOB_QUEUED_LOST_AFTER_SECONDS", default=120)
CELERY_WORKER_MAX_TASKS_PER_CHILD = env.int("CELERY_WORKER_MAX_TASKS_PER_CHILD", default=100)  # frees model memory
# Fan-out (marketing_ai/fanout.py): helper tasks a long job sends to idle workers (0 = the job works alone),
# the queue they go to (empty = the default queue), and how long a helper may hold a part before the job redoes it.
JOB_FANOUT_HELPERS = env.int("JOB_FANOUT_HELPERS", default=0)
# Trained model artifacts a process keeps in memory after loading them (optimizer.registry.ArtifactCache).
MODEL_ARTIFACT_CACHE_SIZE = env.int("MODEL_ARTIFACT_CACHE_SIZE", default=1)
JOB_FANOUT_QUEUE = env.str("JOB_FANOUT_QUEUE", default="")
JOB_FANOUT_PART_TIMEOUT = env.int("JOB_FANOUT_PART_TIMEOUT", default=600)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}

STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "marketing_ai.staticfiles.PlotlyFinder",
]
