"""Where the demo is reached: the public base URL its links carry, and the banner that shows it.

Tag labels, calendar feeds and the links in SMS are built on `WELFARE_PUBLIC_BASE_URL`. Set, it
wins. Unset, the demo builds it from `--host` and `--port`, so `welfare demo --port 8642` issues
links on port 8642. `--host 0.0.0.0` (or `::`) listens on every interface; a link to "0.0.0.0"
opens nothing on a phone, so the demo puts the machine's address on the local network in its
place and prints a QR code of the guard's app for a phone on the same network to scan.

Finding that address sends nothing: `connect` on a UDP socket only asks the kernel which local
address it would route from; no packet leaves until something is sent.
"""

from __future__ import annotations

import io
import ipaddress
import socket
from collections.abc import Callable

import qrcode

ANY_ADDRESS = frozenset({"0.0.0.0", "::", ""})
LOOPBACK = "127.0.0.1"
# Private addresses to "route towards" when asking which local address faces the network.
_PROBES = ("10.255.255.255", "192.168.255.255", "172.31.255.255")


def _usable(address: str) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return not (parsed.is_loopback or parsed.is_unspecified or parsed.is_link_local)


def lan_address() -> str:
    """This machine's IPv4 address on the local network, or 127.0.0.1 when there is none."""
    for probe in _PROBES:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.connect((probe, 9))  # UDP: sets the route, sends nothing
                address = sock.getsockname()[0]
        except OSError:
            continue
        if _usable(address):
            return address
    try:
        address = socket.gethostbyname(socket.gethostname())
    except OSError:
        address = ""
    return address if _usable(address) else LOOPBACK


def demo_base_url(
    *,
    host: str,
    port: int,
    configured: str | None,
    lan: Callable[[], str] | None = None,
) -> str:
    """The demo's public base URL: `configured` (WELFARE_PUBLIC_BASE_URL) when set; otherwise
    http on `host` and `port`, with the LAN address (`lan`, default `lan_address`) standing in
    for "listen everywhere"."""
    if configured:
        return configured.rstrip("/")
    name = host.strip().strip("[]")
    if name in ANY_ADDRESS:
        name = (lan or lan_address)()
    try:
        if ipaddress.ip_address(name).version == 6:
            name = f"[{name}]"
    except ValueError:
        pass  # a host name such as "localhost"
    return f"http://{name}:{port}"


def reachable_from_elsewhere(base_url: str) -> bool:
    """Whether another device could open `base_url` (not this machine's loopback)."""
    host = base_url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def qr_text(url: str) -> str:
    """`url` as a QR code drawn with block characters, light on dark (a dark terminal)."""
    code = qrcode.QRCode(border=2)
    code.add_data(url)
    out = io.StringIO()
    code.print_ascii(out=out, invert=True)
    return out.getvalue()


def banner(
    *,
    site_name: str,
    created: bool,
    database_url: str,
    channel: str,
    base_url: str,
    users: list[tuple[str, str, str]],
) -> str:
    """What `welfare demo` prints before serving."""
    lines = [
        "",
        f"  welfare demo: {'created' if created else 'reusing'} {site_name}",
        f"  database:     {database_url}",
        f"  notifications: {channel} channel",
        f"  open:         {base_url}/  (sign in; the API is at /docs)",
        f"  guard app:    {base_url}/guard",
    ]
    if not reachable_from_elsewhere(base_url):
        lines.append("                (this machine only: --host 0.0.0.0 to open it on a phone)")
    lines.append("  demo users (username / password / role):")
    lines += [f"    {name:<8} {password:<20} {role}" for name, password, role in users]
    if reachable_from_elsewhere(base_url):
        lines += ["", "  scan with a phone on the same network for the guard app:", ""]
        lines += ["  " + row for row in qr_text(f"{base_url}/guard").splitlines()]
    lines.append("")
    return "\n".join(lines)
