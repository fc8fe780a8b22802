"""Windows PnP ids parsed into the same UsbInfo (pure strings; runs on any platform)."""

from __future__ import annotations

import pytest

from agent.usb_devices import judge
from agent.usb_pnp import class_triplet, group_devices, parse_instance_id
from rules.load import load_policy

pytestmark = pytest.mark.unit


def test_agent_usb_pnp_instance_ids_and_classes() -> None:
    key = parse_instance_id("USB\\VID_0951&PID_1666\\MERILOCK-DSL-0001")
    assert key is not None and (key.vendor, key.product, key.interface) == ("0951", "1666", None)
    assert key.instance == "MERILOCK-DSL-0001"
    iface = parse_instance_id("USB\\VID_0951&PID_1666&MI_01\\7&2A1B&0&0001")
    assert iface is not None and iface.interface == "01"
    assert parse_instance_id("HID\\VID_046D&PID_C31C\\x") is None
    assert class_triplet(["USB\\Class_08&SubClass_06&Prot_50", "USB\\Class_08&SubClass_06",
                          "USB\\Class_08"]) == "08:06:50"  # fmt: skip
    assert class_triplet(["USB\\Class_03"]) == "03:00:00"
    assert class_triplet(["USB\\COMPOSITE"]) is None


def test_agent_usb_pnp_rows_grouped_and_judged() -> None:
    rows = [
        {"InstanceId": "USB\\VID_0951&PID_1666\\MERILOCK-DSL-0001", "Status": "OK",
         "CompatibleID": ["USB\\Class_08&SubClass_06&Prot_50"], "FriendlyName": "Merilock"},
        {"InstanceId": "USB\\VID_ABCD&PID_0001\\5&1F&0&3", "Status": "OK",
         "CompatibleID": ["USB\\DevClass_00", "USB\\COMPOSITE"]},
        {"InstanceId": "USB\\VID_ABCD&PID_0001&MI_00\\6&2&0&0000", "Parent":
         "USB\\VID_ABCD&PID_0001\\5&1F&0&3", "CompatibleID": "USB\\Class_08&SubClass_06&Prot_50"},
        {"InstanceId": "USB\\VID_ABCD&PID_0001&MI_01\\6&2&0&0001",
         "CompatibleID": ["USB\\Class_03&SubClass_01&Prot_01"]},
        {"InstanceId": "ACPI\\PNP0303\\0"},
    ]  # fmt: skip
    key, composite = group_devices(rows)
    assert (key.serial, key.interfaces, key.authorized) == ("MERILOCK-DSL-0001", ("08:06:50",),
                                                            True)  # fmt: skip
    assert composite.serial == "" and composite.interfaces == ("03:01:01", "08:06:50")
    policy = load_policy()
    assert judge(policy, key, ["dsl"])[0].action == "allow"
    assert judge(policy, composite, ["dsl"])[0].action == "reject"
