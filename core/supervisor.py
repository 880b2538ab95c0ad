"""The process supervisor behind `manage.py runstack`: Procfile processes that come back when they crash.

honcho's own manager stops every process as soon as one exits: one inference worker killed by the OOM
killer took the whole site down. Here a process that exits on its own is started again after a
backoff (1 s, 2 s, 4 s… up to MAX_BACKOFF) with a log line, and one that keeps crashing (more than
RESTARTS_PER_MINUTE restarts in the last minute: it crashes on start) is left stopped, so it does not
spin forever while the rest of the site keeps serving. Only an essential process (the web server)
giving up stops everything. Ctrl-C / SIGTERM stop all processes: SIGTERM to each process group, then
SIGKILL after `kill_wait` seconds.

honcho still does the per-process work (a shell per Procfile command in its own session, output lines
relayed as messages) and prints in its format; each process is read by a thread, not a forked manager.
"""

from __future__ import annotations

import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from honcho.colour import get_colours
from honcho.compat import ProcessManager
from honcho.printer import Message, Printer
from honcho.process import Process

RESTARTS_PER_MINUTE = 5
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
KILL_WAIT = 30.0  # the training worker checkpoints on SIGTERM before it exits
WINDOW = 60.0
POLL = 0.1
SYSTEM = "system"
STOP_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


@dataclass
class _Child:
    name: str
    process: Process
    state: str = "new"  # new | starting | running | stopped | waiting (a restart is due) | given_up
    pid: int | None = None
    restarts: int = 0
    recent: deque[float] = field(default_factory=deque)  # clock times of the restarts in the last WINDOW
    restart_at: float = 0.0


class Supervisor:
    """Runs named shell commands until stopped, restarting the ones that exit. Not thread-safe except
    `stop()`, which any thread (or a signal handler) may call."""

    def __init__(self, printer: Printer | None = None, *, essential: Iterable[str] = (),
                 restarts_per_minute: int = RESTARTS_PER_MINUTE, first_backoff: float = FIRST_BACKOFF,
                 max_backoff: float = MAX_BACKOFF, kill_wait: float = KILL_WAIT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.printer = printer if printer is not None else Printer(sys.stdout)
        self.printer.width = max(self.printer.width, len(SYSTEM))
        self.essential = set(essential)
        self.restarts_per_minute, self.first_backoff, self.max_backoff = restarts_per_minute, first_backoff, max_backoff
        self.kill_wait, self.clock = kill_wait, clock
        self.returncode: int | None = None
        self.events: queue.Queue[Message] = queue.Queue()
        self._children: dict[str, _Child] = {}
        self._colours = get_colours()
        self._procmgr = ProcessManager()
        self._stop_requested: int | None = None
        self._stopping_since: float | None = None
        self._killed = False

    def add_process(self, name: str, command: str, env: dict | None = None, cwd: str | None = None) -> None:
        assert name not in self._children, "process names must be unique"
        process = Process(command, name=name, colour=next(self._colours), env=env, cwd=cwd)
        self._children[name] = _Child(name, process)
        self.printer.width = max(self.printer.width, len(name))

    def stop(self, returncode: int = 0) -> None:
        # A flag the loop polls: a signal handler must not take the event queue's lock.
        if self._stop_requested is None:
            self._stop_requested = returncode

    def pid_of(self, name: str) -> int | None:
        child = self._children[name]
        return child.pid if child.state == "running" else None

    def loop(self) -> int:
        """Start every process and supervise them until stopped; the exit code for `sys.exit`."""
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_CODES:
                signal.signal(signum, self._on_signal)
        for child in self._children.values():
            self._start(child)
        while True:
            if self._stop_requested is not None and self._stopping_since is None:
                self._begin_stop(self._stop_requested)
            try:
                message = self.events.get(timeout=POLL)
            except queue.Empty:
                pass
            else:
                self._handle(message)
            now = self.clock()
            if self._stopping_since is None:
                for child in self._children.values():
                    if child.state == "waiting" and now >= child.restart_at:
                        self._start(child)
            else:
                if all(child.state not in ("starting", "running") for child in self._children.values()):
                    return self.returncode or 0
                if not self._killed and now - self._stopping_since > self.kill_wait:
                    self._killed = True
                    self._signal_all(force=True)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._say(f"{signal.Signals(signum).name} received")
        self.stop(STOP_CODES[signal.Signals(signum)])

    def _start(self, child: _Child) -> None:
        child.state, child.pid = "starting", None
        threading.Thread(target=self._run, args=(child,), name=f"supervise-{child.name}", daemon=True).start()

    def _run(self, child: _Child) -> None:
        try:
            child.process.run(self.events)
        except Exception as error:  # the shell itself could not start (a missing cwd): report it as an exit
            self.events.put(Message("stop", {"returncode": None, "error": str(error)}, datetime.now(), child.name,
                                    None))

    def _handle(self, message: Message) -> None:
        if message.type == "line":
            self.printer.write(message)
            return
        child = self._children[message.name]
        if message.type == "start":
            child.state, child.pid = "running", message.data["pid"]
            self._say(f"{child.name} started (pid={child.pid})")
            if self._stopping_since is not None:  # started while everything stops: stop it too
                self._procmgr.terminate(child.pid)
        elif message.type == "stop":
            code = message.data["returncode"]
            child.state = "stopped"
            if "error" in message.data:
                self._say(f"{child.name} could not start: {message.data['error']}")
            if self._stopping_since is not None:
                self._say(f"{child.name} stopped (rc={code})")
            else:
                self._crashed(child, code)

    def _crashed(self, child: _Child, code: int | None) -> None:
        now = self.clock()
        while child.recent and now - child.recent[0] > WINDOW:
            child.recent.popleft()
        if len(child.recent) >= self.restarts_per_minute:
            child.state = "given_up"
            self._say(f"{child.name} exited with code {code}; it was restarted {len(child.recent)} times in the "
                      f"last minute, so it stays stopped (fix it, then restart runstack)")
            # Without its essential process (or with nothing left) the site is down: stop the rest.
            if child.name in self.essential or all(other.state == "given_up" for other in self._children.values()):
                self._begin_stop(code or 1)
            return
        delay = min(self.first_backoff * 2 ** len(child.recent), self.max_backoff)
        child.recent.append(now)
        child.restarts += 1
        child.state, child.restart_at = "waiting", now + delay
        self._say(f"{child.name} exited with code {code}; restarting in {delay:g} s "
                  f"({ordinal(child.restarts)} restart)")

    def _begin_stop(self, returncode: int) -> None:
        if self._stopping_since is not None:
            return
        self._stopping_since = self.clock()
        if self.returncode is None:
            self.returncode = returncode
        for child in self._children.values():
            if child.state == "waiting":
                child.state = "stopped"
        self._signal_all(force=False)

    def _signal_all(self, *, force: bool) -> None:
        for child in self._children.values():
            if child.state == "running" and child.pid is not None:
                self._say(f"sending {'SIGKILL' if force else 'SIGTERM'} to {child.name} (pid {child.pid})")
                if force:
                    self._procmgr.kill(child.pid)
                else:
                    self._procmgr.terminate(child.pid)

    def _say(self, text: str) -> None:
        self.printer.write(Message("line", text + "\n", datetime.now(), SYSTEM, None))
