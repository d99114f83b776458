"""``mdtflag serve``: start the HTTP service with one worker process per core."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from mdtflag.service.config import ENV_CONFIG, ServiceConfig

__all__ = ["EXTRA_MODULES", "run", "serve"]

#: Modules the ``service`` extra installs; without them this module does not import.
EXTRA_MODULES = ("granian", "starlette", "prometheus_client")
_absent = [m for m in EXTRA_MODULES if importlib.util.find_spec(m) is None]
if _absent:
    raise ImportError(f"mdtflag serve needs {', '.join(_absent)}: pip install 'mdtflag[service]'")

_BANNER = """\
************************************************************************
*  WARNING: --insecure-no-auth. Every caller is accepted without a      *
*  token. For local development only; never expose this service.       *
************************************************************************"""


def run(
    config: ServiceConfig,
    host: str,
    port: int,
    workers: int,
    target: str = "mdtflag.service.app:worker_app",
    state: Path | None = None,
    max_connections: int | None = None,
) -> None:
    """Serve ``target`` (an application factory) with granian until SIGINT/SIGTERM.

    ``max_connections`` caps the client connections held at once, in equal shares per worker (a worker
    at its share accepts no more until one of its connections closes; further clients wait in the listen
    backlog). Without it a worker takes whatever connections it wins, and one worker may hold most of
    them: its clients then wait longer than the others'.
    """
    from granian import Granian
    from granian.constants import Interfaces

    Server = _shared_socket_server(Granian) if max_connections is not None else Granian

    own = state is None
    state = state or prepare_state()
    if config.replay_dir is None:
        config = ServiceConfig(**{**config.__dict__, "replay_dir": str(state / "replay")})
    os.environ[ENV_CONFIG] = config.to_env()
    try:
        server = Server(
            target,
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            workers=workers,
            factory=True,
            backpressure=per_worker_connections(max_connections, workers, config.queue),
            log_access=False,
            respawn_failed_workers=True,
            workers_kill_timeout=30,
            websockets=False,
        )
        server.serve()
    finally:
        if own:
            shutil.rmtree(state, ignore_errors=True)


def _shared_socket_server(base: Any) -> Any:
    """``base`` (granian's server class) with one listening socket that every worker accepts from.

    On Linux granian gives each worker a listening socket of its own (``SO_REUSEPORT``): the kernel then
    assigns each new connection to a worker by a hash of its addresses, whether or not that worker has
    room, so a cap per worker would leave a client waiting at a full worker while another is free. With
    one shared socket a worker at its cap stops accepting and the others take the connection. This is
    the socket set-up granian itself uses off Linux; if this granian does not have it, the stock server
    is used.
    """
    import socket

    try:
        from granian.net import SocketSpec  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - another granian generation
        return base
    if not hasattr(base, "_init_shared_socket"):  # pragma: no cover
        return base

    class SharedSocketServer(base):  # type: ignore[misc]
        def _init_shared_socket(self) -> None:
            if self.bind_uds:  # pragma: no cover - mdtflag serve binds TCP only
                return super()._init_shared_socket()  # type: ignore[no-any-return]
            self._shd = SocketSpec(self.bind_addr, self.bind_port, self.backlog).build()
            self._sfd = self._shd.get_fd()
            self._ssp = None
            sock = socket.socket(fileno=self._sfd)
            sock.set_inheritable(True)
            self._sso = sock
            return None

    return SharedSocketServer


def per_worker_connections(max_connections: int | None, workers: int, queue: int) -> int:
    """The connections one worker holds at once: an equal share of ``max_connections`` (rounded up), else
    a generous default."""
    if max_connections is None:
        return max(queue * 4, 128)
    return max(1, -(-max_connections // workers))


def default_state_dir() -> Path:
    """Where state that must outlive a restart is kept: the token replay database (a token accepted just
    before a restart must still be refused just after it)."""
    explicit = os.environ.get("MDTFLAG_STATE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "mdtflag"


def prepare_state() -> Path:
    """A fresh folder for the workers' shared state of this run (metrics; the replay store when no lasting
    folder is configured), announced in the environment.

    Must run before anything imports :mod:`mdtflag.service.metrics` in this process: the metrics
    become multi-process only when ``PROMETHEUS_MULTIPROC_DIR`` is set at their creation.
    """
    state = Path(tempfile.mkdtemp(prefix="mdtflag-serve-"))
    (state / "metrics").mkdir()
    (state / "replay").mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(state / "metrics")
    return state


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--workers", type=click.IntRange(1, 256), default=None, help="Worker processes (default: one per core).")
@click.option(
    "--rules",
    "rules",
    type=click.Path(file_okay=False),
    default=None,
    help="Rule directory (default: $MDTFLAG_RULES or ./rules).",
)
@click.option("--profile", default=None, help="Threshold profile (default: the rule set's default).")
@click.option(
    "--trust",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Trust file (YAML/JSON): the JWT issuers and their keys.",
)
@click.option(
    "--public-url",
    default=None,
    help="The URL clients call (e.g. https://cds.example.org); tokens' aud must be this URL plus the path.",
)
@click.option(
    "--max-body",
    type=click.IntRange(1024),
    default=10 * 1024 * 1024,
    show_default=True,
    help="Largest request body in bytes (413 above).",
)
@click.option(
    "--queue",
    type=click.IntRange(1),
    default=64,
    show_default=True,
    help="Requests each worker holds at once, running or waiting; beyond it the answer is 503.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1),
    default=None,
    help="Client connections held at once, shared equally by the workers (set it to the connection pool "
    "of the proxy or integration engine in front). Default: no cap; a worker may then hold most of them.",
)
@click.option(
    "--replay-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder of the token replay database, kept across restarts "
    "(default: $MDTFLAG_STATE_DIR, else $XDG_STATE_HOME/mdtflag, else ~/.local/state/mdtflag).",
)
@click.option("--system-actions", is_flag=True, help="Also return the MDK referral Task as a CDS Hooks systemAction.")
@click.option("--insecure-no-auth", is_flag=True, help="Accept calls without a token (local development only).")
def serve(
    host: str,
    port: int,
    workers: int | None,
    rules: str | None,
    profile: str | None,
    trust: str | None,
    public_url: str | None,
    max_body: int,
    queue: int,
    max_connections: int | None,
    replay_dir: str | None,
    system_actions: bool,
    insecure_no_auth: bool,
) -> None:
    """Run the HTTP service: CDS Hooks 2.0, REST evaluation and FHIR outputs."""
    from mdtflag.api import cached_evaluator
    from mdtflag.ruleset.diagnostics import RuleSetError

    if not insecure_no_auth and not trust:
        raise click.UsageError(
            "give --trust FILE (the issuers whose tokens are accepted), or --insecure-no-auth for local development"
        )
    if public_url is not None and (
        not public_url.startswith(("https://", "http://")) or "?" in public_url or "#" in public_url
    ):
        raise click.UsageError(
            "--public-url must be an http(s) URL without query or fragment, e.g. https://cds.example.org"
        )
    try:
        ev = cached_evaluator(rules, profile)  # fails here, once, rather than in every worker; stores the entry
    except RuleSetError as e:
        for d in e.diagnostics:
            click.echo(d.format(), err=True)
        click.echo("error: the rule set is invalid", err=True)
        sys.exit(3)
    if profile and profile not in ev.ruleset.profiles.profiles:
        raise click.UsageError(
            f"unknown profile '{profile}'; choose from {', '.join(sorted(ev.ruleset.profiles.profiles))}"
        )
    rules_dir = str(Path(ev.ruleset.root).resolve())
    del ev
    config = ServiceConfig(
        rules=rules_dir,
        profile=profile,
        public_url=(public_url or f"http://{host}:{port}").rstrip("/"),
        max_body=max_body,
        queue=queue,
        insecure_no_auth=insecure_no_auth,
        trust=str(Path(trust).resolve()) if trust else None,
        system_actions=system_actions,
        replay_dir=None if insecure_no_auth else str(Path(replay_dir or default_state_dir() / "replay").resolve()),
    )
    if insecure_no_auth:
        click.echo(_BANNER, err=True)
    state = prepare_state()
    try:
        if not insecure_no_auth:
            from mdtflag.service.auth import Authenticator

            try:  # a broken trust file stops here, not in every worker
                Authenticator.from_trust_file(Path(str(config.trust)), Path(str(config.replay_dir)))
            except Exception as e:
                raise click.UsageError(f"trust file {trust}: {e}") from None
        n = workers or os.cpu_count() or 1
        click.echo(f"mdtflag serve: {n} workers on http://{host}:{port} (public URL {config.public_url})", err=True)
        run(config, host, port, n, state=state, max_connections=max_connections)
    finally:
        shutil.rmtree(state, ignore_errors=True)
