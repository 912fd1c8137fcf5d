"""Settings for the monitoring portal, read from the environment (12-factor)."""

import socket
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from portal.secret_key import checkout_secret_key
from portal.secret_key import weakness as secret_key_weakness

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

MONITORING_LEVELS = ("development", "staging", "production")
MONITORING_LEVEL = env.str("MONITORING_LEVEL", default="development")
if MONITORING_LEVEL not in MONITORING_LEVELS:
    # A typo must not silently run production with development defaults.
    raise ImproperlyConfigured(
        f"MONITORING_LEVEL={MONITORING_LEVEL!r}: choose one of {', '.join(MONITORING_LEVELS)}"
    )
PRODUCTION = MONITORING_LEVEL == "production"
DEBUG = env.bool("DEBUG", default=MONITORING_LEVEL == "development")

# Never a key published with the code: in development, one generated per checkout under .run/
# (stable across restarts); every other level refuses to start without a strong one.
SECRET_KEY = env.str("SECRET_KEY", default="")
if MONITORING_LEVEL == "development" and not SECRET_KEY:
    try:
        SECRET_KEY = checkout_secret_key(BASE_DIR / ".run" / "secret_key")
    except (OSError, ValueError) as exc:
        raise ImproperlyConfigured(f"SECRET_KEY is unset and none can be kept: {exc}") from exc
elif MONITORING_LEVEL != "development" and (_key_problem := secret_key_weakness(SECRET_KEY)):
    raise ImproperlyConfigured(
        f"portal.E001: {_key_problem} (MONITORING_LEVEL={MONITORING_LEVEL}). "
        "Set SECRET_KEY to a random value of at least 50 characters."
    )
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS",
    default=[] if PRODUCTION else ["localhost", ".localhost", "127.0.0.1", "testserver"],
)

# Tenants are served at <slug>.<PORTAL_BASE_DOMAIN>; the public site at PORTAL_BASE_DOMAIN itself.
PORTAL_BASE_DOMAIN = env.str("PORTAL_BASE_DOMAIN", default="localhost")
PORTAL_SCHEME = env.str("PORTAL_SCHEME", default="https" if PRODUCTION else "http")
# The port in links between hosts; the scheme's default port is left out of links.
PORTAL_PORT = env.int("PORTAL_PORT", default=443 if PORTAL_SCHEME == "https" else 8000)

SHARED_APPS = [
    "django_tenants",
    "portal",
    "tenants",
    "tenants.apps.PlatformAdminConfig",  # django.contrib.admin with the platform's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "axes",
    "csp",
    "django_htmx",
    # Two-factor sign-in: people are platform-wide, so their authenticator apps are too.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "compliance_catalog",  # the framework catalog: platform-wide data in the public schema
]
TENANT_APPS = [
    "alerts",
    "dashboards",
    "compliance",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
# New tenants are cloned from this migrated schema instead of running every migration per tenant.
TENANT_BASE_SCHEMA = "tenant_template"
TENANT_CREATION_FAKES_MIGRATIONS = True
# One SET search_path per request instead of one per cursor.
TENANT_LIMIT_SET_CALLS = True
PUBLIC_SCHEMA_URLCONF = "portal.urls_public"
ROOT_URLCONF = "portal.urls_tenant"
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]

MIDDLEWARE = [
    # Resolves the tenant from Host first: an unknown host is a 404 before anything else runs.
    "django_tenants.middleware.main.TenantMainMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Marks whether the session was verified with a second factor (request.user.is_verified()).
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "tenants.pages.middleware.TenantMembershipMiddleware",
    # Last, as django-axes asks, so it sees the outcome of every authentication attempt.
    "axes.middleware.AxesMiddleware",
]

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
                "csp.context_processors.nonce",
                "tenants.pages.context_processors.tenant",
            ],
        },
    },
]

WSGI_APPLICATION = None
ASGI_APPLICATION = "portal.asgi.application"

# Production never falls back to a local server: a missing URL stops the start.
DATABASES = {
    "default": env.db_url(
        "DATABASE_URL",
        default=env.NOTSET if PRODUCTION else "postgres://postgres@127.0.0.1:5432/portal",
        engine="django_tenants.postgresql_backend",
    )
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)

REDIS_URL = env.str("REDIS_URL", default=env.NOTSET if PRODUCTION else "redis://127.0.0.1:6379/0")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Every key carries the current schema, so tenants can never read each other's entries.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="portal"),
    }
}

# TCP keepalive notices a Redis that went away without closing the connection (~30 s).
_REDIS_KEEPALIVE = {
    getattr(socket, name): value
    for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 4))
    if hasattr(socket, name)
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # No socket timeout on the channel layer: redis-py's default (5 s) would cut
            # channels-redis' 5 s blocking receive and kill idle WebSocket consumers, and any
            # timeout wraps each command in asyncio.wait_for, which on Python 3.11 can swallow
            # a cancellation arriving as the command completes: the receive of a consumer that
            # left then never ends (tests/test_dashboard_live.py caught it hanging). Keepalive
            # takes the timeout's place for a Redis that is gone.
            "hosts": [
                {
                    "address": REDIS_URL,
                    "socket_timeout": None,
                    "socket_keepalive": True,
                    "socket_keepalive_options": _REDIS_KEEPALIVE,
                }
            ],
            "prefix": env.str("CHANNELS_PREFIX", default="portal"),
        },
    }
}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Separate queues let a test run share a Redis with a running demo without stealing its tasks:
# the sync and notify queues are named after the default one, so they stay apart too.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
PORTAL_TASK_QUEUES = {
    "default": CELERY_TASK_DEFAULT_QUEUE,
    "sync": f"{CELERY_TASK_DEFAULT_QUEUE}.sync",
    "notify": f"{CELERY_TASK_DEFAULT_QUEUE}.notify",
}
# Backend syncs and notifications each have their own queue, so a slow backend or mail server
# never holds up the other kind of work. Patterns are matched against task names, in order.
CELERY_TASK_ROUTES = {
    "*.sync_*": {"queue": PORTAL_TASK_QUEUES["sync"]},
    "*_grafana": {"queue": PORTAL_TASK_QUEUES["sync"]},
    "*.send_*": {"queue": PORTAL_TASK_QUEUES["notify"]},
    "*.notify_*": {"queue": PORTAL_TASK_QUEUES["notify"]},
    "*.deliver_*": {"queue": PORTAL_TASK_QUEUES["notify"]},
}
# Results are stored only for tasks whose caller reads them (ignore_result=False), under this
# installation's prefix, and not for long: they may hold a tenant's data.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = 600
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
    "global_keyprefix": env.str("CACHE_KEY_PREFIX", default="portal") + ":celery:"
}
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "refresh-tenant-summaries": {
        "task": "tenants.tasks.refresh_all_tenant_summaries",
        "schedule": 60.0,
    },
    "worker-heartbeat": {"task": "tenants.tasks.record_worker_heartbeat", "schedule": 15.0},
    # Drift repair: anything a lost message or a restarted backend left behind.
    "alerting-reconcile": {"task": "alerts.tasks.sync_reconcile_all", "schedule": 60.0},
    # A chain cut short is caught against these heads (see tenants.audit_chain).
    "audit-chain-heads": {"task": "tenants.tasks.record_audit_chain_heads", "schedule": 86400.0},
    # Automated compliance checks, expired attestations and the daily snapshot of every tenant.
    "compliance-assess": {"task": "compliance.tasks.assess_all_tenants", "schedule": 3600.0},
    # The P3 e-mail digest of each tenant whose period (INCIDENT_DIGEST_INTERVAL) has ended;
    # a failed send is tried again at the next run.
    "incident-digest": {"task": "alerts.tasks.digest_all_tenants", "schedule": 600.0},
    # Dashboards kept in Grafana: pending pushes a lost message left, failed ones with backoff,
    # removals still owed.
    "grafana-push-reconcile": {"task": "dashboards.tasks.grafana_reconcile_all", "schedule": 60.0},
    # Open incidents and the compliance score of each tenant, as metrics its dashboards show.
    "record-portal-kpis": {
        "task": "dashboards.tasks.record_portal_kpis_all",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    "expire-metric-samples": {"task": "dashboards.tasks.expire_samples_all", "schedule": 3600.0},
    # Prometheus panels of the dashboards someone has open, polled once per panel per step.
    "poll-watched-prometheus-panels": {
        "task": "dashboards.tasks.poll_prometheus_all",
        "schedule": 5.0,
        "options": {"expires": 5.0},
    },
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Tests only, never outside development: PBKDF2's deliberate slowness would dominate the suite.
if env.bool("PORTAL_FAST_PASSWORD_HASHER", default=False) and MONITORING_LEVEL == "development":
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "tenants.accounts.backends.EmailBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Lockout is per (username, client address): a stranger hammering one account from one address
# cannot lock that person out everywhere, nor lock out other accounts.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_FORM_FIELD = "username"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Sign-in is case-insensitive, so lockout counts must be too.
AXES_USERNAME_CALLABLE = "tenants.accounts.backends.lockout_username"
# The client address is REMOTE_ADDR. Behind a reverse proxy, let the ASGI server rewrite it from
# X-Forwarded-For for trusted proxies only (uvicorn: FORWARDED_ALLOW_IPS / --forwarded-allow-ips).

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Uploaded files (compliance evidence), each under its tenant's folder; never served directly:
# downloads go through views that check the tenant and the permission.
MEDIA_ROOT = env.str("MEDIA_ROOT", default=str(BASE_DIR / ".run" / "media"))
MEDIA_URL = "/media/"

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Outside production static files are served straight from the apps (no collectstatic step).
WHITENOISE_USE_FINDERS = not PRODUCTION
STATIC_ROOT = env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")) if PRODUCTION else None
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.api.permissions.TenantPermission"],
    # JSON only: DRF's browsable HTML pages would break the CSP; Swagger UI (/api/docs/) is the
    # browsable API.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["tenants.api.parsers.StrictJSONParser"],
    # No OPTIONS metadata: a method a resource does not route is a 405 like any other.
    "DEFAULT_METADATA_CLASS": None,
    "DEFAULT_SCHEMA_CLASS": "tenants.api.schema.TenantAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "tenants.api.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "tenants.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Monitoring portal API",
    "DESCRIPTION": "Tenant-scoped API. Authenticate with `Authorization: Bearer <token>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and docs are tenant URLs like any other: members (and read tokens) only.
    "SERVE_PERMISSIONS": ["tenants.api.permissions.TenantPermission"],
    # Served from our own static files: the CSP allows no third-party origins.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Request and response shapes differ (read-only fields, input rules): separate components.
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tenants.api.schema.document_error_responses",
    ],
}

# Content-Security-Policy: only our own origin; no inline scripts or styles.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        # CSP3: 'self' also covers ws:/wss: to the page's own host.
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        # The tenant picker posts to the public site, which redirects to the tenant's host; CSP
        # checks form-action on every redirect, so tenant hosts must be allowed.
        "form-action": ["'self'", f"{PORTAL_SCHEME}://*.{PORTAL_BASE_DOMAIN}:*"],
        "base-uri": ["'self'"],
    }
}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
        # Only behind a proxy that sets this header itself; otherwise clients could forge it.
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Mail: invitations and password resets. Outside production they print to the console of the
# process that sends them (the worker, for invitations).
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str(
    "DEFAULT_FROM_EMAIL", default=f"Monitoring portal <noreply@{PORTAL_BASE_DOMAIN}>"
)

# Backends: unset is a normal state ("not connected"); later issues wire them in.
PROMETHEUS_URL = env.str("PROMETHEUS_URL", default="")
ALERTMANAGER_URL = env.str("ALERTMANAGER_URL", default="")
GRAFANA_URL = env.str("GRAFANA_URL", default="")
GRAFANA_TOKEN = env.str("GRAFANA_TOKEN", default="")
# The uid of the Prometheus data source in Grafana that pushed dashboards query.
GRAFANA_DATASOURCE_UID = env.str("GRAFANA_DATASOURCE_UID", default="prometheus")
PROMETHEUS_RULES_DIR = env.str("PROMETHEUS_RULES_DIR", default=str(BASE_DIR / ".run" / "rules"))
ALERTMANAGER_CONFIG_PATH = env.str(
    "ALERTMANAGER_CONFIG_PATH", default=str(BASE_DIR / ".run" / "alertmanager.yml")
)
# The validators sync runs before a file reaches a backend (Debian ships both with the servers).
PROMTOOL_PATH = env.str("PROMTOOL_PATH", default="promtool")
AMTOOL_PATH = env.str("AMTOOL_PATH", default="amtool")
# Where Alertmanager reaches the portal's webhooks (intake, relay); default: the public site.
ALERTMANAGER_WEBHOOK_BASE_URL = env.str("ALERTMANAGER_WEBHOOK_BASE_URL", default="")
# The mail relay Alertmanager sends e-mail receivers through (host:port; unset: no relay).
ALERTMANAGER_SMTP_SMARTHOST = env.str("ALERTMANAGER_SMTP_SMARTHOST", default="")
ALERTMANAGER_SMTP_FROM = env.str("ALERTMANAGER_SMTP_FROM", default="")
ALERTMANAGER_SMTP_REQUIRE_TLS = env.bool("ALERTMANAGER_SMTP_REQUIRE_TLS", default=True)
# Receiver URLs must be https to public addresses; hosts listed here (host or host:port) are
# exempt, e.g. an internal relay or the demo's and tests' local sinks. Empty by default.
OUTBOUND_ALLOWED_HOSTS = env.list("OUTBOUND_ALLOWED_HOSTS", default=[])
# The SMS provider relayed SMS go through (an HTTP API in the style of Twilio's).
SMS_API_URL = env.str("SMS_API_URL", default="")
SMS_API_TOKEN = env.str("SMS_API_TOKEN", default="")
SMS_FROM = env.str("SMS_FROM", default="")
# django-fernet-encrypted-fields derives its keys from SECRET_KEY (and its fallbacks) and this salt.
SALT_KEY = env.str("FIELD_ENCRYPTION_SALT", default="monitoring-portal-field-encryption")

# Reserved tenant slugs: schema names Django or PostgreSQL need, and host names people expect
# to belong to the platform itself.
RESERVED_TENANT_SLUGS = frozenset(
    {
        "public",
        "www",
        "admin",
        "api",
        "static",
        "media",
        "tenant_template",
        "template",
        "postgres",
        "information_schema",
        "pg_catalog",
        "pg_toast",
        "root",
        "mail",
        "smtp",
        "app",
        "portal",
        "status",
        "help",
        "support",
        "docs",
        "login",
        "auth",
        "ws",
    }
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "client_errors_without_traceback": {
            "()": "django.utils.log.CallbackFilter",
            "callback": "ext://portal.log_filters.client_errors_without_traceback",
        },
        "routine_tasks_at_debug": {
            "()": "django.utils.log.CallbackFilter",
            "callback": "ext://portal.log_filters.routine_tasks_at_debug",
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's own console handler would print every django.* line a second time.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.request": {"filters": ["client_errors_without_traceback"]},
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        "celery.app.trace": {"filters": ["routine_tasks_at_debug"]},
        "celery.worker.strategy": {"filters": ["routine_tasks_at_debug"]},
        "celery.beat": {"filters": ["routine_tasks_at_debug"]},
    },
}
