"""What every local service has in common: install if missing, start as a process we own,
wait on a real readiness probe, stop by pid.

Each service keeps its data, pid file and log under ``<BULKOPS_HOME>/<name>/``. ``down`` only
ever signals a pid that this module wrote, so a system-wide PostgreSQL or Redis is left alone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from pathlib import Path

from bulkops.config import Settings

log = logging.getLogger("bulkops.services")


class ServiceError(RuntimeError):
    """A service could not be installed, started or reached; the message says which and why."""


class Service(ABC):
    name: str
    #: seconds ``up`` waits for the readiness probe before giving up
    start_timeout_s: float = 60.0
    #: run the process as this system user (PostgreSQL refuses to run as root)
    user: str | None = None
    #: the service listens on ``port`` itself (so a foreign listener there is a conflict)
    owns_port: bool = True
    #: what ``down`` sends first; SIGKILL follows if the process outlives the timeout
    stop_signal: signal.Signals = signal.SIGTERM

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # -- the parts a concrete service fills in -------------------------------------------
    @property
    @abstractmethod
    def port(self) -> int: ...

    @abstractmethod
    def ensure_installed(self) -> None:
        """Install the binaries/jars if this machine lacks them (apt, Maven Central)."""

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """One-time initialisation of the data directory (initdb, storage format...)."""

    @abstractmethod
    def command(self) -> list[str]: ...

    @abstractmethod
    def probe(self) -> bool:
        """True once the service answers its own protocol (not merely an open port)."""

    def env(self) -> dict[str, str] | None:
        return None

    def after_ready(self) -> None:  # noqa: B027 - optional hook
        """Idempotent set-up that needs the running service (create a database, a bucket...)."""

    # -- shared lifecycle ----------------------------------------------------------------
    @property
    def dir(self) -> Path:
        return self.settings.home / self.name

    @property
    def pid_file(self) -> Path:
        return self.dir / "pid"

    @property
    def log_file(self) -> Path:
        return self.dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid we started, if that process is still alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        # A zombie (exited, not yet reaped) is not a running service.
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return None
        if stat.rpartition(")")[2].split()[0] in ("Z", "X"):
            return None
        return pid

    def up(self) -> str:
        pid = self.pid()
        if pid is not None and self.probe():
            self.after_ready()
            return "already running"
        if pid is None:
            if self.owns_port and self.probe():
                raise ServiceError(
                    f"{self.name}: port {self.port} already answers, but not from a process "
                    f"this command started (no live pid in {self.pid_file}); stop that process "
                    "or choose another port (the BULKOPS_*_PORT settings in the README)"
                )
            self.dir.mkdir(parents=True, exist_ok=True)
            self.ensure_installed()
            self.prepare()
            pid = self._spawn()
        self._wait_ready(pid)
        self.after_ready()
        return "started"

    def _spawn(self) -> int:
        log_fh = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the CLI; not killed by its Ctrl-C
                cwd=self.dir,
                env=self._full_env(),
                user=self.user,
            )
        except FileNotFoundError as exc:
            raise ServiceError(f"{self.name}: cannot run {exc.filename}") from None
        finally:
            log_fh.close()
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc.pid

    def _full_env(self) -> dict[str, str] | None:
        extra = self.env()
        if extra is None:
            return None
        return {**os.environ, **extra}

    def _wait_ready(self, pid: int) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        delay = 0.05
        while time.monotonic() < deadline:
            if self.probe():
                return
            if self.pid() is None:
                raise ServiceError(
                    f"{self.name} exited during start-up; see {self.log_file}:\n{self.tail_log()}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        raise ServiceError(
            f"{self.name} (pid {pid}) not ready after {self.start_timeout_s:.0f}s on port "
            f"{self.port}; see {self.log_file}"
        )

    def tail_log(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def down(self, timeout_s: float = 20.0) -> str:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return "not running"
        os.kill(pid, self.stop_signal)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.05)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
            while self.pid() is not None:
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return "stopped"

    def status(self) -> str:
        pid = self.pid()
        if pid is None:
            state = "stopped"
        elif self.probe():
            state = f"running (pid {pid})"
        else:
            state = f"starting or unhealthy (pid {pid})"
        return f"{self.name:<10} port {self.port:<6} {state}"


# -- install helpers shared by the services ---------------------------------------------


def apt_install(*packages: str) -> None:
    """``apt-get install`` the packages, refreshing the package lists once per machine."""
    if shutil.which("apt-get") is None:
        raise ServiceError(f"need {', '.join(packages)} but apt-get is not available")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log.info("installing %s with apt-get", " ".join(packages))
    # A fresh machine has empty or stale lists, so update before the first install.
    update = subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True)
    if update.returncode != 0:
        raise ServiceError(f"apt-get update failed: {update.stderr.strip()[-500:]}")
    result = subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise ServiceError(f"apt-get install {' '.join(packages)} failed: {result.stderr[-500:]}")


def maven_fetch(pom: Path, lib_dir: Path) -> None:
    """Resolve a pom's dependencies from Maven Central into ``lib_dir`` (once per pom version)."""
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    stamp = lib_dir / ".resolved"
    if stamp.exists() and stamp.read_text() == digest:
        return
    if shutil.which("mvn") is None:
        apt_install("maven")
    lib_dir.mkdir(parents=True, exist_ok=True)
    for old in lib_dir.glob("*.jar"):
        old.unlink()
    log.info("resolving %s from Maven Central into %s", pom.name, lib_dir)
    result = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={lib_dir}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise ServiceError(
            f"mvn dependency:copy-dependencies failed for {pom}:\n{result.stdout[-1500:]}"
        )
    stamp.write_text(digest)
