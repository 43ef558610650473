"""The ``stafett`` command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape

from stafett_shared.datafolder import (
    DataFolderNotFound,
    announce_running,
    find_data_folder,
    marker_path,
    withdraw_running,
)
from stafett_shared.embedded import PROJECTING, EmbeddedSystem
from stafett_shared.opscli import backup_command, keys, restore_command
from stafett_shared.settings import CommonSettings

if TYPE_CHECKING:
    from stafett_shared.auth import DevIssuer

app = typer.Typer(
    name="stafett",
    help="Stafett: den digitale stafettloggen for BTI.",
    no_args_is_help=True,
    add_completion=False,
)
projections = typer.Typer(help="Lesemodeller (projeksjoner).", no_args_is_help=True)
app.add_typer(projections, name="projections")
audit = typer.Typer(
    help="Tilsyn: eksport, kontroll og avspilling av historikken.", no_args_is_help=True
)
app.add_typer(audit, name="audit")
notify = typer.Typer(help="Varsler.", no_args_is_help=True)
app.add_typer(notify, name="notify")
app.add_typer(keys, name="keys")
app.command("backup")(backup_command)
app.command("restore")(restore_command)


@notify.command("redrive")
def notify_redrive() -> None:
    """Legg leveranser som har havnet i feilkøen (DLQ) tilbake i arbeidskøen."""
    result = subprocess.run(
        [sys.executable, "-m", "stafett_notify", "redrive"], env=dict(os.environ), check=False
    )
    raise typer.Exit(result.returncode)


console = Console()
err = Console(stderr=True)


@app.command()
def up(
    data_dir: Annotated[
        Path | None, typer.Option(help="Datamappe (standard: STAFETT_DATA_DIR eller ./var).")
    ] = None,
    nats_port: Annotated[int, typer.Option(help="Port for den innebygde NATS-serveren.")] = 14222,
    demo: Annotated[
        Path | None,
        typer.Option(help="Regionsdokument som lastes ved start (standard: data/grenland.yaml)."),
    ] = None,
    no_demo: Annotated[bool, typer.Option("--no-demo", help="Ikke last demoregionen.")] = False,
) -> None:
    """Start Stafett lokalt: NATS med JetStream og de fire tjenestene på SQLite.

    En prosess som stopper uventet, startes igjen (med økende ventetid om den stopper igjen
    og igjen); NATS på samme port og med samme lager, så ingenting går tapt.
    """
    settings = CommonSettings()
    if settings.production:
        err.print("[red]`stafett up` er for utvikling; STAFETT_ENV=production er satt.[/red]")
        raise typer.Exit(2)
    folder = (data_dir or settings.data_dir).resolve()
    system = EmbeddedSystem(folder, nats_port=nats_port)
    stopping = False

    def _terminate(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    # Also when started in the background, where SIGINT arrives ignored.
    signal.signal(signal.SIGINT, _terminate)
    console.print(f"Starter Stafett i [bold]{folder}[/bold] …")
    try:
        system.start()
    except (RuntimeError, TimeoutError, FileNotFoundError) as exc:
        err.print(f"[red]Kunne ikke starte: {exc}[/red]")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    marker = _announce(folder)
    try:
        document = demo or Path("data/grenland.yaml")
        if not no_demo and document.is_file():
            _load_region(system, settings, folder, document)
        _print_addresses(system)
        console.print("Avslutt med Ctrl-C.")
        # A process that dies is started again, and the console says so (names only).
        system.supervise(lambda line: err.print(f"[yellow]{escape(line)}[/yellow]"))
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        stopping = True
    finally:
        # A second Ctrl-C or SIGTERM must not cut the shutdown short and orphan the services.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        console.print("Stopper …" if stopping else "")
        if marker is not None:
            withdraw_running(marker)
        system.stop()
        console.print("Stoppet.")


def _announce(folder: Path) -> Path | None:
    """Tell `stafett token` and `stafett demo` in other folders where this system's keys are."""
    try:
        return announce_running(folder)
    except OSError as exc:
        err.print(
            f"[yellow]Kunne ikke skrive {marker_path()} ({exc.strerror}); `stafett token` "
            f"fra en annen mappe trenger STAFETT_DATA_DIR={folder}.[/yellow]"
        )
        return None


def _dev_issuer(settings: CommonSettings) -> DevIssuer:
    """The running system's development issuer, found without ever making a key."""
    from stafett_shared.auth import DevIssuer

    try:
        return DevIssuer.load(find_data_folder(settings))
    except DataFolderNotFound as exc:
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None


def _print_addresses(system: EmbeddedSystem) -> None:
    """The portal first: it is what a person opens; the APIs after it."""
    portal = next((s for s in system.running if s.name == "portal"), None)
    if portal is not None:
        console.print(
            f"\n[bold]Åpne Stafett i nettleseren: {portal.url}/[/bold]\n"
            "Logg inn ved å velge en person fra demoregionen (innlogging for utvikling).\n"
        )
    console.print("Tjenestene (API):")
    for service in system.running:
        if service.name != "portal":
            console.print(f"  {service.name:<9} {service.url}  (dokumentasjon: {service.url}/docs)")
    console.print(f"  NATS      {system.nats.url}")
    console.print("Token for API-et: [bold]stafett token admin[/bold]")


def _load_region(
    system: EmbeddedSystem, settings: CommonSettings, folder: Path, document: Path
) -> Literal["loaded", "kept", "failed"]:
    """Load a region document into the consent service as the first administrator, unless
    a directory is loaded already: what an administrator loaded with ``PUT /directory``
    (or an earlier start) is never overwritten by a restart."""
    import httpx

    from stafett_shared.auth import DevIssuer

    consent = next((s for s in system.running if s.name == "consent"), None)
    admin = settings.dev_admin
    if consent is None or admin is None:
        return "failed"
    token_value = DevIssuer.load_or_create(folder).issue(admin)
    auth = {"Authorization": f"Bearer {token_value}"}
    current = httpx.get(f"{consent.url}/api/v1/directory", headers=auth, timeout=60)
    if current.status_code != 200:
        # Whether a directory is loaded is not known: loading the demo region now could
        # overwrite what an administrator loaded, so nothing is loaded.
        err.print(
            f"[yellow]Kunne ikke lese katalogen ({current.status_code}); "
            "demoregionen lastes ikke.[/yellow]"
        )
        return "failed"
    if current.json().get("organisations"):
        console.print("Katalogen er lastet fra før og beholdes; demoregionen lastes ikke på nytt.")
        return "kept"
    content_type = "application/json" if document.suffix == ".json" else "application/yaml"
    response = httpx.put(
        f"{consent.url}/api/v1/directory",
        content=document.read_bytes(),
        headers={**auth, "Content-Type": content_type},
        timeout=60,
    )
    if response.status_code == 200:
        changes = sum(response.json().get("changes", {}).values())
        console.print(f"Region lastet fra {document} ({changes} endringer).")
        return "loaded"
    err.print(f"[yellow]Kunne ikke laste {document}: {response.status_code}[/yellow]")
    return "failed"


@app.command()
def demo(
    region: Annotated[Path, typer.Option(help="Regionsdokument.")] = Path("data/grenland.yaml"),
    case_url: Annotated[str, typer.Option(help="Sakstjenesten.")] = "http://127.0.0.1:8101",
    log_url: Annotated[str, typer.Option(help="Loggtjenesten.")] = "http://127.0.0.1:8102",
    consent_url: Annotated[str, typer.Option(help="Samtykketjenesten.")] = (
        "http://127.0.0.1:8103"
    ),
) -> None:
    """Last demoregionen og noen saker inn i en kjørende Stafett (utvikling)."""
    from stafett_shared.demo import DemoError, load_demo

    settings = CommonSettings()
    if settings.production or not settings.dev_issuer_enabled:
        err.print("[red]Demo er for utvikling; utviklingsutstederen er slått av.[/red]")
        raise typer.Exit(2)
    try:
        created = load_demo(
            settings,
            _dev_issuer(settings),
            region,
            case_url=case_url,
            log_url=log_url,
            consent_url=consent_url,
        )
    except DemoError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    for line in created:
        console.print(line)


@app.command()
def token(
    person: Annotated[str, typer.Argument(help="Person-id (eller klient-id med --client).")],
    client: Annotated[bool, typer.Option(help="Lag et klienttoken for et fagsystem.")] = False,
    scope: Annotated[
        list[str] | None,
        typer.Option(help="Scope for klienttoken (uten: de klienten er registrert med)."),
    ] = None,
    hours: Annotated[int, typer.Option(min=1, max=24)] = 8,
    consent_url: Annotated[str, typer.Option(help="Samtykketjenesten (for --client).")] = (
        "http://127.0.0.1:8103"
    ),
) -> None:
    """Skriv ut et utviklingstoken for den kjørende Stafett. Nektes i produksjon.

    Datamappen er STAFETT_DATA_DIR, ellers mappen til `stafett up` som kjører, ellers ./var;
    en ny nøkkel lages aldri. Et klienttoken er som Maskinportens: `scope` og `consumer`
    (organisasjonsnummeret) slik klienten er registrert i regionsdokumentet.
    """
    settings = CommonSettings()
    if settings.production or not settings.dev_issuer_enabled:
        err.print("[red]Utviklingsutstederen er slått av (produksjon).[/red]")
        raise typer.Exit(2)
    issuer = _dev_issuer(settings)
    consumer: str | None = None
    scopes = list(scope or [])
    if client:
        registered = _registered_client(issuer, settings, consent_url, person)
        consumer = str(registered.get("consumer_org") or "") or None
        if scope is None:
            scopes = [str(s) for s in registered.get("scopes") or []]
    try:
        value = issuer.issue(
            person, client=client, scopes=scopes, ttl_s=hours * 3600, consumer_org=consumer
        )
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    sys.stdout.write(value + "\n")


def _registered_client(
    issuer: DevIssuer, settings: CommonSettings, consent_url: str, client_id: str
) -> dict[str, Any]:
    """The client as the running system's directory registers it (its scopes and consumer),
    asked for as the development administrator."""
    import httpx

    admin = settings.dev_admin or "admin"
    auth = {"Authorization": f"Bearer {issuer.issue(admin, ttl_s=60)}"}
    try:
        answer = httpx.get(f"{consent_url}/api/v1/directory", headers=auth, timeout=30)
    except httpx.HTTPError:
        err.print(f"[red]Fant ikke samtykketjenesten på {escape(consent_url)}.[/red]")
        raise typer.Exit(1) from None
    if answer.status_code != 200:
        err.print(f"[red]Kunne ikke lese katalogen ({answer.status_code}).[/red]")
        raise typer.Exit(1)
    for registered in answer.json().get("clients") or []:
        if isinstance(registered, dict) and registered.get("id") == client_id:
            return registered
    err.print(f"[red]Klienten {escape(client_id)} er ikke registrert i katalogen.[/red]")
    raise typer.Exit(1)


@projections.command("rebuild")
def rebuild(
    service: Annotated[str, typer.Argument(help="case, log, consent eller notify")],
) -> None:
    """Bygg en tjenestes lesemodeller på nytt fra sekvens 1."""
    if service not in PROJECTING:
        err.print(f"[red]Ukjent tjeneste: {service}[/red]")
        raise typer.Exit(2)
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", f"stafett_{service}", "rebuild"], env=dict(os.environ), check=False
    )
    raise typer.Exit(result.returncode)


@projections.command("quarantine")
def quarantine(
    service: Annotated[
        str | None, typer.Argument(help="case, log, consent eller notify; uten: alle fire")
    ] = None,
) -> None:
    """Vis meldinger en tjeneste har lagt i karantene: sekvens, subject, årsak og tid."""
    if service is not None and service not in PROJECTING:
        err.print(f"[red]Ukjent tjeneste: {service}[/red]")
        raise typer.Exit(2)
    code = 0
    for name in [service] if service else PROJECTING:
        result = subprocess.run(  # noqa: S603
            [sys.executable, "-m", f"stafett_{name}", "quarantine"],
            env=dict(os.environ),
            check=False,
        )
        code = max(code, result.returncode)
    raise typer.Exit(code)


@app.command()
def bench(
    script: Annotated[str, typer.Argument(help="Skript i bench/ uten .py")] = "eventstore",
    quick: Annotated[bool, typer.Option(help="Færre meldinger (rask kontroll).")] = False,
) -> None:
    """Kjør en ytelsesmåling fra bench/ (i en utsjekk av prosjektet)."""
    path = Path.cwd() / "bench" / f"{script}.py"
    if not path.is_file():
        err.print(f"[red]Fant ikke {path.name} i ./bench (kjør fra prosjektmappen).[/red]")
        raise typer.Exit(2)
    args = [sys.executable, str(path), *(["--quick"] if quick else [])]
    raise typer.Exit(subprocess.run(args, check=False).returncode)  # noqa: S603


async def _export(output: Path, settings: CommonSettings) -> int:
    import base64
    import json

    from stafett_shared.eventstore import EventStore
    from stafett_shared.service import connect_nats

    # As the services connect: every URL of a cluster, the user's credentials, TLS.
    nc = await connect_nats(settings, "audit-export", wait_s=10.0)
    written = 0
    try:
        store = EventStore(nc, stream=settings.stream, subject_prefix=settings.subject_prefix)
        with output.open("w", encoding="utf-8") as handle:
            seq = 1
            while True:
                commits = await store.read(seq, limit=1000, decode=False)
                if not commits:
                    break
                for commit in commits:
                    record = {
                        "seq": commit.seq,
                        "subject": commit.subject,
                        "time": commit.headers.get("Nats-Time-Stamp", ""),
                        "data": base64.b64encode(commit.data).decode(),
                    }
                    # Canonical (sorted keys, no spaces), which the verifier reads fastest.
                    handle.write(json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n")
                    written += 1
                seq = commits[-1].seq + 1
    finally:
        await nc.close()
    return written


@audit.command("export")
def audit_export(
    output: Annotated[Path, typer.Argument(help="Fil for eksporten (JSON Lines).")],
) -> None:
    """Eksporter hele hendelsesstrømmen slik den er lagret (kryptert innhold forblir kryptert)."""
    import asyncio

    count = asyncio.run(_export(output, CommonSettings()))
    console.print(f"{count} meldinger eksportert til {output}.")


@audit.command("verify")
def audit_verify(
    export: Annotated[Path, typer.Argument(help="Eksport fra `stafett audit export`.")],
    checkpoint: Annotated[Path, typer.Argument(help="Signert sjekkpunkt (fil).")],
    vkey: Annotated[str, typer.Argument(help="Loggens offentlige nøkkel (vkey).")],
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Prosesser som leser eksporten samtidig (standard: antall kjerner).",
        ),
    ] = None,
) -> None:
    """Kontroller en eksport mot et sjekkpunkt uten server og uten andre nøkler."""
    command = [sys.executable, "-m", "stafett_log.verifier", str(export), str(checkpoint), vkey]
    if workers is not None:
        command += ["--workers", str(workers)]
    result = subprocess.run(command, check=False)  # noqa: S603
    raise typer.Exit(result.returncode)


@audit.command("replay")
def audit_replay(
    export: Annotated[Path, typer.Argument(help="Eksport fra `stafett audit export`.")],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Tidspunkt (RFC 3339, f.eks. 2026-03-01T12:00:00+01:00): historikken slik "
            "den sto da. Standard: hele eksporten.",
        ),
    ] = None,
    case: Annotated[str | None, typer.Option("--case", help="Bare denne saken (sak-id).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Skriv resultatet som JSON.")] = False,
) -> None:
    """Spill av historikken fram til et tidspunkt: hver sak slik den sto da (uten innhold)."""
    import json

    from rich.table import Table

    from stafett_shared.eventstore import parse_stream_time
    from stafett_shared.replay import ReplayError, replay

    moment = None
    if as_of is not None:
        try:
            moment = parse_stream_time(as_of)
        except ValueError:
            err.print("[red]--as-of må være et RFC 3339-tidspunkt med tidssone.[/red]")
            raise typer.Exit(2) from None
    try:
        with export.open(encoding="utf-8") as lines:
            result = replay(lines, moment)
    except OSError:
        err.print(f"[red]Kan ikke lese eksporten {export}.[/red]")
        raise typer.Exit(1) from None
    except (ReplayError, UnicodeDecodeError) as exc:
        err.print(f"[red]Eksporten kan ikke spilles av: {exc}[/red]")
        raise typer.Exit(1) from None
    if case is not None:
        result.cases = {k: v for k, v in result.cases.items() if k == case}
    if as_json:
        sys.stdout.write(json.dumps(result.as_json(), ensure_ascii=False, indent=2) + "\n")
        return
    stored = result.last_time.isoformat() if result.last_time else "–"
    console.print(
        f"Historikken {'per ' + moment.isoformat() if moment else 'i hele eksporten'}: "
        f"{result.messages} meldinger (til sekvens {result.last_seq}, lagret {stored}), "
        f"{len(result.cases)} saker."
    )
    if result.refused:
        reasons = Counter(r["reason"] for r in result.refused)
        console.print(
            f"{len(result.refused)} meldinger hoppet over, slik tjenestene satte dem i karantene "
            f"({', '.join(f'{n} {reason}' for reason, n in sorted(reasons.items()))}); "
            "se --json for sekvens og subject."
        )
    table = Table(
        "Sak",
        "Enhet",
        "Stafettholder",
        "Nivå",
        "Status",
        "Team",
        "Innføringer",
        "Samtykker",
        "Lesinger",
        "Avslag",
    )
    for case_id in sorted(result.cases):
        at = result.cases[case_id]
        entries = at.entries()
        consents = Counter(at.consents.values())
        table.add_row(
            case_id,
            at.unit_id or "–",
            at.holder_id or "–",
            "–" if at.level is None else str(at.level),
            "åpen" if at.status == "open" else "avsluttet",
            str(len(at.team)),
            f"{entries['appended']} (+{entries['corrected']} rettet, "
            f"{entries['retracted']} trukket)",
            ", ".join(f"{n} {_CONSENT_WORDS.get(s, s)}" for s, n in sorted(consents.items()))
            or "–",
            str(sum(at.reads.values())),
            str(at.denials_published),
        )
    console.print(table)


_CONSENT_WORDS = {
    "requested": "bedt om",
    "active": "aktive",
    "refused": "avslått",
    "withdrawn": "trukket",
    "expired": "utløpt",
}


@app.command("asyncapi")
def asyncapi_command(
    out: Annotated[
        Path | None, typer.Option("--out", help="Skriv dokumentet hit (ellers til stdout).")
    ] = None,
) -> None:
    """AsyncAPI 3-dokumentet over alt et fagsystem kan motta (webhooks og NATS)."""
    from stafett_shared.asyncapi import asyncapi_yaml

    text = asyncapi_yaml()
    if out is None:
        sys.stdout.write(text)
        return
    out.write_text(text, encoding="utf-8")
    typer.echo(f"Skrev {out}.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
