"""The operator's commands: ``stafett backup``, ``stafett restore`` and ``stafett keys``.

Each connects to NATS with the shared settings (``STAFETT_NATS_URL`` and the operator's
credentials, ``STAFETT_NATS_USER``/``…_PASSWORD`` of ``admin`` in production) and prints ids,
counts and sizes only, never a key or personal data.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import nats.js.errors
import typer
from nats.aio.client import Client as NATS
from rich.console import Console

from stafett_shared.backup import DEFAULT_STREAMS, BackupError, StreamBackup
from stafett_shared.settings import CommonSettings, SettingsError

keys = typer.Typer(
    help="Nøkler: bytte nøkkelkrypteringsnøkkel (KEK) og se sjekkpunktnøklene.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)
T = TypeVar("T")


def _run(work: Callable[[NATS, CommonSettings], Awaitable[T]]) -> T:
    from stafett_shared.logging import configure_logging
    from stafett_shared.service import connect_nats

    configure_logging("operator", "WARNING", json=False)  # on stderr: stdout is the answer
    try:
        settings = CommonSettings()
    except (SettingsError, ValueError) as exc:
        err.print(f"[red]Innstillingene er ugyldige: {exc}[/red]")
        raise typer.Exit(2) from None

    async def main() -> T:
        nc = await connect_nats(settings, "operator", wait_s=5.0)
        try:
            return await work(nc, settings)
        finally:
            await nc.close()

    try:
        return asyncio.run(main())
    except BackupError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


def _show(streams: list[StreamBackup]) -> None:
    for s in streams:
        console.print(
            f"{s.name}: {s.messages} meldinger (sekvens {s.first_seq}–{s.last_seq}), "
            f"{s.size} byte, sha256 {s.sha256[:16]}…"
        )


def backup_command(
    output: Annotated[Path, typer.Argument(help="Fil for sikkerhetskopien (tar).")],
    stream: Annotated[
        list[str] | None,
        typer.Option(help="Strøm å ta med (kan gjentas); standard: CHECKPOINTS, EVENTS, nøklene."),
    ] = None,
) -> None:
    """Ta sikkerhetskopi av hendelsesstrømmen, sjekkpunktene og nøkkelbøtta.

    JetStreams egne øyeblikksbilder: sekvensnumre, subjects, headere og tider følger med."""
    from stafett_shared.backup import backup

    if output.exists():
        err.print(f"[red]{output} finnes allerede; velg et nytt navn.[/red]")
        raise typer.Exit(2)
    streams = tuple(stream) if stream else DEFAULT_STREAMS
    taken = _run(lambda nc, _s: backup(nc, output, streams))
    _show(taken)
    console.print(f"Sikkerhetskopien er skrevet til {output}.")


def restore_command(
    backup_file: Annotated[Path, typer.Argument(help="Sikkerhetskopi fra `stafett backup`.")],
    replicas: Annotated[
        int | None,
        typer.Option(min=1, max=5, help="Antall kopier i klyngen (standard: som da den ble tatt)."),
    ] = None,
) -> None:
    """Legg strømmene fra en sikkerhetskopi inn i en JetStream som ikke har dem."""
    from stafett_shared.backup import restore

    if not backup_file.is_file():
        err.print(f"[red]Fant ikke {backup_file}.[/red]")
        raise typer.Exit(2)
    restored = _run(lambda nc, _s: restore(nc, backup_file, replicas=replicas))
    _show(restored)
    console.print("Gjenopprettet. Kontroller med `stafett audit export` og `stafett audit verify`.")


async def _key_store(nc: NATS, settings: CommonSettings) -> Any:
    from stafett_shared.crypto import KEY_BUCKET, KeyStore
    from stafett_shared.service import current_kek

    js = nc.jetstream()
    try:
        await js.stream_info(f"KV_{KEY_BUCKET}")
    except nats.js.errors.NotFoundError:
        raise BackupError(f"nøkkelbøtta {KEY_BUCKET} finnes ikke") from None
    store = KeyStore(js, settings.kek_ring(current_kek(settings)), settings.kek_id)
    await store.ensure_bucket()
    return store


@keys.command("status")
def keys_status() -> None:
    """Hvor mange datanøkler hver KEK pakker inn, og fingeravtrykket til blindindeksen."""
    from stafett_shared.service import blind_index

    async def work(nc: NATS, settings: CommonSettings) -> dict[str, int]:
        store = await _key_store(nc, settings)
        counts: dict[str, int] = await store.wrapped_by()
        return counts

    counts = _run(work)
    settings = CommonSettings()
    for kid, count in sorted(counts.items()):
        mark = " (gjeldende)" if kid == settings.kek_id else ""
        console.print(f"{kid}: {count}{mark}")
    console.print(f"blindindeks: {blind_index(settings).fingerprint()}")


@keys.command("rewrap")
def keys_rewrap() -> None:
    """Pakk hver datanøkkel inn på nytt under gjeldende KEK; ingen hendelse endres.

    Trygt å kjøre flere ganger og mens tjenestene går."""

    async def work(nc: NATS, settings: CommonSettings) -> dict[str, int]:
        store = await _key_store(nc, settings)
        done: dict[str, int] = await store.rewrap()
        return done

    done = _run(work)
    console.print(
        f"{done['rewrapped']} pakket inn på nytt, {done['current']} var allerede under "
        f"{CommonSettings().kek_id}, {done['shredded']} slettet (makulert)."
    )


@keys.command("blind-index-key")
def keys_blind_index_key() -> None:
    """Skriv ut blindindeksens nøkkel (base64), til STAFETT_BLIND_INDEX_KEY.

    Gjør det før KEK byttes: indeksene i strømmen kan aldri endres."""
    from stafett_shared.service import current_kek

    settings = CommonSettings()
    key = settings.blind_index_secret(current_kek(settings))
    print(base64.b64encode(key).decode())  # noqa: T201 - the command's output, for a secret store


@keys.command("checkpoint-keys")
def keys_checkpoint_keys(
    as_json: Annotated[bool, typer.Option("--json", help="Som JSON.")] = False,
) -> None:
    """Sjekkpunktnøklene med perioden hver signerte i (fra CHECKPOINTS), til revisorer."""
    command = [sys.executable, "-m", "stafett_log.keys", *(["--json"] if as_json else [])]
    raise typer.Exit(subprocess.run(command, check=False).returncode)  # noqa: S603
