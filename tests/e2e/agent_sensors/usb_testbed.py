"""A umockdev testbed driven over stdin/stdout (JSON lines). Run with the SYSTEM python under
umockdev-wrapper (Debian's python3-gi and gir1.2-umockdev-1.0), not in the venv:

    umockdev-wrapper /usr/bin/python3 usb_testbed.py

Commands: add (a usb_device with attributes, properties, interface children; sends add for
each, then bind), start (a child process, e.g. the sensor in the venv, which inherits the
testbed through LD_PRELOAD and UMOCKDEV_DIR), read (a sysfs attribute as the child left it),
remove (remove uevent, then the device is gone), stop.
"""

import json
import subprocess
import sys
from pathlib import Path

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402  (after require_version, as gi needs)


def _flat(mapping):
    out = []
    for key, value in mapping.items():
        out += [key, value]
    return out


def main():
    bed = UMockdev.Testbed.new()
    root = bed.get_root_dir()
    child = None
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        reply = {"ok": True}
        if op == "add":
            attrs = {k: v for k, v in cmd["attrs"].items() if k != "descriptors"}
            props = {"DEVTYPE": "usb_device", **cmd.get("props", {})}
            path = bed.add_device("usb", cmd["name"], None, _flat(attrs), _flat(props))
            if "descriptors" in cmd["attrs"]:
                blob = bytes.fromhex(cmd["attrs"]["descriptors"])
                bed.set_attribute_binary(path, "descriptors", blob)
            for iface in cmd.get("interfaces", []):
                bed.add_device("usb", iface["name"], path, _flat(iface["attrs"]),
                               ["DEVTYPE", "usb_interface"])
            bed.uevent(path, "bind")
            reply["path"] = path
        elif op == "start":
            with Path(cmd["out"]).open("ab") as out, Path(cmd["err"]).open("ab") as err:
                child = subprocess.Popen(cmd["argv"], stdout=out, stderr=err, cwd=cmd.get("cwd"))
            reply["pid"] = child.pid
        elif op == "read":
            reply["value"] = Path(root + cmd["path"], cmd["attr"]).read_text()
        elif op == "remove":
            bed.uevent(cmd["path"], "remove")
            bed.remove_device(cmd["path"])
        elif op == "stop":
            break
        else:
            reply = {"ok": False, "error": f"unknown op {op}"}
        print(json.dumps(reply), flush=True)
    if child is not None:
        child.terminate()
        child.wait(10)
    print(json.dumps({"ok": True, "stopped": True}), flush=True)


if __name__ == "__main__":
    main()
