"""The gRPC metadata keys of the access-control and audit trail (docs/architecture.md, "Security"),
defined once.

A caller sets them on every department call; the service's access interceptor reads them:

* ``x-govhub-purpose``: why the record is read, in the caller's words or a code of its own (e.g.
  ``pension-eligibility-check``). Required on every call by an outside system (the grants file marks
  them ``outside = true``): a call without one is refused with PERMISSION_DENIED, reason
  ``PURPOSE_REQUIRED``. The gateway may send it; the audit entry records it either way.
* ``x-govhub-actor``: the person on whose behalf the call is made: a staff member's staff number, or the
  citizen's token subject. Stored in the audit entry (a value shaped like an ID number is stored as its
  record key, never raw); never shown in a person's own access log.
* ``x-govhub-actor-role``: that person's role (``citizen``, ``staff``, ``officer``, ...); shown to the person.
"""

from __future__ import annotations

PURPOSE = "x-govhub-purpose"
ACTOR = "x-govhub-actor"
ACTOR_ROLE = "x-govhub-actor-role"

# Longest value kept from each (longer values are cut, not refused).
MAX_LENGTH = 200
