"""USB on Linux: udev netlink events in, the sysfs `authorized` attribute written, events out.

On start every device already plugged in is judged; then each `add` (and `bind`, and the
`add` of an interface, which completes the picture of a composite device) is judged as soon
as its interfaces are known, from the `descriptors` blob or the interface children. Blocking
writes `0` to `authorized` (the kernel unbinds the drivers and removes the interfaces);
an allowed device found deauthorized is authorised with `1`. Each insertion, change of
decision and removal is an event; a decision that sysfs refused says so (`not_enforced`).
When the policy or the logged-in accounts change, the devices plugged in are judged again.
Parsing is in `agent/usb_devices.py`; this is the OS loop.

Logging: ids, serials and decisions are logged at INFO (they identify devices, not pupils).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]  # stubs: types-psutil (dev)

from agent.sensors import SensorContext, SensorUnavailable
from agent.usb_devices import (
    DEVICE_ATTRS,
    INTERFACE_ATTRS,
    UsbInfo,
    decision_event,
    judge,
    parse_device,
    parse_product_env,
    removal_event,
)

log = logging.getLogger(__name__)

SETTLE_S = 2.0  # a device whose interfaces never all appear is judged with what is there


def logged_in_accounts() -> list[str]:
    """Accounts with a session on this PC (utmp), for allow rules limited to accounts."""
    return sorted({u.name for u in psutil.users() if u.name})


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:  # absent attribute, or the device went away
        return None


def read_device(sys_path: str) -> UsbInfo | None:
    """The device's attributes and its interface children's, read from sysfs."""
    root = Path(sys_path)
    attrs = {name: _read(root / name) for name in DEVICE_ATTRS}
    if attrs["idVendor"] is None:
        return None
    interfaces = []
    try:
        children = [e for e in os.scandir(root) if ":" in e.name and e.is_dir()]
    except OSError:
        children = []
    for child in children:
        iface = {n: _read(Path(child.path) / n) for n in INTERFACE_ATTRS}
        if all(iface.values()):  # else half-made (absent or empty): its own add follows
            interfaces.append(iface)
    return parse_device(sys_path, attrs, interfaces)


def _is_root_hub(sys_path: str) -> bool:
    return Path(sys_path).name.startswith("usb")


def present_devices() -> Iterator[UsbInfo]:
    """Every USB device plugged in now (root hubs left out)."""
    import pyudev  # type: ignore[import-untyped]  # no stubs published

    context = pyudev.Context()
    for dev in context.list_devices(subsystem="usb", DEVTYPE="usb_device"):
        if _is_root_hub(dev.sys_path):
            continue
        info = read_device(dev.sys_path)
        if info is not None:
            yield info


def set_authorized(sys_path: str, value: bool) -> str:
    """Write the kernel's authorization flag. Returns why the write was refused, or ""."""
    try:
        with Path(sys_path, "authorized").open("w") as f:
            f.write("1" if value else "0")
    except OSError as exc:
        log.error("usb.authorize_failed path=%s value=%d error=%s", sys_path, value, exc)
        return f"could not write {value:d} to {sys_path}/authorized: {exc.strerror or exc}"
    return ""


@dataclass(frozen=True)
class _Known:
    info: UsbInfo
    action: str
    account: str


class UsbSensor:
    name = "usb"

    def __init__(self, accounts: Callable[[], list[str]] = logged_in_accounts,
                 poll_s: float = 0.5, idle_poll_s: float = 2.0) -> None:  # fmt: skip
        self._accounts = accounts
        self._poll_s, self._idle_poll_s = poll_s, idle_poll_s
        self._stop = threading.Event()
        self.ready = threading.Event()  # set once devices present at start are judged
        self._known: dict[str, _Known] = {}
        self._pending: dict[str, float] = {}  # added, interfaces not all visible yet
        self._judged_under: tuple[object, tuple[str, ...]] | None = None  # (policy, accounts)

    def stop(self) -> None:
        self._stop.set()

    def run(self, ctx: SensorContext) -> None:
        try:
            import pyudev

            context = pyudev.Context()
            monitor = pyudev.Monitor.from_netlink(context)
            monitor.filter_by("usb")
            monitor.start()  # before enumerating, so no device slips between the two
        except (ImportError, OSError) as exc:  # no libudev, or no netlink (a container)
            raise SensorUnavailable(f"udev: {exc}") from exc
        for dev in context.list_devices(subsystem="usb", DEVTYPE="usb_device"):
            if not _is_root_hub(dev.sys_path):
                self._judge(ctx, dev.sys_path, final=True)
        log.info("usb.started present=%d", len(self._known))
        self.ready.set()
        while not self._stop.is_set():
            # Quick turns only while a device settles; otherwise a device's arrival ends the
            # wait anyway, and a logout or a new policy is judged again within idle_poll_s.
            dev = monitor.poll(timeout=self._poll_s if self._pending else self._idle_poll_s)
            if dev is not None:
                self._handle(ctx, dev)
            self.rejudge_if_changed(ctx)
            now = time.monotonic()
            for path, since in list(self._pending.items()):
                if now - since >= SETTLE_S:
                    self._judge(ctx, path, final=True)

    def _handle(self, ctx: SensorContext, dev: Any) -> None:
        action, kind, path = dev.action, dev.device_type, dev.sys_path
        if kind == "usb_interface" and action in ("add", "bind"):
            parent = str(Path(path).parent)
            if parent in self._pending or parent in self._known:
                self._judge(ctx, parent, final=False)
        elif kind == "usb_device" and not _is_root_hub(path):
            if action == "add":
                self._judge(ctx, path, final=False)
            elif action == "bind":
                self._judge(ctx, path, final=True)
            elif action == "remove":
                self._removed(ctx, path, str(dev.properties.get("PRODUCT", "")))

    def rejudge_if_changed(self, ctx: SensorContext) -> None:
        """Judge what is plugged in again when the policy or the logged-in accounts change:
        a Merilock key allowed while a DSL was logged in is blocked when the DSL logs out,
        and a key struck from the allowlist is blocked without being unplugged."""
        active, accounts = ctx.policy(), tuple(self._accounts())
        under = (active, accounts)
        if self._judged_under is None:
            self._judged_under = under
            return
        if under[1] == self._judged_under[1] and under[0] is self._judged_under[0]:
            return
        self._judged_under = under
        for path, known in list(self._known.items()):
            decision, account = judge(active.policy, known.info, accounts)
            if decision.action == known.action:
                continue
            now = read_device(path)  # authorized as it is now, not as first seen
            if now is None:
                continue  # unplugged meanwhile: its removal event follows
            info = replace(known.info, authorized=now.authorized)
            self._known[path] = _Known(known.info, decision.action, account)
            not_enforced = self._enforce(info, decision.action)
            log.info("usb.rejudged path=%s id=%s:%s was=%s action=%s rule=%r", path,
                     info.vendor, info.product_id, known.action, decision.action,
                     decision.rule)  # fmt: skip
            ctx.emit(decision_event(known.info, decision, account, not_enforced))

    def _judge(self, ctx: SensorContext, path: str, final: bool) -> None:
        info = read_device(path)
        if info is None:
            self._pending.pop(path, None)
            return
        prev = self._known.get(path)
        if prev is not None:
            union = tuple(sorted(set(prev.info.interfaces) | set(info.interfaces)))
            if union == prev.info.interfaces:  # nothing new (e.g. our own deauthorization)
                self._enforce(info, prev.action)
                return
            info = replace(info, interfaces=union)
        elif not info.complete and not final:
            self._pending.setdefault(path, time.monotonic())
            return
        self._pending.pop(path, None)
        decision, account = judge(ctx.policy().policy, info, self._accounts())
        not_enforced = self._enforce(info, decision.action)
        self._known[path] = _Known(info, decision.action, account)
        log.info("usb.decided path=%s id=%s:%s serial=%s interfaces=%s action=%s rule=%r",
                 path, info.vendor, info.product_id, info.serial, ",".join(info.interfaces),
                 decision.action, decision.rule)  # fmt: skip
        if prev is None or prev.action != decision.action:
            ctx.emit(decision_event(info, decision, account, not_enforced))

    def _enforce(self, info: UsbInfo, action: str) -> str:
        """Apply a decision; returns why it could not be, or ""."""
        if action == "allow" and info.authorized is False:
            return set_authorized(info.path, True)
        if action != "allow" and info.authorized is not False:
            return set_authorized(info.path, False)
        return ""

    def _removed(self, ctx: SensorContext, path: str, product_env: str) -> None:
        self._pending.pop(path, None)
        known = self._known.pop(path, None)
        if known is not None:
            info, account = known.info, known.account
        else:
            vendor, product = parse_product_env(product_env)
            info, account = UsbInfo(path, vendor, product), ""
        log.info("usb.removed path=%s id=%s:%s", path, info.vendor, info.product_id)
        ctx.emit(removal_event(info, account))
