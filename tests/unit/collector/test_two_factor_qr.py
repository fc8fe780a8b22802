"""The two-factor setup link as a QR code: the code segno draws encodes the URI as given (read
back from segno's own matrix for the same text would be circular, so the SVG is checked for
what a phone needs: a square symbol of the version the URI's length needs, nothing else)."""

from __future__ import annotations

import re

import pytest
import segno

from collector import two_factor

pytestmark = pytest.mark.unit


def test_the_setup_link_is_drawn_as_an_svg_qr_code_with_no_script() -> None:
    uri = two_factor.uri(two_factor.new_secret(), "dana.lead")
    svg = two_factor.qr_svg(uri)
    assert svg.startswith("<svg") and 'class="totp-qr"' in svg
    assert "<script" not in svg and "href" not in svg
    version = segno.make(uri, error="m").version
    modules = 17 + 4 * int(version) + 2 * 4  # the symbol and its quiet zone
    size = re.search(r'width="(\d+)" height="(\d+)"', svg)
    assert size and int(size.group(1)) == int(size.group(2)) == modules * 4
