"""Names inside a delivery's archive: nothing the partner extracts can land on another file."""

from __future__ import annotations

import unicodedata

from daemon.publication.names import NAME_BYTES, archive_names, plain_name


def test_names_that_one_disk_would_store_as_one_file_are_told_apart() -> None:
    raw = ["A.pdf", "a.PDF",  # case-insensitive disks (Windows, macOS)
           "a:b.pdf", "a_b.pdf",  # 7-Zip on Windows writes "a:b" as "a_b"
           "x.pdf.", "x.pdf",  # Windows drops trailing dots
           unicodedata.normalize("NFD", "é.pdf"), "é.pdf"]  # one name on macOS
    names = archive_names(raw)
    assert names == ["A.pdf", "a-2.PDF", "a_b.pdf", "a_b-2.pdf", "x.pdf", "x-2.pdf",
                     "é.pdf", "é-2.pdf"]
    assert len({n.casefold() for n in names}) == len(names)


def test_names_never_take_a_delivery_file_a_folder_or_a_volume() -> None:
    raw = ["manifest.json", "README.txt", "password.txt", "password.bin", "Stamps",
           "company-stamp.pub.pem", "manifest.json.sig", "R-1-kobe-1.7z.001"]
    assert archive_names(raw, "R-1-kobe-1") == [
        "manifest-2.json", "README-2.txt", "password-2.txt", "password-2.bin", "Stamps-2",
        "company-stamp.pub-2.pem", "manifest.json-2.sig", "R-1-kobe-1.7z-2.001"]


def test_plain_names() -> None:
    assert plain_name("C:\\drawings\\..\\D-1.pdf") == "D-1.pdf"
    assert plain_name("../../etc/passwd") == "passwd"
    assert plain_name("..hidden") == "hidden"
    assert plain_name("...") == "document"
    assert plain_name("con.txt") == "_con.txt" and plain_name("LPT1") == "_LPT1"
    assert plain_name("tab\there?.pdf") == "tab_here_.pdf"
    long = plain_name("図" * 200 + ".pdf")
    assert long.endswith(".pdf") and len(long.encode()) <= NAME_BYTES
    assert archive_names(["図" * 200 + ".pdf"] * 2)[1].endswith("-2.pdf")
