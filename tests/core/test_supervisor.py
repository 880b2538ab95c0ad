"""runstack's supervisor: a crashed Procfile process is restarted, the others keep running.

Cheap child commands stand in for the stack's processes (the real stack is tested in test_runstack.py).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time

import pytest
from honcho.printer import Printer

from core.supervisor import Supervisor, ordinal

SLEEPER = f"{sys.executable} -c 'import time; time.sleep(600)'"
CRASHES_ON_START = f"{sys.executable} -c 'raise SystemExit(3)'"


class Log:
    """A printer's output that tests can wait on."""

    def __init__(self) -> None:
        self.text = ""
        self._changed = threading.Condition()

    def write(self, data: str) -> None:
        with self._changed:
            self.text += data
            self._changed.notify_all()

    def flush(self) -> None:
        pass

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 30) -> list[re.Match]:
        with self._changed:
            found = self._changed.wait_for(lambda: len(list(re.finditer(pattern, self.text))) >= count, timeout)
            assert found, f"{pattern!r} ({count}×) not in the log:\n{self.text}"
            return list(re.finditer(pattern, self.text))


class Running:
    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.returncode: int | None = None
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        self.returncode = self.supervisor.loop()

    def finish(self, timeout: float = 30) -> int | None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the supervisor did not stop"
        return self.returncode


@pytest.fixture
def log() -> Log:
    return Log()


def supervise(log: Log, programs: dict[str, str], **options) -> Running:
    supervisor = Supervisor(Printer(log), **options)
    for name, command in programs.items():
        supervisor.add_process(name, command, env=dict(os.environ))
    return Running(supervisor)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_it_restarts_a_killed_worker_and_the_others_keep_running(log):
    running = supervise(log, {"web": SLEEPER, "inference": SLEEPER}, first_backoff=0.05)
    try:
        web_pid = int(log.wait_for(r"web started \(pid=(\d+)\)")[0].group(1))
        inference_pid = int(log.wait_for(r"inference started \(pid=(\d+)\)")[0].group(1))
        os.killpg(inference_pid, signal.SIGKILL)  # as the OOM killer would
        log.wait_for(r"inference exited with code -9; restarting in 0\.05 s \(1st restart\)")
        restarted = int(log.wait_for(r"inference started \(pid=(\d+)\)", count=2)[1].group(1))
        assert restarted != inference_pid and alive(restarted)
        assert running.supervisor.pid_of("web") == web_pid and alive(web_pid)
        assert "web exited" not in log.text and running.thread.is_alive()
    finally:
        running.supervisor.stop()
    assert running.finish() == 0
    assert not alive(web_pid)


def test_the_backoff_doubles_and_a_worker_that_crashes_on_start_is_left_stopped(log):
    running = supervise(log, {"web": SLEEPER, "beat": CRASHES_ON_START}, restarts_per_minute=3, first_backoff=0.05)
    try:
        log.wait_for(r"beat exited with code 3; it was restarted 3 times in the last minute, so it stays stopped")
        delays = re.findall(r"beat exited with code 3; restarting in ([\d.]+) s \((\w+) restart\)", log.text)
        assert delays == [("0.05", "1st"), ("0.1", "2nd"), ("0.2", "3rd")]
        assert len(re.findall(r"beat started", log.text)) == 4  # the first start and three restarts
        web_pid = running.supervisor.pid_of("web")
        assert web_pid is not None and alive(web_pid) and running.thread.is_alive()
    finally:
        running.supervisor.stop()
    assert running.finish() == 0


def test_an_essential_process_that_keeps_crashing_stops_everything(log):
    running = supervise(log, {"web": CRASHES_ON_START, "inference": SLEEPER}, essential={"web"},
                        restarts_per_minute=1, first_backoff=0.01)
    inference_pid = int(log.wait_for(r"inference started \(pid=(\d+)\)")[0].group(1))
    assert running.finish() == 3
    assert "web exited with code 3; it was restarted 1 times" in log.text
    assert re.search(r"sending SIGTERM to inference", log.text) and not alive(inference_pid)


def test_stopping_terminates_every_process_and_restarts_nothing(log):
    running = supervise(log, {"web": SLEEPER, "training": SLEEPER})
    pids = [int(m.group(1)) for m in log.wait_for(r"\w+ started \(pid=(\d+)\)", count=2)]
    started = time.monotonic()
    running.supervisor.stop(130)
    assert running.finish() == 130
    assert time.monotonic() - started < 10  # SIGTERM is enough: no kill_wait
    assert not any(alive(pid) for pid in pids)
    assert "restarting" not in log.text


def test_ordinals():
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st"]
