"""``knet up``'s loopback exposure: a running cluster exposed to real tools on 127.0.0.0/8.

    plan       pure: loopback address book, outside-client addresses, MetalLB-style announcer,
               the wanted listener set
    loop       BootWarpLoop: boot on virtual time, then real time
    relay      real socket ↔ fabric byte relays (TCP half-close aware, UDP flows)
    loopback   Loopback(rt): NodePort / LoadBalancer / ingress / DNS listeners, address table
    control    ControlServer: HTTP/JSON control endpoint; state file; client helpers
    watch      Watcher: kubectl-apply-like re-apply of changed files
    session    UpOptions, up(opts) -> exit code
"""

from knet.expose.loopback import Loopback
from knet.expose.plan import AddressBook, Target, announcer, outside_ips
from knet.expose.session import UpOptions, up

__all__ = ["AddressBook", "Loopback", "Target", "UpOptions", "announcer", "outside_ips", "up"]
