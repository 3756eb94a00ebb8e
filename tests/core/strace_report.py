"""Reads an `strace -f` trace of the portal and says what left (or tried to leave) the machine, per process.

The trace is written with `STRACE_OPTIONS`: every connect/sendto/sendmsg/sendmmsg with its socket decoded
(`-yy`: the peer address of a connected socket, the path of a unix socket), plus execve and the clone family
so that each pid can be named after the program it runs (the web process, the Celery worker and its pool
processes, PostgreSQL and its backends).

What counts:
- outbound: a connect, or a send with a destination, to an AF_INET/AF_INET6 address that is neither
  loopback nor unspecified (0.0.0.0 and :: reach this host on Linux); also a send on a socket whose
  decoded peer is such an address;
- DNS: anything sent or connected to port 53 at any address, loopback included (a local resolver such as
  systemd-resolved's 127.0.0.53 forwards the question), and connects to the unix sockets of local daemons
  that resolve host names (systemd-resolved's varlink socket, avahi for mDNS). The queried names are decoded
  from the packets when strace shows them.
Not counted: reading /etc/resolv.conf (it asks nobody; the query that would follow it is counted), and
connects to nscd's socket (glibc asks nscd for users and groups as well; where nscd runs, it would do host
lookups out of the trace's sight: the run inside a network namespace covers that case).
"""

from __future__ import annotations

import ast
import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

TRACED_SYSCALLS = ("connect", "sendto", "sendmsg", "sendmmsg", "execve", "clone", "clone3", "fork", "vfork")
STRACE_OPTIONS = [
    "-f",  # follow every child: worker, its pool, PostgreSQL, helpers
    "--seccomp-bpf",  # stop only at the traced calls, so the portal runs at nearly full speed
    "-qq",
    "-tt",
    "-yy",
    "-Y",
    "-s",
    "256",
    "-e",
    "signal=none",
    "-e",
    "trace=" + ",".join(TRACED_SYSCALLS),
]
DNS_PORT = 53
# Sockets of local daemons that only ever look up host names (nss-resolve, nss-mdns). nscd's socket is not one:
# glibc asks it for users and groups too (initdb, getpass), so a connect to it says nothing about DNS.
NAME_SERVICE_SOCKETS = (
    "/run/systemd/resolve/io.systemd.Resolve",
    "/run/avahi-daemon/socket",
    "/var/run/avahi-daemon/socket",
)
DNS_TYPES = {1: "A", 28: "AAAA", 5: "CNAME", 12: "PTR", 15: "MX", 16: "TXT", 33: "SRV", 65: "HTTPS"}

_LINE = re.compile(r"^(?P<pid>\d+)(?:<(?P<comm>[^>]*)>)?\s+(?P<time>\d\d:\d\d:\d\d\.\d+)\s+(?P<rest>.*)$")
_CALL = re.compile(r"^(?P<name>\w+)\((?P<args>.*)\)\s+=\s+(?P<result>-?\d+|\?)(?:<[^>]*>)?(?P<tail>.*)$")
_RESUMED = re.compile(r"^<\.\.\. (?P<name>\w+) resumed>(?P<rest>.*)$")
_INET = re.compile(r'sa_family=AF_INET, sin_port=htons\((?P<port>\d+)\), sin_addr=inet_addr\("(?P<address>[^"]+)"\)')
_INET6 = re.compile(
    r'sa_family=AF_INET6, sin6_port=htons\((?P<port>\d+)\),.*?inet_pton\(AF_INET6, "(?P<address>[^"]+)"'
)
_UNIX = re.compile(r'sa_family=AF_UNIX, sun_path=(?P<abstract>@?)"(?P<path>(?:[^"\\]|\\.)*)"')
_FD_PEER = re.compile(r"^\d+<(?P<proto>TCP|UDP|TCPv6|UDPv6):\[.*?->(?P<peer>.*?)\]>")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ARGV = re.compile(r'^execve\("(?P<path>(?:[^"\\]|\\.)*)", \[(?P<argv>[^\]]*)\]')


@dataclass(frozen=True)
class Destination:
    family: str  # "inet", "inet6" or "unix"
    address: str  # IP address, or the unix socket path
    port: int | None = None

    @property
    def is_local(self) -> bool:
        if self.family == "unix":
            return True
        ip = ipaddress.ip_address(self.address.split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return ip.is_loopback or ip.is_unspecified

    @property
    def is_dns(self) -> bool:
        if self.family == "unix":
            return self.address in NAME_SERVICE_SOCKETS
        return self.port == DNS_PORT

    def __str__(self) -> str:
        if self.family == "unix":
            return f"unix:{self.address}"
        host = f"[{self.address}]" if self.family == "inet6" else self.address
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class Finding:
    kinds: tuple[str, ...]  # "outbound", "dns" or both
    pid: int  # the thread that made the call
    process_pid: int  # its process (thread group)
    process: str
    time: str
    syscall: str
    destination: Destination
    queries: tuple[str, ...] = ()  # decoded DNS questions, e.g. "A mobile.events.data.microsoft.com"
    succeeded: bool = True

    def __str__(self) -> str:
        what = f" asking {', '.join(self.queries)}" if self.queries else ""
        outcome = "" if self.succeeded else " (failed)"
        thread = f" (thread {self.pid})" if self.pid != self.process_pid else ""
        return (
            f"{self.time} {'+'.join(self.kinds)}: pid {self.process_pid}{thread} [{self.process}] "
            f"{self.syscall} to {self.destination}{what}{outcome}"
        )


@dataclass
class ProcessTally:
    label: str
    pids: set[int] = field(default_factory=set)
    loopback_connections: int = 0
    unix_connections: int = 0
    outbound_connections: int = 0
    dns_queries: int = 0


@dataclass
class TraceReport:
    findings: list[Finding]
    tallies: dict[str, ProcessTally]
    lines: int
    programs: list[str]

    @property
    def outbound(self) -> list[Finding]:
        return [finding for finding in self.findings if "outbound" in finding.kinds]

    @property
    def dns(self) -> list[Finding]:
        return [finding for finding in self.findings if "dns" in finding.kinds]

    def table(self) -> str:
        width = 84
        rows = [f"{'process':<{width}} {'pids':>5} {'loopback':>8} {'unix':>6} {'outbound':>8} {'dns':>5}"]
        for tally in sorted(self.tallies.values(), key=lambda item: min(item.pids)):
            rows.append(
                f"{tally.label[:width]:<{width}} {len(tally.pids):>5} {tally.loopback_connections:>8} "
                f"{tally.unix_connections:>6} {tally.outbound_connections:>8} {tally.dns_queries:>5}"
            )
        return "\n".join(rows)


def _unescape(text: str) -> bytes:
    """strace's C-style string (octal escapes, \\n, \\t, \\", \\\\) back to bytes."""
    try:
        value = ast.literal_eval(f'b"{text}"')
    except (SyntaxError, ValueError):
        return b""
    return value if isinstance(value, bytes) else b""


def dns_questions(payload: bytes) -> list[str]:
    """'TYPE name' of each question in a DNS query packet; [] when it is not one (or strace cut it short)."""
    if len(payload) < 17:
        return []
    count = int.from_bytes(payload[4:6], "big")
    offset = 12
    questions: list[str] = []
    for _ in range(min(count, 8)):
        labels = []
        while offset < len(payload):
            length = payload[offset]
            offset += 1
            if length == 0:
                break
            if length > 63:
                return questions
            labels.append(payload[offset : offset + length].decode("ascii", "replace"))
            offset += length
        if offset + 2 > len(payload):
            break
        query_type = int.from_bytes(payload[offset : offset + 2], "big")
        offset += 4
        questions.append(f"{DNS_TYPES.get(query_type, query_type)} {'.'.join(labels)}")
    return questions


def _sockaddr(text: str) -> Destination | None:
    for pattern, family in ((_INET, "inet"), (_INET6, "inet6")):
        match = pattern.search(text)
        if match:
            return Destination(family, match["address"], int(match["port"]))
    match = _UNIX.search(text)
    if match:
        return Destination("unix", match["abstract"] + _unescape(match["path"]).decode("utf-8", "replace"))
    return None


def _fd_peer(args: str) -> Destination | None:
    match = _FD_PEER.match(args)
    if not match:
        return None
    peer = match["peer"]
    host, _, port = peer.rpartition(":")
    if not port.isdigit():
        return None
    family = "inet6" if match["proto"].endswith("v6") else "inet"
    return Destination(family, host.strip("[]"), int(port))


@dataclass
class _Call:
    pid: int
    comm: str
    time: str
    name: str
    args: str
    result: int | None


def _calls(lines: list[str]) -> list[_Call]:
    """Whole calls, with `<unfinished ...>` halves joined to their `<... resumed>` halves."""
    pending: dict[int, tuple[str, str, str]] = {}
    calls = []
    for raw in lines:
        match = _LINE.match(raw.rstrip("\n"))
        if not match:
            continue
        pid, comm, time, rest = int(match["pid"]), match["comm"] or "", match["time"], match["rest"]
        if rest.endswith("<unfinished ...>"):
            pending[pid] = (comm, time, rest[: -len("<unfinished ...>")].rstrip())
            continue
        resumed = _RESUMED.match(rest)
        if resumed:
            if pid not in pending:
                continue
            comm_before, time, start = pending.pop(pid)
            comm = comm_before or comm
            rest = start + resumed["rest"]
        call = _CALL.match(rest)
        if not call:
            continue
        result = None if call["result"] == "?" else int(call["result"])
        calls.append(_Call(pid, comm, time, call["name"], call["args"], result))
    return calls


def _argv(call: _Call) -> str:
    match = _ARGV.match(f"execve({call.args}")
    if not match:
        return ""
    words = [_unescape(word).decode("utf-8", "replace") for word in _STRING.findall(match["argv"])]
    if words:
        words[0] = words[0].rsplit("/", 1)[-1]  # "python -m celery ...", not the virtualenv's path
    return " ".join(words)


class _Processes:
    """pid -> thread group, and thread group -> the program it runs (own execve, else its parent's, forked)."""

    def __init__(self) -> None:
        self.group: dict[int, int] = {}
        self.parent: dict[int, int] = {}
        self.program: dict[int, str] = {}

    def leader(self, pid: int) -> int:
        return self.group.get(pid, pid)

    def spawned(self, parent: int, child: int, thread: bool) -> None:
        if thread:
            self.group[child] = self.leader(parent)
        else:
            self.parent[child] = self.leader(parent)

    def label(self, pid: int) -> str:
        group = self.leader(pid)
        seen: set[int] = set()
        current, forked = group, False
        while current not in self.program and current in self.parent and current not in seen:
            seen.add(current)
            current, forked = self.parent[current], True
        program = self.program.get(current, "?")
        program = " ".join(program.split())  # one line, even for `python -c "..."`
        return f"(fork of) {program}" if forked else program


def parse_trace(text: str) -> TraceReport:
    lines = text.splitlines()
    calls = _calls(lines)
    processes = _Processes()
    for call in calls:  # first pass: who is who (a child's calls may be printed before its clone returns)
        if call.name in ("clone", "clone3", "fork", "vfork") and call.result and call.result > 0:
            processes.spawned(call.pid, call.result, thread="CLONE_THREAD" in call.args)
        elif call.name == "execve" and call.result == 0:
            # an exec replaces the whole thread group; the pid becomes the group's leader
            processes.group.pop(call.pid, None)
            processes.program[call.pid] = _argv(call) or processes.program.get(call.pid, "?")
    findings: list[Finding] = []
    tallies: dict[str, ProcessTally] = {}
    for call in calls:
        label = processes.label(call.pid)
        tally = tallies.setdefault(label, ProcessTally(label))
        tally.pids.add(processes.leader(call.pid))
        if call.name not in ("connect", "sendto", "sendmsg", "sendmmsg"):
            continue
        destination = _sockaddr(call.args)
        if destination is None and call.name != "connect":
            destination = _fd_peer(call.args)
        if destination is None:
            continue  # netlink, an unconnected unix datagram, a socket strace could not decode
        succeeded = call.result is not None and call.result >= 0
        if call.name == "connect":
            if destination.family == "unix":
                tally.unix_connections += 1
            elif destination.is_local:
                tally.loopback_connections += 1
            else:
                tally.outbound_connections += 1
        kinds: tuple[str, ...] = ()
        queries: tuple[str, ...] = ()
        if destination.is_dns:
            kinds += ("dns",)
            packets = [_unescape(text) for text in _STRING.findall(call.args)]
            queries = tuple(question for packet in packets for question in dns_questions(packet))
            if call.name != "connect" or destination.family == "unix":
                sent = call.result if call.name == "sendmmsg" and call.result and call.result > 0 else 1
                tally.dns_queries += max(sent, len(queries))
        if not destination.is_local:
            kinds += ("outbound",)
        if kinds:
            leader = processes.leader(call.pid)
            findings.append(
                Finding(kinds, call.pid, leader, label, call.time, call.name, destination, queries, succeeded)
            )
    programs = sorted(Counter(processes.program.values()))
    return TraceReport(findings=findings, tallies=tallies, lines=len(lines), programs=programs)


def parse_trace_file(path: Path) -> TraceReport:
    return parse_trace(path.read_text(encoding="utf-8", errors="replace"))
