"""The USB allowlist, evaluated the way USBGuard does: first matching rule wins.

Pure: a ``UsbDevice`` description in, a ``UsbDecision`` out; the agent's sensor does the
sysfs part. Fixed safety rules come before the list so no list edit can weaken them.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from rules.schema import UsbRule

STORAGE = "08"
HID = "03"
# CDC comms/data, wireless controllers (Bluetooth, RNDIS), and misc-class RNDIS.
NETWORK = ("02", "0a", "e0")


@dataclass(frozen=True)
class UsbDevice:
    vendor: str  # four hex digits
    product: str
    serial: str = ""
    interfaces: tuple[str, ...] = ()  # "cc:ss:pp" in hex, e.g. "08:06:50"
    account: str = ""  # the signed-in account, for rules limited to accounts


@dataclass(frozen=True)
class UsbDecision:
    action: str  # allow, block or reject
    reason: str
    rule: str = ""  # the rule's name, or "" for a built-in decision


def _classes(dev: UsbDevice) -> set[str]:
    return {i.split(":", 1)[0].lower() for i in dev.interfaces}


def _iface_match(pattern: str, ifaces: tuple[str, ...]) -> bool:
    return any(fnmatchcase(i.lower(), pattern) for i in ifaces)


def _matches(rule: UsbRule, dev: UsbDevice) -> bool:
    if rule.vendor != "*" and rule.vendor != dev.vendor.lower():
        return False
    if rule.product != "*" and rule.product != dev.product.lower():
        return False
    if rule.serial is not None and rule.serial != dev.serial:
        return False
    return all(_iface_match(p, dev.interfaces) for p in rule.with_interface)


def decide(rules: tuple[UsbRule, ...], dev: UsbDevice) -> UsbDecision:
    classes = _classes(dev)
    storage = STORAGE in classes
    if storage and (HID in classes or classes.intersection(NETWORK) or
                    _iface_match("ef:04:*", dev.interfaces)):  # fmt: skip
        return UsbDecision("reject", "storage device that also acts as keyboard or network "
                           "(BadUSB); rejected whatever its ids")  # fmt: skip
    if classes and classes <= {HID}:
        return UsbDecision("allow", "keyboards, mice and other HID devices are never blocked")
    for rule in rules:
        if not _matches(rule, dev):
            continue
        if rule.action == "allow" and rule.accounts and dev.account not in rule.accounts:
            return UsbDecision("block", f"allowed only for {', '.join(rule.accounts)}", rule.name)
        return UsbDecision(rule.action, rule.why, rule.name)
    if storage:
        return UsbDecision("block", "USB storage is blocked unless the allowlist names it")
    return UsbDecision("allow", "not storage and no rule matched")
