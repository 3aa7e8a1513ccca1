"""Every concern's models, imported in one place so ``Base.metadata`` is complete (Alembic).

Each concern adds one import line here.
"""

from sharewise.plugin.db import Base
from sharewise.plugin.outbox.models import Delivery, DeliveryAttempt, TenantState  # noqa: F401
from sharewise.plugin.records.models import AuditEntry, Record, WebhookEvent
from sharewise.plugin.reminders.models import Digest, DigestRun, Reminder  # noqa: F401
from sharewise.plugin.uploads.models import UploadVersion  # noqa: F401

__all__ = ["AuditEntry", "Base", "Record", "WebhookEvent"]
