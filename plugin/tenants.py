"""The tenants file: one TOML table per host system (``[tenants.<slug>]``).

Its keys, and those of each tenant's ``policy`` table (due dates and reminders), are defined
once, in :data:`TENANT_KEYS` and :data:`POLICY_KEYS`: ``docs/configuration.md`` is generated
from them, and a key that is not there is refused (a typo never passes silently). A bad value
stops start-up with one line naming the tenant, the key and the problem; the policy's values
are checked by the concerns that use them (``checks``, passed in by the app: this module
imports nothing above it). The file is re-read when it changes on disk; a file that became
bad is not used (the error is logged and the previous tenants stay). Its path is the
``TENANTS`` setting (default ``{DATA_DIR}/tenants.toml``).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, current_app

from sharewise.forms.spec import LATEST, SPEC_PATHS
from sharewise.plugin.settings import settings_of
from sharewise.plugin.signing import generate_secret, secret_bytes

log = logging.getLogger(__name__)

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
AGREEMENT_CODE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
DEFAULT_TIMEZONE = "Europe/London"


@dataclass(frozen=True)
class TenantKey:
    """One documented key of the tenants file: ``default`` is TOML as it would be written
    (``""``: no default)."""

    name: str
    kind: str
    default: str
    doc: str


TENANT_KEYS: tuple[TenantKey, ...] = (
    TenantKey("name", "text", "the slug", "The council or trust, as emails and pages name it."),
    TenantKey("webhook_secret", "`whsec_<base64>`", "", "Verifies the host's events "
              "(Standard Webhooks). Required, unless `webhook_secrets` is given."),
    TenantKey("webhook_secrets", "list of `whsec_<base64>`", "[]", "Several secrets during "
              "a rotation: an event signed with any of them is accepted."),
    TenantKey("callback_url", "`http(s)` URL", "", "Where finished records are posted. "
              "Without it nothing is posted back."),
    TenantKey("callback_secret", "`whsec_<base64>`", "", "Signs what Sharewise posts to "
              "`callback_url`."),
    TenantKey("timezone", "IANA zone name", '"Europe/London"', "The zone of due dates, "
              "working days, sending hours and dates on the form."),
    TenantKey("admin_email", "email address", "", "Told when a post-back fails for good or "
              "the host's callback is disabled."),
    TenantKey("form_version", "1 or 2", "2", "The decision-record schema of new records "
              "(records keep the version they were made with)."),
    TenantKey("public_authority", "true or false", "true", "A public authority may not rely on "
              "legitimate interests for its public tasks: the form then asks why it applies."),
    TenantKey("dpia_reference", "text, 200 characters at most", "", "The data protection "
              "impact assessment, shown on the form."),
    TenantKey("sharing_agreements", "list of `{ code, title }`", "[]", "Information sharing "
              "agreements offered as choices on the form, beside \"None\"."),
    TenantKey("retention_days", "whole days, 0 to 36500", "30", "Days after the host "
              "acknowledged a finished record before its PDFs and personal fields are deleted."),
    TenantKey("notify_on_request", "true or false", "true", "Email the practitioner the "
              "record's link when a request arrives (the next reminder scan sends it, at any "
              "hour); false when the case system shows them the link itself."),
    TenantKey("policy", "table", "{}", "Due dates and reminders: the keys below."),
)
POLICY_KEYS: tuple[TenantKey, ...] = (
    TenantKey("due_time", "local time `HH:MM`", '"17:00"', "When a routine or urgent record "
              "is due, on its due day."),
    TenantKey("urgent_cutoff", "local time `HH:MM`", '"13:00"', "An urgent request received "
              "by then on a working day is due the same day; later, the next working day."),
    TenantKey("emergency_hours", "hours above 0", "2", "An emergency record is due this long "
              "after the request."),
    TenantKey("reminder_steps", "list of `{ offset, to }`", '[{ offset = "-2h", to = '
              '"practitioner" }, { offset = "0", to = "practitioner" }, { offset = '
              '"+1 working day", to = "manager" }, { offset = "+3 working days", to = '
              '"manager" }]', "Who is emailed when, relative to the due time: `offset` like "
              '"-2h", "0", "+30 minutes", "+1 day", "+2 working days"; `to` is practitioner '
              "or manager."),
    TenantKey("emergency_reminder_steps", "list of `{ offset, to }`, or true",
              '[{ offset = "0", to = "practitioner" }, { offset = "+1h", to = "manager" }]',
              "The steps of emergency records, sent at any hour; `[]` chases them like the "
              "rest."),
    TenantKey("digest_time", "local time `HH:MM`, or \"\"", '"08:00"', "When managers get "
              "their daily digest of overdue records, on working days; \"\" turns it off."),
    TenantKey("send_hours", "`HH:MM-HH:MM`, or \"\"", '"08:00-18:00"', "Emails (but "
              "emergencies') wait for these hours of a working day; \"\" sends at any time."),
)
_TOP = frozenset(k.name for k in TENANT_KEYS)
_POLICY = frozenset(k.name for k in POLICY_KEYS)
#: checks a concern makes of a tenant's values (``ValueError`` with a message naming the key)
Check = Callable[["Tenant"], None]


class TenantsError(ValueError):
    """The tenants file is malformed (the message names the tenant and key, never a secret)."""


@dataclass(frozen=True)
class Tenant:
    """One host system."""

    slug: str
    name: str
    webhook_secrets: tuple[str, ...]
    callback_url: str | None = None
    callback_secret: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    admin_email: str | None = None
    policy: dict[str, Any] = field(default_factory=dict)
    #: the decision-record schema version of new records
    form_version: int = LATEST
    #: a public authority may not rely on legitimate interests for its public tasks
    public_authority: bool = True
    dpia_reference: str | None = None
    #: (code, title) of each information sharing agreement offered on the form
    sharing_agreements: tuple[tuple[str, str], ...] = ()
    #: days after the host acknowledged a finished record before its content is deleted
    retention_days: int = 30
    #: email the practitioner the record's link when a request arrives (the request email)
    notify_on_request: bool = True

    @property
    def zone(self) -> ZoneInfo:
        """The tenant's time zone."""
        return ZoneInfo(self.timezone)


def _known(keys: Any, allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(keys) - allowed)
    if unknown:
        raise TenantsError(f"{where}: unknown key {unknown[0]!r} (the keys are listed in "
                           "docs/configuration.md)")


def parse_tenants(data: dict[str, Any], checks: Sequence[Check] = ()) -> dict[str, Tenant]:
    """Tenants from a parsed TOML document; each is also given to every check in ``checks``."""
    out: dict[str, Tenant] = {}
    for slug, raw in (data.get("tenants") or {}).items():
        where = f"tenant {slug!r}"
        if not SLUG.match(slug):
            raise TenantsError(f"{where}: slug must match {SLUG.pattern}")
        if not isinstance(raw, dict):
            raise TenantsError(f"{where}: must be a table")
        _known(raw, _TOP, where)
        if not isinstance(raw.get("policy", {}), dict):
            raise TenantsError(f"{where}: policy must be a table")
        _known(raw.get("policy", {}), _POLICY, f"{where}, policy")
        secrets_: list[str] = []
        if raw.get("webhook_secret"):
            secrets_.append(raw["webhook_secret"])
        secrets_.extend(raw.get("webhook_secrets") or [])
        if not secrets_:
            raise TenantsError(f"{where}: webhook_secret is required")
        for key, value in [("webhook_secret", s) for s in secrets_] + [
            ("callback_secret", raw.get("callback_secret"))
        ]:
            if value is None:
                continue
            try:
                secret_bytes(str(value))
            except ValueError:
                raise TenantsError(f"{where}: {key} is not a whsec_<base64> secret") from None
        tz = raw.get("timezone", DEFAULT_TIMEZONE)
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise TenantsError(f"{where}: unknown timezone {tz!r}") from None
        callback_url = raw.get("callback_url")
        if callback_url and not str(callback_url).startswith(("http://", "https://")):
            raise TenantsError(f"{where}: callback_url must be an http(s) URL")
        version = raw.get("form_version", LATEST)
        if version not in SPEC_PATHS or isinstance(version, bool):
            raise TenantsError(f"{where}: form_version must be one of {sorted(SPEC_PATHS)}")
        public_authority = raw.get("public_authority", True)
        if not isinstance(public_authority, bool):
            raise TenantsError(f"{where}: public_authority must be true or false")
        dpia = raw.get("dpia_reference")
        if dpia is not None and (not isinstance(dpia, str) or len(dpia) > 200):
            raise TenantsError(f"{where}: dpia_reference must be text of at most 200 characters")
        notify = raw.get("notify_on_request", True)
        if not isinstance(notify, bool):
            raise TenantsError(f"{where}: notify_on_request must be true or false")
        retention = raw.get("retention_days", 30)
        if isinstance(retention, bool) or not isinstance(retention, int) or not (
                0 <= retention <= 36500):
            raise TenantsError(f"{where}: retention_days must be a whole number of days "
                               "from 0 to 36500")
        out[slug] = Tenant(
            slug=slug,
            name=str(raw.get("name", slug)),
            webhook_secrets=tuple(str(s) for s in secrets_),
            callback_url=callback_url,
            callback_secret=raw.get("callback_secret"),
            timezone=tz,
            admin_email=raw.get("admin_email"),
            policy=dict(raw.get("policy") or {}),
            form_version=version,
            public_authority=public_authority,
            dpia_reference=dpia or None,
            sharing_agreements=_agreements(raw.get("sharing_agreements"), where),
            retention_days=retention,
            notify_on_request=notify,
        )
        for check in checks:
            try:
                check(out[slug])
            except ValueError as exc:
                raise TenantsError(f"{where}, policy: {exc}") from None
    return out


def _agreements(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    """``sharing_agreements = [{code = "...", title = "..."}, ...]`` as (code, title) pairs."""
    if raw is None:
        return ()
    problem = f"{where}: sharing_agreements must be a list of {{code, title}} tables"
    if not isinstance(raw, list):
        raise TenantsError(problem)
    out: list[tuple[str, str]] = []
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"code", "title"}:
            raise TenantsError(problem)
        code, title = item["code"], item["title"]
        if not isinstance(code, str) or not AGREEMENT_CODE.match(code) or code == "none":
            raise TenantsError(f"{where}: a sharing agreement code is letters, digits and _ "
                               "(and not 'none')")
        if not isinstance(title, str) or not title.strip() or len(title) > 200:
            raise TenantsError(f"{where}: a sharing agreement title is 1-200 characters")
        out.append((code, title.strip()))
    if len({c for c, _ in out}) != len(out):
        raise TenantsError(f"{where}: sharing agreement codes must differ")
    return tuple(out)


def load_tenants(path: str | Path, checks: Sequence[Check] = ()) -> dict[str, Tenant]:
    """Read and parse a tenants file (a missing file means no tenants)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        with path.open("rb") as f:
            return parse_tenants(tomllib.load(f), checks)
    except tomllib.TOMLDecodeError as exc:
        raise TenantsError(f"{path}: not valid TOML ({exc})") from None


class TenantRegistry:
    """The app's tenants, re-read when the file's modification time changes."""

    def __init__(self, path: str | Path, checks: Sequence[Check] = ()) -> None:
        self.path = Path(path)
        self.checks = tuple(checks)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._tenants: dict[str, Tenant] = {}
        self._reload()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _reload(self) -> None:
        stamp = self._stat()
        if stamp == self._stamp and self._stamp is not None:
            return
        with self._lock:
            try:
                self._tenants = load_tenants(self.path, self.checks)
            except TenantsError as exc:
                if self._stamp is None:
                    raise
                log.error("tenants file not reloaded: %s", exc)
            self._stamp = stamp

    def all(self) -> dict[str, Tenant]:
        """Every tenant by slug."""
        self._reload()
        return dict(self._tenants)

    def get(self, slug: str) -> Tenant | None:
        """The tenant ``slug`` or ``None``."""
        self._reload()
        return self._tenants.get(slug)


def init_app(app: Flask, checks: Sequence[Check] = ()) -> None:
    """Load the app's tenants from ``TENANTS`` (``app.extensions['sharewise.tenants']``),
    each checked by ``checks``."""
    path = settings_of(app).tenants
    app.config["TENANTS_IN_USE"] = str(path)
    app.extensions["sharewise.tenants"] = TenantRegistry(path, checks)


def get_tenant(slug: str, app: Flask | None = None) -> Tenant | None:
    """The tenant ``slug`` of the current app."""
    return (app or current_app).extensions["sharewise.tenants"].get(slug)


def all_tenants(app: Flask | None = None) -> dict[str, Tenant]:
    """Every tenant of the current app."""
    return (app or current_app).extensions["sharewise.tenants"].all()


def tenant_block(slug: str, name: str | None = None) -> str:
    """A new ``[tenants.<slug>]`` block with fresh secrets (for ``sharewise tenants add``)."""
    if not SLUG.match(slug):
        raise TenantsError(f"tenant slug must match {SLUG.pattern}")
    return (
        f"[tenants.{slug}]\n"
        f'name = "{(name or slug).replace(chr(34), "")}"\n'
        f'webhook_secret = "{generate_secret()}"    # verifies events from the host\n'
        f'callback_url = "https://case.example/api/sharewise"   # where finished records go\n'
        f'callback_secret = "{generate_secret()}"   # signs what Sharewise posts to the host\n'
        f'timezone = "{DEFAULT_TIMEZONE}"\n'
        f'# admin_email = "sharewise-admin@example.org"\n'
    )


def write_demo_tenants(path: Path, base_url: str) -> None:
    """Write a demo tenants file (one tenant ``demo``) if ``path`` does not exist yet."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    block = tenant_block("demo", "Demo County Council").replace(
        "https://case.example/api/sharewise", f"{base_url}/demo-host/callback"
    )
    text = (
        "# Demo tenants file created by `sharewise serve` because no tenants file was found.\n"
        "# For a real setup, replace it with your own (`sharewise tenants add SLUG` prints a\n"
        "# block; config/tenants.example.toml shows every key) or set SHAREWISE_TENANTS.\n\n"
        + block
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tenants.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        try:
            os.link(tmp, path)  # atomic; a concurrent writer's file wins and is kept
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
