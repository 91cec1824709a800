"""Case and step states, named once."""

from enum import StrEnum


class CaseState(StrEnum):
    RECEIVED = "received"
    IN_REVIEW = "in_review"
    ON_HOLD = "on_hold"
    RETURNED = "returned"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    SUSPENDED = "suspended"
    COMPLETED = "completed"


OPEN_STATES = {CaseState.RECEIVED, CaseState.IN_REVIEW, CaseState.ON_HOLD}


class StepState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    RETURNED = "returned"  # changes requested from the requester
    SUPERSEDED = "superseded"  # withdrawn: someone else decided, the person left, cancelled
