"""Developer sessions: ``nox -s tests``, ``lint``, ``typecheck``, ``fuzz``, ``bench``.

The sessions run in the current interpreter (``venv_backend="none"``) and
install the project there with the extras they need, so CI and a developer
run the very same commands.
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "none"


def _install(session: nox.Session, extras: str) -> None:
    if os.environ.get("KPROTO_SKIP_INSTALL") != "1":
        session.run("python", "-m", "pip", "install", "-q", "-e", f".[{extras}]")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (unit, simulation, real-broker integration, interop), then a fuzz smoke run."""
    _install(session, "test,fuzz")
    session.run("python", "-m", "pytest", "-q", *session.posargs)
    seconds = os.environ.get("KPROTO_FUZZ_SECONDS", "30")
    session.run("python", "fuzz/run.py", "--seconds", seconds)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the hand-written code."""
    _install(session, "dev")
    session.run("ruff", "check", "kproto", "transports", "tests", "tools", "fuzz", "benchmarks", "examples")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on kproto and transports."""
    _install(session, "dev,test")
    session.run("mypy", "--strict", "kproto", "transports")


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
