"""Publishing a 2 GB document keeps the process under 300 MB peak RSS (SPEC 8: "memory
does not grow with the size of the documents").

The whole publish path runs in a subprocess with the real daemon objects: the case's
document is stamped (hashed and signed), the delivery is built (archive, volume hashes,
manifest), sealed, fsynced and moved into the partner's folder. The child reports its
VmHWM (the peak of its own address space). The document is random 1 MiB blocks, so its
bytes really pass through every stage; holding one volume would already break the limit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

MIB = 1024 * 1024
BIG = 2048 * MIB
LIMIT_KB = 300 * 1000

CHILD = r"""
import hashlib, json, os, sys
from pathlib import Path
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from daemon.app import App
from daemon.cases.workflow import NewRequest, StoredDocument
from daemon.directory.lookup import member
from daemon.routing.templates import Step
from daemon.workqueue.queue import WorkQueue
from tests.support import free_port, make_config

root, size = Path(sys.argv[1]), int(sys.argv[2])
key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
partners = root / "partners"
partners.mkdir()
(partners / "p.pub.pem").write_bytes(key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
share = root / "share"
(partners / "p.toml").write_text(f'''
name = "big-partner"
title = "Big Partner"
emails = ["big@partner.example"]
locale = "en"
public_key_file = "p.pub.pem"
folder = "{share}"
folder_owner = "self"
folder_group = "self"
folder_mode = "0750"
case_types = ["design_release"]
max_delivery_mb = 4096
volume_mb = 256
retention_days = 7
''')
cfg = make_config(root, f"sqlite:///{root / 'r.db'}", None, free_port(),
                  publication={"partners_dir": str(partners),
                               "transmission": str(root / "transmission")},
                  smtp={"enabled": False})
app = App(cfg)
app.prepare()
blob = root / "blob.tmp"
h = hashlib.sha256()
rnd = open("/dev/urandom", "rb")
with open(blob, "wb") as f:
    for _ in range(size // (1 << 20)):
        block = rnd.read(1 << 20)
        h.update(block)
        f.write(block)
sha = h.hexdigest()
dest = app.workflow.blobs.path_for(sha)
dest.parent.mkdir(parents=True, exist_ok=True)
os.replace(blob, dest)
with app.store.transaction() as s:
    tanaka = member(s, "tanaka")
    case = app.workflow.open_case(s, NewRequest(
        requester=tanaka, case_type=app.types.get("design_release"), title="Big drawing",
        fields={"document_number": "D-1", "revision": "A", "summary": "big",
                "document_class": "drawing"},
        documents=(StoredDocument("big.bin", "application/octet-stream", size, sha),)))
    assert app.publisher.at_step(s, case, Step(name="publish", resolver="system",
                                               action="publish",
                                               partners=("big-partner",)), tanaka)
item = app.queue.claim("publication")
app.delivery_builder.process(item)
status = open("/proc/self/status").read()
hwm = int(next(l for l in status.splitlines() if l.startswith("VmHWM")).split()[1])
[delivery] = os.listdir(share)
vols = sorted(p for p in os.listdir(share / delivery) if ".7z." in p)
print(json.dumps({"hwm_kb": hwm, "delivery": delivery, "volumes": vols,
                  "bytes": sum((share / delivery / v).stat().st_size for v in vols)}))
"""


def test_publishing_two_gigabytes_stays_under_300_mb(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    if free < 3 * BIG + 512 * MIB:
        pytest.skip(f"needs {3 * BIG // MIB} MiB free disk, has {free // MIB}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), str(BIG)],
                             capture_output=True, text=True, env=env, timeout=900,
                             cwd=ROOT, check=False)
        assert out.returncode == 0, out.stderr[-3000:]
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"publish 2 GiB: peak RSS {result['hwm_kb'] // 1024} MiB")
        assert result["hwm_kb"] < LIMIT_KB, result
        assert len(result["volumes"]) == 9  # 2 GiB and the header in 256 MiB volumes
        assert result["bytes"] >= BIG
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
