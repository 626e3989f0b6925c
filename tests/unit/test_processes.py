"""Liveness of local server processes, as the servers' stop commands rely on it."""

import subprocess
import sys
import textwrap
import time

from jobs.processes import free_port, pid_alive, port_is_free

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


def test_a_process_whose_leader_thread_exited_is_alive_until_its_last_thread_ends():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", LEADER_GONE, str(port), "3"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "listening"
        deadline = time.monotonic() + 10
        while _leader_state(proc.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _leader_state(proc.pid) == "Z", "the leader thread did not exit: the case is not set up"
        assert pid_alive(proc.pid)
        assert not port_is_free(port)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert not pid_alive(proc.pid)


def test_an_unreaped_zombie_is_gone():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while _leader_state(proc.pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert not pid_alive(proc.pid)
    finally:
        proc.wait()
