"""Behind a reverse proxy every request comes from the proxy's address. Named in console.toml
as trusted, its X-Forwarded-For is believed, so a pupil's failures count against the pupil's
own PC; not named, the header is ignored (anyone could write any address into it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.console.support import Client, ConsoleHarness

pytestmark = pytest.mark.integration


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[ConsoleHarness]:
    harness = ConsoleHarness(tmp_path / "collector")
    (harness.data_dir / "console.toml").write_text(
        '[console]\ntrusted_proxies = ["127.0.0.1"]\n'
    )
    harness.start()
    harness.add_staff()
    try:
        yield harness
    finally:
        harness.stop()


def via(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": f"203.0.113.9, {address}"}  # the pupil's own guess, then theirs


def login(
    c: Client, who: str, address: str, password: str = "wrong password", code: str = ""  # noqa: S107
) -> int:
    c.get("/login")
    form = {"username": who, "password": password, "code": code}
    return c.post("/login", form, headers=via(address))[0]


def test_a_trusted_proxy_names_each_pc(proxied: ConsoleHarness) -> None:
    from tests.integration.console.support import PASSWORD

    pupil = Client(proxied.url)
    for _ in range(5):
        assert login(pupil, "gov", "10.0.0.66") == 401
    assert login(pupil, "gov", "10.0.0.66") == 429  # the pupil's PC is slowed
    # The governor at another PC is not (nor needs a second factor for that).
    gov = Client(proxied.url)
    gov.get("/login")
    status, page = gov.post("/login", {"username": "gov", "password": PASSWORD},
                            headers=via("10.0.0.7"))  # fmt: skip
    assert status == 200 and "Governors' summary" in page


def test_an_untrusted_sender_cannot_choose_its_address(console: ConsoleHarness) -> None:
    from tests.integration.console.support import PASSWORD

    pupil = Client(console.url)
    for n in range(5):
        assert login(pupil, "gov", f"10.0.0.{n}") == 401  # a new "address" each time: ignored
    gov = Client(console.url)
    gov.get("/login")
    status, _ = gov.post("/login", {"username": "gov", "password": PASSWORD},
                         headers=via("10.0.0.7"))  # fmt: skip
    assert status == 429  # all counted against 127.0.0.1, where they came from


def test_a_bad_proxy_setting_is_a_plain_error(tmp_path: Path) -> None:
    from collector.console import config
    from collector.paths import DataDir

    (tmp_path / "console.toml").write_text('[console]\ntrusted_proxies = ["the proxy"]\n')
    with pytest.raises(ValueError, match="'the proxy' is not an IP address"):
        config.load(DataDir(tmp_path))
