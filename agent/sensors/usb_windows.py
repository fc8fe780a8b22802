"""USB on Windows (NOT yet run on Windows): the same decisions as on Linux, enforced with
Plug and Play.

- Seeing devices: PowerShell's `Get-PnpDevice -PresentOnly` for the USB enumerator (with each
  interface's parent, DEVPKEY_Device_Parent), polled every 2 s: it needs no window for
  WM_DEVICECHANGE and runs in a service. Parsing is pure (`agent/usb_pnp.py`).
- Blocking: `pnputil /disable-device <instance id>` (Windows 10 2004 and later; it calls the
  same configuration manager as SetupAPI's DIF_PROPERTYCHANGE), `pnputil /enable-device` to
  authorise an allowed device found disabled.
- Hardening a school should add (docs/sensors.md): the device installation policy
  (Computer Configuration > Administrative Templates > System > Device Installation
  Restrictions: deny removable disks, allow the Merilock instance ids), so a stick is stopped
  before a driver loads, not two seconds after.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from collections.abc import Callable

import psutil  # type: ignore[import-untyped,unused-ignore]  # stubs: types-psutil (dev)

from agent.sensors import SensorContext, SensorUnavailable
from agent.usb_devices import UsbInfo, decision_event, device_row, judge, removal_event
from agent.usb_pnp import group_devices
from rules.schema import Policy

log = logging.getLogger(__name__)

_QUERY = (
    "$d = Get-PnpDevice -PresentOnly | Where-Object { $_.InstanceId -like 'USB\\VID_*' };"
    "$d | ForEach-Object { [pscustomobject]@{ InstanceId=$_.InstanceId;"
    " CompatibleID=$_.CompatibleID; FriendlyName=$_.FriendlyName;"
    " Manufacturer=$_.Manufacturer; Status=$_.Status;"
    " Parent=(Get-PnpDeviceProperty -InstanceId $_.InstanceId"
    " -KeyName DEVPKEY_Device_Parent).Data } } | ConvertTo-Json -Depth 3"
)


def logged_in_accounts() -> list[str]:
    return sorted({u.name.split("\\")[-1] for u in psutil.users() if u.name})


def present_devices() -> list[UsbInfo]:
    try:
        out = subprocess.run(
            ["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", _QUERY],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise SensorUnavailable(f"Get-PnpDevice: {exc}") from exc
    rows = json.loads(out) if out.strip() else []
    return group_devices(rows if isinstance(rows, list) else [rows])


def set_enabled(instance_id: str, enabled: bool) -> bool:
    verb = "/enable-device" if enabled else "/disable-device"
    result = subprocess.run(["pnputil.exe", verb, instance_id], capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    if result.returncode != 0:
        log.error("usb.pnputil_failed id=%s verb=%s code=%d", instance_id, verb,
                  result.returncode)  # fmt: skip
    return result.returncode == 0


def list_devices(policy: Policy) -> list[dict[str, object]]:
    accounts = logged_in_accounts()
    return [device_row(policy, info, accounts) for info in present_devices()]


class UsbSensor:
    name = "usb"

    def __init__(self, accounts: Callable[[], list[str]] = logged_in_accounts,
                 poll_s: float = 2.0) -> None:  # fmt: skip
        self._accounts = accounts
        self._poll_s = poll_s
        self._stop = threading.Event()
        self.ready = threading.Event()
        self._known: dict[str, tuple[UsbInfo, str, str]] = {}  # id -> (info, action, account)

    def stop(self) -> None:
        self._stop.set()

    def run(self, ctx: SensorContext) -> None:
        under: tuple[object, list[str]] | None = None  # (policy, accounts) last judged under
        while True:
            active, accounts = ctx.policy(), self._accounts()
            # A new policy or a change of who is logged in: judge every device again.
            changed = under is not None and (active is not under[0] or accounts != under[1])
            under = (active, accounts)
            seen = {info.path: info for info in present_devices()}
            for path, info in seen.items():
                known = self._known.get(path)
                if changed or known is None or known[0].interfaces != info.interfaces:
                    decision, account = judge(active.policy, info, accounts)
                    not_enforced = self._enforce(info, decision.action)
                    if known is None or known[1] != decision.action:
                        ctx.emit(decision_event(info, decision, account, not_enforced))
                    self._known[path] = (info, decision.action, account)
            for path in set(self._known) - set(seen):
                info, _, account = self._known.pop(path)
                ctx.emit(removal_event(info, account))
            self.ready.set()
            if self._stop.wait(self._poll_s):
                return

    def _enforce(self, info: UsbInfo, action: str) -> str:
        """Apply a decision; returns why it could not be, or ""."""
        if action == "allow" and info.authorized is False:
            return "" if set_enabled(info.path, True) else "pnputil /enable-device failed"
        if action != "allow" and info.authorized is not False:
            return "" if set_enabled(info.path, False) else "pnputil /disable-device failed"
        return ""
