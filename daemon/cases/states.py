"""Case and step states, named once."""

from enum import StrEnum


class CaseState(StrEnum):
    RECEIVED = "received"
    IN_REVIEW = "in_review"
    ON_HOLD = "on_hold"
    HELD = "held"  # nobody can approve the waiting step (post vacant, approver gone)
    AWAITING_REVISION = "awaiting_revision"  # a setter was asked to revise a condition
    RETURNED = "returned"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    SUSPENDED = "suspended"
    COMPLETED = "completed"


OPEN_STATES = {CaseState.RECEIVED, CaseState.IN_REVIEW, CaseState.ON_HOLD,
               CaseState.AWAITING_REVISION, CaseState.HELD}


class StepState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    RETURNED = "returned"  # changes requested from the requester
    SUPERSEDED = "superseded"  # withdrawn: someone else decided, the person left, cancelled
    UNDONE = "undone"  # an approval a later rejection sent the case back before; counts no more
