"""The trace reader of the syscall-level privacy test, on lines in strace 6.1's own format (-f -tt -yy -Y)."""

from __future__ import annotations

from tests.core.strace_report import dns_questions, parse_trace

EXEC_PORTAL = (
    '100<strace> 10:00:00.000001 execve("/venv/bin/python", ["/venv/bin/python", "manage.py", "run"], '
    "0x7ffe /* 9 vars */) = 0"
)
# onnxruntime's uploader thread asking the resolver for the telemetry host (taken from a real trace)
TELEMETRY_THREAD = (
    "100<python> 10:00:01.000000 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|"
    "CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, child_tid=0x7f, parent_tid=0x7f, "
    "exit_signal=0, stack=0x7f, stack_size=0x7fff80, tls=0x7f} => {parent_tid=[101<python>]}, 88) = 101<python>"
)
DNS_CONNECT = (
    "101<python> 10:00:02.000000 connect(8<UDP:[31566]>, {sa_family=AF_INET, sin_port=htons(53), "
    'sin_addr=inet_addr("10.255.255.53")}, 16) = 0'
)
DNS_SEND = (
    '101<python> 10:00:02.000100 sendto(8<UDP:[192.0.2.2:42045->10.255.255.53:53]>, "\\261\\222\\1\\0\\0\\1\\0\\0'
    '\\0\\0\\0\\0\\6mobile\\6events\\4data\\tmicrosoft\\3com\\0\\0\\1\\0\\1", 50, MSG_NOSIGNAL, NULL, 0) = 50'
)


def _trace(*lines: str) -> str:
    return "\n".join([EXEC_PORTAL, *lines]) + "\n"


def test_it_decodes_the_question_of_a_dns_query() -> None:
    packet = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x1c\x00\x01"
    assert dns_questions(packet) == ["AAAA example.com"]
    assert dns_questions(b"not a dns packet") == []


def test_it_reports_a_dns_query_with_the_process_and_the_name_asked() -> None:
    report = parse_trace(_trace(TELEMETRY_THREAD, DNS_CONNECT, DNS_SEND))
    assert len(report.dns) == 2
    described = str(report.dns[1])
    assert "pid 100 (thread 101) [python manage.py run]" in described
    assert "10.255.255.53:53" in described
    assert "A mobile.events.data.microsoft.com" in described
    assert report.tallies["python manage.py run"].dns_queries == 1


def test_it_counts_dns_to_a_loopback_resolver_but_not_as_outbound() -> None:
    line = (
        '100<python> 10:00:02.000000 sendto(3<UDP:[1]>, "\\0224\\1\\0\\0\\1\\0\\0\\0\\0\\0\\0\\7example\\3com\\0'
        '\\0\\1\\0\\1", 29, 0, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("127.0.0.53")}, 16) = 29'
    )
    report = parse_trace(_trace(line))
    assert [finding.queries for finding in report.dns] == [("A example.com",)]
    assert report.outbound == []


def test_it_flags_connections_that_leave_the_machine_over_ipv4_and_ipv6() -> None:
    report = parse_trace(
        _trace(
            "100<python> 10:00:03.000000 connect(5<TCP:[9]>, {sa_family=AF_INET, sin_port=htons(443), "
            'sin_addr=inet_addr("13.107.5.93")}, 16) = -1 EINPROGRESS (Operation now in progress)',
            "100<python> 10:00:03.100000 connect(6<TCPv6:[10]>, {sa_family=AF_INET6, sin6_port=htons(443), "
            'sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2603:1061::1", &sin6_addr), sin6_scope_id=0}, 28) = 0',
        )
    )
    assert [str(finding.destination) for finding in report.outbound] == ["13.107.5.93:443", "[2603:1061::1]:443"]
    assert report.tallies["python manage.py run"].outbound_connections == 2


def test_it_flags_a_send_on_a_socket_connected_elsewhere() -> None:
    line = "100<python> 10:00:03.000000 sendmmsg(4<UDP:[10.0.0.2:5000->198.51.100.7:443]>, [{msg_hdr={}}], 1, 0) = 1"
    report = parse_trace(_trace(line))
    assert [str(finding.destination) for finding in report.outbound] == ["198.51.100.7:443"]


def test_it_lets_loopback_unix_sockets_and_this_host_through() -> None:
    report = parse_trace(
        _trace(
            "100<python> 10:00:04.000000 connect(5<TCP:[1]>, {sa_family=AF_INET, sin_port=htons(6379), "
            'sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
            "100<python> 10:00:04.100000 connect(6<TCPv6:[2]>, {sa_family=AF_INET6, sin6_port=htons(8000), "
            'sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6_addr), sin6_scope_id=0}, 28) = 0',
            "100<python> 10:00:04.200000 connect(7<UNIX-STREAM:[3]>, {sa_family=AF_UNIX, "
            'sun_path="/tmp/var/pgdata/.s.PGSQL.5432"}, 110) = 0',
            "100<python> 10:00:04.300000 connect(8<UNIX-STREAM:[4]>, {sa_family=AF_UNIX, "
            'sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT (No such file or directory)',
        )
    )
    assert report.findings == []
    tally = report.tallies["python manage.py run"]
    assert (tally.loopback_connections, tally.unix_connections) == (2, 2)


def test_it_counts_lookups_through_systemd_resolved_as_dns() -> None:
    line = (
        "100<python> 10:00:05.000000 connect(9<UNIX-STREAM:[5]>, {sa_family=AF_UNIX, "
        'sun_path="/run/systemd/resolve/io.systemd.Resolve"}, 110) = 0'
    )
    assert [str(finding.destination) for finding in parse_trace(_trace(line)).dns] == [
        "unix:/run/systemd/resolve/io.systemd.Resolve"
    ]


def test_it_names_forked_and_executed_children_and_joins_interrupted_calls() -> None:
    report = parse_trace(
        _trace(
            "100<python> 10:00:06.000000 vfork( <unfinished ...>",
            '102<python> 10:00:06.000100 execve("/venv/bin/python", ["/venv/bin/python", "-m", "celery", "-A", '
            '"portal", "worker"], 0x7ffe /* 9 vars */ <unfinished ...>',
            "100<python> 10:00:06.000200 <... vfork resumed>) = 102<python>",
            "102<python> 10:00:06.000300 <... execve resumed>) = 0",
            "102<python> 10:00:07.000000 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|"
            "SIGCHLD, child_tidptr=0x7f) = 103<python>",
            "103<python> 10:00:08.000000 connect(8<TCP:[6]>, {sa_family=AF_INET, sin_port=htons(443), "
            'sin_addr=inet_addr("203.0.113.9")}, 16) = -1 ENETUNREACH (Network is unreachable)',
        )
    )
    (finding,) = report.outbound
    assert finding.process == "(fork of) python -m celery -A portal worker"
    assert finding.process_pid == 103
    assert not finding.succeeded
    assert "python -m celery -A portal worker" in report.programs
