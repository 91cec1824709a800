"""Partner publication (SPEC 8): encrypted, split 7z archives and the password envelope."""
