"""Developer sessions: ``nox -s tests``, ``compat``, ``lint``, ``typecheck``, ``fuzz``, ``bench``.

The sessions run in the current interpreter (``venv_backend="none"``) and
install the project there with the extras they need, so CI and a developer
run the very same commands.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

import nox

nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "none"

#: The supported Pythons other than the 3.11 the ``tests`` session runs on.
COMPAT_PYTHONS = ["3.10", "3.12", "3.13"]
#: A short real-broker smoke per transport for ``compat`` (Tansu: no JVM needed).
COMPAT_SMOKE = [
    "tests/integration/test_producer_facades.py::test_idempotent_producer",
    "tests/integration/test_consumer_facades.py::test_assign_poll_and_positions",
]


def _install(session: nox.Session, extras: str) -> None:
    if os.environ.get("KPROTO_SKIP_INSTALL") != "1":
        session.run("python", "-m", "pip", "install", "-q", "-e", f".[{extras}]")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (unit, simulation, real-broker integration, interop), then a fuzz smoke run."""
    _install(session, "test,fuzz,gssapi,otel")
    session.run("python", "-m", "pytest", "-q", "--durations=30", *session.posargs)
    seconds = os.environ.get("KPROTO_FUZZ_SECONDS", "30")
    session.run("python", "fuzz/run.py", "--seconds", seconds)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the hand-written code."""
    _install(session, "dev")
    session.run("ruff", "check", "kproto", "transports", "kproto_cli", "tests", "tools", "fuzz", "benchmarks", "examples")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on kproto, transports and kproto_cli."""
    _install(session, "dev,test,otel")
    session.run("mypy", "--strict", "kproto", "transports", "kproto_cli")


@nox.session
def fuzz(session: nox.Session) -> None:
    """Every atheris harness; ``nox -s fuzz -- --seconds 600`` for a campaign."""
    _install(session, "fuzz")
    session.run("python", "fuzz/run.py", *(session.posargs or ["--seconds", "60"]))


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against kafka-python, aiokafka and confluent-kafka.

    The codec micro-benchmark, then the end-to-end suite (a local Tansu
    broker, every client in its own process); ``nox -s bench -- --quick``
    for a short run.
    """
    _install(session, "test,dev")
    session.run("python", "benchmarks/codec.py")
    session.run("python", "benchmarks/run.py", *session.posargs)


def _interpreter(session: nox.Session, version: str) -> str:
    """``python3.X`` on PATH, else the newest under pyenv; a missing one fails the session."""
    name = f"python{version}"
    if shutil.which(name) and subprocess.run([name, "-V"], capture_output=True).returncode == 0:
        return name
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = sorted(glob.glob(f"{root}/versions/{version}.*/bin/{name}"), key=lambda p: [
        int(part) for part in p.split("/versions/")[1].split("/")[0].split(".") if part.isdigit()
    ])
    if not found:
        session.error(f"Python {version} not found (neither {name} on PATH nor under {root}/versions)")
    return found[-1]


@nox.session
@nox.parametrize("version", COMPAT_PYTHONS)
def compat(session: nox.Session, version: str) -> None:
    """Unit and simulation suites and a Tansu smoke on another supported Python (its own venv)."""
    env = os.path.join(".nox", f"compat-{version}")
    if not os.path.exists(os.path.join(env, "bin", "python")):
        session.run(_interpreter(session, version), "-m", "venv", env, external=True)
    python = os.path.join(env, "bin", "python")
    session.run(python, "-m", "pip", "install", "-q", "-e", ".[test]", external=True)
    session.run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit", "tests/sim", external=True)
    session.run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *COMPAT_SMOKE, "-k", "tansu", external=True)
