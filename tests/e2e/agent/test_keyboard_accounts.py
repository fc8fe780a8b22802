"""Several accounts on one PC: the broker takes each helper's account from the kernel's peer
credentials, tells a staff account not to capture, and keeps the sessions apart.

Real local accounts (made for the test, removed after) run their peers with setpriv in a real
X session (Xvfb); the peers are the system Python speaking the helper protocol."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.policy import ActivePolicy
from tests.conftest import require, require_tool
from tests.e2e.agent.conftest import wait_until
from tests.e2e.agent.desktop import Desktop
from tests.e2e.agent.test_keyboard_coverage import Broker

pytestmark = pytest.mark.e2e

PUPIL, STAFF, STAFF_GROUP = "sgtest-pupil", "sgtest-staff", "safeguard-staff"
SYSTEM_PYTHON = "/usr/bin/python3"
# Says hello, prints the service's first answer (["capture", on, why]), then waits to be ended.
PEER = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(json.dumps(["hello", {"display": ":0", "session": "x11"}]).encode() + b"\\n")
print(s.makefile().readline().strip(), flush=True)
sys.stdin.read()
"""


@pytest.fixture
def accounts() -> Iterator[None]:
    require(os.geteuid() == 0, "making local accounts needs root")
    require_tool("setpriv")
    require(Path(SYSTEM_PYTHON).exists(), f"{SYSTEM_PYTHON} is not installed")
    made_group = False
    try:
        grp.getgrnam(STAFF_GROUP)
    except KeyError:
        subprocess.run(["groupadd", "--system", STAFF_GROUP], check=True)
        made_group = True
    subprocess.run(["useradd", "--system", "--no-create-home", PUPIL], check=True)
    subprocess.run(["useradd", "--system", "--no-create-home", "-G", STAFF_GROUP, STAFF],
                   check=True)  # fmt: skip
    try:
        yield
    finally:
        for name in (PUPIL, STAFF):
            subprocess.run(["userdel", name], check=False)
        if made_group:
            subprocess.run(["groupdel", STAFF_GROUP], check=False)


@pytest.fixture
def shared_broker(accounts: None, shipped: ActivePolicy) -> Iterator[Broker]:
    # Other accounts must reach the socket: a folder they may enter, not pytest's 0700 one.
    folder = Path(tempfile.mkdtemp(prefix="sgkb-", dir="/tmp"))
    folder.chmod(0o755)
    b = Broker(folder, shipped)
    try:
        yield b
    finally:
        b.close()
        shutil.rmtree(folder, ignore_errors=True)


def _peer_as(account: str, broker: Broker, desktop: Desktop) -> subprocess.Popen[str]:
    user = pwd.getpwnam(account)
    return subprocess.Popen(
        ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups",
         SYSTEM_PYTHON, "-c", PEER, str(broker.path)],
        env={**desktop.env, "HOME": "/"}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, cwd="/",
    )  # fmt: skip


def test_each_helper_is_its_own_account_and_staff_are_not_captured(
    shared_broker: Broker, desktop: Desktop
) -> None:
    pupil = _peer_as(PUPIL, shared_broker, desktop)
    staff = _peer_as(STAFF, shared_broker, desktop)
    try:
        assert pupil.stdout is not None and staff.stdout is not None
        assert json.loads(pupil.stdout.readline())[:2] == ["capture", True]
        told = json.loads(staff.stdout.readline())
        assert told[:2] == ["capture", False] and "keyboard capture off" in told[2]
        kb = shared_broker.broker
        wait_until(lambda: f"{STAFF}:off" in kb.status()[1], 15, "the staff session marked off")
        detail = kb.status()[1]
        assert f"{PUPIL}:connected" in detail  # the account is the uid's, not the helper's word
    finally:
        for peer in (pupil, staff):
            peer.kill()
            peer.communicate()
