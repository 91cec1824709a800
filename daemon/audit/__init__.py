"""The append-only, hash-chained audit trail (SPEC 11)."""
