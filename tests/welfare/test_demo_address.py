"""Where the demo is reached: the base URL its links carry, the LAN address, the banner."""

from __future__ import annotations

from typing import Any

import pytest

from welfare import demo_address
from welfare.demo_address import banner, demo_base_url, lan_address, reachable_from_elsewhere

LAN = "192.168.1.20"


def on_lan() -> str:
    return LAN


def no_lan() -> str:
    raise AssertionError("the LAN address was looked up for a specific host")


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("127.0.0.1", 8642, "http://127.0.0.1:8642"),
        ("127.0.0.1", 8000, "http://127.0.0.1:8000"),
        ("localhost", 9000, "http://localhost:9000"),
        ("10.0.0.7", 8000, "http://10.0.0.7:8000"),
        ("::1", 8642, "http://[::1]:8642"),
        ("[fe80::1]", 8642, "http://[fe80::1]:8642"),
    ],
)
def test_without_a_configured_url_links_follow_host_and_port(
    host: str, port: int, expected: str
) -> None:
    assert demo_base_url(host=host, port=port, configured=None, lan=no_lan) == expected


@pytest.mark.parametrize("host", ["0.0.0.0", "::", ""])
def test_listening_everywhere_links_to_the_lan_address(host: str) -> None:
    assert demo_base_url(host=host, port=8642, configured=None, lan=on_lan) == f"http://{LAN}:8642"


def test_a_configured_public_base_url_wins_over_host_and_port() -> None:
    url = demo_base_url(host="0.0.0.0", port=8642, configured="https://demo.example/", lan=no_lan)
    assert url == "https://demo.example"


class FakeUdp:
    """Records what lan_address does with its socket; answers `address` for getsockname."""

    calls: list[tuple[str, Any]] = []

    def __init__(self, address: str | None) -> None:
        self.address = address

    def __call__(self, family: int, kind: int) -> FakeUdp:
        self.calls.append(("socket", (family, kind)))
        return self

    def __enter__(self) -> FakeUdp:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def connect(self, target: tuple[str, int]) -> None:
        self.calls.append(("connect", target))
        if self.address is None:
            raise OSError("Network is unreachable")

    def getsockname(self) -> tuple[str, int]:
        return (self.address or "0.0.0.0", 40000)

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"lan_address used socket.{name}: it must send nothing")


def test_lan_address_reads_the_local_address_of_a_udp_route_without_sending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    fake = FakeUdp(LAN)
    fake.calls = []
    monkeypatch.setattr(demo_address.socket, "socket", fake)
    assert lan_address() == LAN
    assert fake.calls[0] == ("socket", (socket.AF_INET, socket.SOCK_DGRAM))
    assert [name for name, _ in fake.calls] == ["socket", "connect"]  # no send, no sendto


def test_lan_address_falls_back_to_the_host_name_then_to_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeUdp(None)  # no route anywhere
    fake.calls = []
    monkeypatch.setattr(demo_address.socket, "socket", fake)
    monkeypatch.setattr(demo_address.socket, "gethostname", lambda: "box")
    monkeypatch.setattr(demo_address.socket, "gethostbyname", lambda name: "10.1.2.3")
    assert lan_address() == "10.1.2.3"
    # Debian maps the host name to 127.0.1.1: not reachable from a phone.
    monkeypatch.setattr(demo_address.socket, "gethostbyname", lambda name: "127.0.1.1")
    assert lan_address() == "127.0.0.1"


@pytest.mark.parametrize(
    ("url", "reachable"),
    [
        ("http://127.0.0.1:8000", False),
        ("http://localhost:8000", False),
        ("http://[::1]:8000", False),
        (f"http://{LAN}:8642", True),
        ("https://demo.example", True),
    ],
)
def test_reachable_from_elsewhere(url: str, reachable: bool) -> None:
    assert reachable_from_elsewhere(url) is reachable


def banner_for(base_url: str) -> str:
    return banner(
        site_name="Demo site",
        created=True,
        database_url="sqlite:///./welfare.db",
        channel="console",
        base_url=base_url,
        users=[("guard", "guard-pass", "guard")],
    )


def test_the_banner_names_the_url_and_draws_a_qr_code_only_for_a_phone_to_reach() -> None:
    local = banner_for("http://127.0.0.1:8642")
    assert "http://127.0.0.1:8642/" in local and "http://127.0.0.1:8642/guard" in local
    assert "--host 0.0.0.0" in local and "█" not in local

    lan = banner_for(f"http://{LAN}:8642")
    assert f"http://{LAN}:8642/guard" in lan and "scan with a phone" in lan
    assert "█" in lan and "--host 0.0.0.0" not in lan
