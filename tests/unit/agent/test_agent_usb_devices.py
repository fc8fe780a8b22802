"""Pure USB parsing and decisions: sysfs bytes in, UsbInfo, decisions and events out."""

from __future__ import annotations

import pytest

from agent.usb_devices import (
    UsbInfo,
    decision_event,
    descriptor_interfaces,
    device_row,
    format_devices,
    hex_id,
    interface_triplet,
    judge,
    parse_device,
    parse_product_env,
    removal_event,
)
from protos import events_pb2
from rules.load import load_policy

pytestmark = pytest.mark.unit

Action = events_pb2.UsbDecision.Action
POLICY = load_policy()
STORAGE = {"bInterfaceClass": b"08\n", "bInterfaceSubClass": b"06\n",
           "bInterfaceProtocol": b"50\n"}  # fmt: skip
HID = {"bInterfaceClass": b"03\n", "bInterfaceSubClass": b"01\n", "bInterfaceProtocol": b"02\n"}
# device descriptor, config descriptor, interface 0 (08:06:50), two endpoints, then a second
# configuration's interface (03:00:00): the union of both configurations counts.
DEVICE = bytes.fromhex("120100020000004081076755000101020301")
CONFIG1 = bytes.fromhex("0902200001010080 32".replace(" ", ""))
IFACE_STORAGE = bytes.fromhex("090400000208065000")
ENDPOINTS = bytes.fromhex("07058102000200" "07050202000200")
CONFIG2 = bytes.fromhex("090212000102008032")
IFACE_HID = bytes.fromhex("090400000103000000")
DESCRIPTORS = DEVICE + CONFIG1 + IFACE_STORAGE + ENDPOINTS + CONFIG2 + IFACE_HID


def merilock(**attrs: bytes) -> dict[str, bytes | None]:
    base: dict[str, bytes | None] = {
        "idVendor": b"0951\n", "idProduct": b"1666\n", "serial": b"MERILOCK-DSL-0001\n",
        "manufacturer": b"Merilock\n", "product": b"Secure Key\n", "bNumInterfaces": b" 1\n",
        "authorized": b"1\n", "bDeviceClass": b"00\n",
    }  # fmt: skip
    base.update(attrs)
    return base


def test_agent_usb_sysfs_values_are_parsed_from_bytes() -> None:
    assert hex_id(b"0951\n") == "0951"
    assert hex_id(b"951") == "0951"
    assert hex_id(b"ZZZZ") == "" and hex_id(None) == "" and hex_id(b"123456") == ""
    assert interface_triplet(STORAGE) == "08:06:50"
    assert interface_triplet({"bInterfaceClass": b"ff"}) == "ff:00:00"
    assert interface_triplet({}) is None
    assert parse_product_env("951/1666/100") == ("0951", "1666")
    assert parse_product_env("") == ("", "")


def test_agent_usb_device_with_interface_children() -> None:
    info = parse_device("/sys/devices/1-1", merilock(), [STORAGE])
    assert info == UsbInfo("/sys/devices/1-1", "0951", "1666", "MERILOCK-DSL-0001", "Merilock",
                           "Secure Key", "00", ("08:06:50",), 1, True)  # fmt: skip
    assert info.storage and info.complete
    partial = parse_device("/p", merilock(bNumInterfaces=b" 2\n"), [STORAGE])
    assert not partial.complete
    assert parse_device("/p", merilock(bNumInterfaces=b""), []).complete is False
    bad = parse_device("/p", merilock(serial=b"\xff\xfeX\x00", authorized=b"weird"), [])
    assert bad.serial == "\ufffd\ufffdX" and bad.authorized is None


def test_agent_usb_descriptors_blob_gives_every_interface() -> None:
    assert descriptor_interfaces(DESCRIPTORS) == ("03:00:00", "08:06:50")
    info = parse_device("/p", merilock(descriptors=DESCRIPTORS), [])
    assert info.interfaces == ("03:00:00", "08:06:50") and info.complete
    assert descriptor_interfaces(b"") == ()
    assert descriptor_interfaces(b"\x00" * 40) == ()  # zero lengths: stops, no endless loop
    assert descriptor_interfaces(DESCRIPTORS[:32]) == ()  # truncated inside the interface


@pytest.mark.parametrize(
    ("attrs", "ifaces", "accounts", "action", "rule"),
    [
        ({}, [STORAGE], ["dsl"], "allow", "Merilock encrypted key (DSL)"),
        ({}, [STORAGE], ["pupil", "deputy-dsl"], "allow", "Merilock encrypted key (DSL)"),
        ({}, [STORAGE], ["pupil"], "block", "Merilock encrypted key (DSL)"),
        ({}, [STORAGE], [], "block", "Merilock encrypted key (DSL)"),
        ({"idVendor": b"1234"}, [STORAGE], ["dsl"], "block", ""),
        ({"serial": b"MERILOCK-DSL-9999"}, [STORAGE], ["dsl"], "block", ""),
        ({}, [STORAGE, HID], ["dsl"], "reject", ""),
        ({"idVendor": b"046d"}, [HID], [], "allow", ""),
    ],
)
def test_agent_usb_judge(attrs: dict[str, bytes], ifaces: list[dict[str, bytes]],
                         accounts: list[str], action: str, rule: str) -> None:  # fmt: skip
    info = parse_device("/p", merilock(**attrs), ifaces)
    decision, account = judge(POLICY, info, accounts)
    assert (decision.action, decision.rule) == (action, rule)
    if action == "allow" and rule:
        assert account in ("dsl", "deputy-dsl")


def test_agent_usb_events_carry_ids_and_severity() -> None:
    info = parse_device("/sys/devices/1-1", merilock(), [STORAGE])
    blocked, _ = judge(POLICY, info, [])
    event = decision_event(info, blocked, "pupil")
    assert event.usb.action == Action.INSERTED_BLOCKED and event.severity == 3
    assert (event.usb.vendor_id, event.usb.product_id, event.usb.serial) == (
        "0951", "1666", "MERILOCK-DSL-0001")
    assert list(event.usb.interfaces) == ["08:06:50"] and event.account == "pupil"
    allowed, who = judge(POLICY, info, ["dsl"])
    assert decision_event(info, allowed, who).severity == 1  # storage allowed: for the audit
    bad = parse_device("/p", merilock(), [STORAGE, HID])
    assert decision_event(bad, judge(POLICY, bad, [])[0], "").severity == 4
    kb = parse_device("/p", merilock(idVendor=b"046d"), [HID])
    assert decision_event(kb, judge(POLICY, kb, [])[0], "").severity == 0
    assert removal_event(info, "").usb.action == Action.REMOVED


def test_agent_usb_list_rows_and_table() -> None:
    key = parse_device("/sys/devices/1-1", merilock(serial=b"NEWKEY-01"), [STORAGE])
    kb = parse_device("/sys/devices/1-2", merilock(idVendor=b"046d", serial=b""), [HID])
    rows = [device_row(POLICY, key, ["dsl"]), device_row(POLICY, kb, [])]
    assert rows[0]["id"] == "0951:1666" and rows[0]["decision"] == "block"
    assert rows[1]["decision"] == "allow"
    table = format_devices(rows)
    assert "0951:1666" in table and "NEWKEY-01" in table
    assert 'serial = "NEWKEY-01"' in table and 'with_interface = ["08:06:50"]' in table
    assert format_devices([]) == "no USB devices found\n"
