"""Liveness of local server processes, and the one lifecycle (state, start, stop) the local servers share."""

import json
import os
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from agrilake.services import lifecycle
from agrilake.services.processes import answers, descendants, free_port, pid_alive, port_is_free

# The main thread leaves with pthread_exit while another thread keeps a port open: Linux then shows the
# leader as a zombie although the process still runs (a JVM stopping can look like this).
LEADER_GONE = textwrap.dedent("""
    import ctypes, socket, sys, threading, time
    def serve():
        s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
        print("listening", flush=True)
        time.sleep(float(sys.argv[2]))
    threading.Thread(target=serve).start()
    time.sleep(0.5)
    ctypes.CDLL(None).pthread_exit(None)
""")


def _leader_state(pid: int) -> str:
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[-1].split()[0]


def _leader_gone(port: int, seconds: int) -> subprocess.Popen:
    """A process listening on `port` for `seconds` whose leader thread has exited (shows "Z")."""
    proc = subprocess.Popen([sys.executable, "-c", LEADER_GONE, str(port), str(seconds)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "listening"
    deadline = time.monotonic() + 10
    while _leader_state(proc.pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _leader_state(proc.pid) == "Z", "the leader thread did not exit: the case is not set up"
    return proc


def test_a_process_whose_leader_thread_exited_is_alive_until_its_last_thread_ends():
    port = free_port()
    proc = _leader_gone(port, 3)
    try:
        assert pid_alive(proc.pid)
        assert not port_is_free(port)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert not pid_alive(proc.pid)


def test_a_process_reaped_while_its_threads_are_listed_is_gone_not_an_error(monkeypatch):
    """`agrilake airflow stop` died of FileNotFoundError on /proc/<pid>/task: a process of the tree was reaped
    between the check that it exists and the listing of its threads. Here the listing is made to find the
    folder gone (the one thing mocked), on a real process whose leader thread exited."""
    proc = _leader_gone(free_port(), 30)
    try:
        assert pid_alive(proc.pid)
        listdir, tasks = os.listdir, f"/proc/{proc.pid}/task"

        def reaped_meanwhile(path="."):
            if os.fspath(path) == tasks:
                raise FileNotFoundError(2, "No such file or directory", tasks)
            return listdir(path)

        monkeypatch.setattr(os, "listdir", reaped_meanwhile)
        assert pid_alive(proc.pid) is False
    finally:
        proc.kill()
        proc.wait()


def test_an_unreaped_zombie_is_gone():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while _leader_state(proc.pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert not pid_alive(proc.pid)
    finally:
        proc.wait()


# -- the lifecycle every local server shares (agrilake.services.lifecycle) -------------------------------
TOY = textwrap.dedent("""
    import signal, socket, sys, time
    port, mode = int(sys.argv[1]), sys.argv[2]
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("toy starting", flush=True)
    if mode == "crash":
        sys.exit("toy: cannot start, a bad flag")
    time.sleep(0.3)
    if mode != "mute":
        s = socket.socket(); s.bind(("127.0.0.1", port)); s.listen()
    while True:
        time.sleep(1)
""")


class Toy(lifecycle.Server):
    """A server of a few lines: listens on its port 0.3 s after it starts (or never, or exits at once)."""

    title = "toy server"
    stop_timeout = 1.0
    poll_interval = 0.05

    def __init__(self, run_dir, port: int = 0, mode: str = "serve"):
        super().__init__(run_dir)
        self.port, self.mode = port, mode

    def owns(self, args, state):
        return "toy-marker" in args

    def ports(self, state):
        return [state["port"]]

    def ready(self):
        return answers(self.state()["port"])

    def launch(self, timeout):
        self.spawn([sys.executable, "-c", TOY, str(self.port), self.mode, "toy-marker"],
                   {"port": self.port, "url": f"http://127.0.0.1:{self.port}"})
        with self.stop_on_failure():
            self.wait_ready(timeout)


def test_start_waits_until_it_answers_and_stop_frees_the_port(tmp_path, capsys):
    port = free_port()
    server = Toy(tmp_path, port)
    with server:
        assert answers(port) and server.is_running()
        pid = server.pid()
        assert json.loads((tmp_path / "server.json").read_text())["pid"] == pid
        other = Toy(tmp_path)  # another process's view, e.g. `status` or `stop` from another shell
        assert other.pid() == pid and other.start(timeout=5).pid() == pid and not other._started_here
        assert lifecycle.run(other, "status", prog="toy", timeout=5) == 0
        assert json.loads(capsys.readouterr().out)["running"] is True
    assert not server.is_running() and not pid_alive(pid) and not answers(port) and port_is_free(port)
    assert server.state() == {**server.state(), "pid": None, "port": port}  # the ports are kept for a restart
    assert lifecycle.run(server, "stop", prog="toy", timeout=5) == 0
    assert capsys.readouterr().out == "toy server was not running\n"


def test_stop_kills_what_ignores_sigterm(tmp_path):
    server = Toy(tmp_path, free_port(), "stubborn").start(timeout=10)
    pid = server.pid()
    t0 = time.monotonic()
    assert server.stop() is True
    assert not pid_alive(pid) and 1.0 <= time.monotonic() - t0 < 10


# A server whose processes leave it in every way (agrilake airflow stop left LocalExecutor workers and their
# tasks running): two stubborn workers (SIGTERM ignored) each with a task in a session of its own that has a
# child, a churner forking short-lived children all the time, and a daemon double-forked into a session of
# its own and orphaned at once (only its pid, which the server records, leads to it). On SIGTERM the
# leader dies at once, as a scheduler does, orphaning the rest.
TREE = textwrap.dedent("""
    import os, signal, socket, sys, time
    port, pidfile = int(sys.argv[1]), sys.argv[2]
    def stubborn():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    def forever():
        while True:
            time.sleep(1)
    for _ in range(2):
        if os.fork() == 0:
            stubborn()
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    forever()
                forever()
            forever()
    if os.fork() == 0:
        stubborn()
        while True:
            child = os.fork()
            if child == 0:
                time.sleep(0.01)
                os._exit(0)
            os.waitpid(child, 0)
    if os.fork() == 0:
        os.setsid()
        daemon = os.fork()
        if daemon == 0:
            stubborn()
            forever()
        with open(pidfile + ".tmp", "w") as fh:
            fh.write(str(daemon))
        os.rename(pidfile + ".tmp", pidfile)
        os._exit(0)
    s = socket.socket(); s.bind(("127.0.0.1", port)); s.listen()
    forever()
""")


class TreeToy(Toy):
    def launch(self, timeout):
        pidfile = self.run_dir / "daemon.pid"
        self.spawn([sys.executable, "-c", TREE, str(self.port), str(pidfile), "toy-marker"],
                   {"port": self.port, "url": f"http://127.0.0.1:{self.port}"})
        with self.stop_on_failure():
            self.wait_ready(timeout)
            while not pidfile.exists():
                time.sleep(0.05)
            self.record(int(pidfile.read_text()))


def _running(procs: list[psutil.Process]) -> list[int]:
    left = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(proc.pid)
        except psutil.NoSuchProcess:
            pass
    return left


def test_stop_ends_every_process_of_a_tree_whose_members_exit_and_leave_under_it(tmp_path):
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    server = TreeToy(tmp_path, free_port()).start(timeout=30)
    try:
        leader = server.pid()
        daemon = int((tmp_path / "daemon.pid").read_text())
        # a pid the state names with another start time is not the server's (a pid reused since)
        state = server.state()
        stale = [bystander.pid, psutil.Process(bystander.pid).create_time() - 1000]
        server.write_state({**state, "processes": [*state["processes"], stale]})
        procs = [psutil.Process(p) for p in {leader, daemon, *descendants(leader)}]
        sessions = {p.pid: os.getsid(p.pid) for p in procs}
        assert len({s for s in sessions.values()}) == 4, sessions  # the leader's, two tasks', the daemon's
        assert daemon not in descendants(leader)
        t0 = time.monotonic()
        assert server.stop() is True
        elapsed = time.monotonic() - t0
        assert _running(procs) == []
        assert bystander.poll() is None, "a process outside the server was signalled"
        assert elapsed < 10, elapsed
    finally:
        server.stop()
        bystander.kill()
        bystander.wait()


def test_a_server_that_exits_at_start_says_why(tmp_path, capsys):
    server = Toy(tmp_path, free_port(), "crash")
    with pytest.raises(lifecycle.ExitedAtStart, match=r"(?s)toy server exited during start-up \(exit 1\).*"
                                                      r"cannot start, a bad flag"):
        server.start(timeout=10)
    assert server.state()["pid"] is None
    assert lifecycle.run(server, "start", prog="toy", timeout=10) == 1
    assert capsys.readouterr().err.startswith("toy: toy server exited during start-up")


def test_a_server_that_never_answers_is_stopped_after_the_timeout(tmp_path):
    server = Toy(tmp_path, free_port(), "mute")
    with pytest.raises(lifecycle.LifecycleError, match="did not serve within 1 s"):
        server.start(timeout=1)
    assert "toy starting" in server.log_file.read_text()
    assert server.state()["pid"] is None and not server.is_running()


def test_a_stale_pid_naming_another_process_is_not_ours(tmp_path):
    lifecycle.write_atomic(tmp_path / "server.json", json.dumps({"pid": os.getpid(), "port": free_port()}))
    server = Toy(tmp_path)
    assert server.pid() is None and server.stop() is False  # and this test process is still here
    assert server.state()["pid"] is None


def test_private_files_are_0600_from_the_first_byte(tmp_path):
    path = tmp_path / "secret.json"
    (tmp_path / f"secret.json.{os.getpid()}.tmp").write_text("left over")
    os.chmod(tmp_path / f"secret.json.{os.getpid()}.tmp", 0o644)
    lifecycle.write_atomic(path, "{}", private=True)
    assert path.stat().st_mode & 0o777 == 0o600 and path.read_text() == "{}"
    assert list(tmp_path.iterdir()) == [path]
