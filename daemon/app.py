"""Wiring: build every service from one Config, explicitly, with one clock."""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial
from pathlib import Path

from sqlalchemy.orm import Session

from daemon.audit.trail import AuditTrail
from daemon.cases.blobs import BlobStore
from daemon.cases.bounces import reroute_bounced_request
from daemon.cases.decisions import Decisions
from daemon.cases.droprequests import DropRequestHandler
from daemon.cases.relationcommands import RelationCommands
from daemon.cases.reorganisation import Reorganisations
from daemon.cases.reorgrunner import ReorgRerouter
from daemon.cases.replies import ReplyHandler
from daemon.cases.requests import RequestHandler
from daemon.cases.reroute import reroute_all
from daemon.cases.timers import Timers
from daemon.cases.versions import suspend_unbuildable
from daemon.cases.workflow import Workflow
from daemon.clock import Clock, SystemClock
from daemon.conditions.budgets import Budgets
from daemon.conditions.factors import Factors
from daemon.conditions.library import ConditionLibrary
from daemon.conditions.sets import read_condition_files
from daemon.config import Config
from daemon.directory.filerules import FileRules
from daemon.directory.importer import DirectoryDiff, import_directory_file, last_import_digest
from daemon.directory.relations import registry_for
from daemon.execution.destinations import load_destinations
from daemon.execution.executor import Executions
from daemon.execution.sender import ExecutionSender
from daemon.intake.bounces import BounceHandler
from daemon.intake.dropfolder import DropScanner, DropWatcher, Taker
from daemon.intake.droptakers import DirectoryTaker, RequestTaker
from daemon.intake.duplicates import Dedupe
from daemon.intake.imap import ImapChannel
from daemon.intake.pipeline import InboundProcessor
from daemon.intake.smtp import IntakeController, IntakeHandler
from daemon.kept_rules import CASE_TYPE, DESTINATIONS, case_types_at_start, destinations_at_start
from daemon.notify.alerts import AdminAlerts
from daemon.notify.compose import Composer
from daemon.notify.deadletters import DeadLetters
from daemon.notify.notifier import REQUIRED_TEMPLATES, Notifier
from daemon.notify.templates import Templates
from daemon.outbox.outbox import OutboxRunner
from daemon.outbox.returnpath import ReturnPaths
from daemon.outbox.transport import Transport, make_transport
from daemon.publication.builder import DeliveryBuilder
from daemon.publication.partnercheck import check_at_start
from daemon.publication.partners import PartnerError, PartnerRegistry
from daemon.publication.publisher import Publisher
from daemon.publication.stamp import Stamper, StampKey, StampKeyError
from daemon.routing.registry import TemplateRegistry
from daemon.routing.templates import read_template_files
from daemon.rulefiles import broken_files, remember_good, report_broken
from daemon.security.secrets import InsecureSecretError, load_or_create_key
from daemon.security.tokens import TokenService
from daemon.store.db import Store
from daemon.workqueue.queue import WorkQueue
from daemon.workqueue.runner import Runner

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The daemon cannot start as configured; `problems` says exactly why."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


class App:
    def __init__(
        self, cfg: Config, clock: Clock | None = None, transport: Transport | None = None,
        connect_timeout: int | None = None,
    ) -> None:
        """`connect_timeout`: for commands that must answer promptly (daemon.store.db)."""
        self.cfg = cfg
        self.clock = clock or SystemClock()
        cfg.paths.spool.mkdir(parents=True, exist_ok=True)
        self.store = Store(cfg.database_url, connect_timeout)
        self.queue = WorkQueue(self.store, self.clock, cfg.queue, cfg.instance.name)
        # A refused case type or destinations file leaves its last good version in force.
        self.types, self.broken_rules, kept = case_types_at_start(
            self.store, cfg.paths.rules / "casetypes")
        self.good_files = {CASE_TYPE: kept}
        self.templates = Templates(cfg.paths.templates, zone=cfg.workflow.timezone)
        problems = self.templates.check(REQUIRED_TEMPLATES)
        if problems:
            raise StartupError("mail templates are incomplete", problems)
        self.tokens = TokenService(
            load_or_create_key(cfg.token_key_path), timedelta(hours=cfg.mail.token_ttl_hours)
        )
        self.notifier = Notifier(
            self.templates, Composer(cfg.mail, self.clock), self.queue, cfg.mail
        )
        self.alerts = AdminAlerts(self.notifier, self.clock, cfg.workflow.admin)
        fields_of = {t.name: {f.name for f in t.fields} for t in self.types.all()}
        # A refused rule file never stops the start (daemon.rulefiles): see prepare().
        templates, bad = read_template_files(cfg.paths.rules / "workflows", fields_of)
        self.broken_rules += broken_files("workflow template", bad)
        self.registry = TemplateRegistry(self.store, templates, fields_of, self.clock)
        self.audit = AuditTrail(self.clock)
        self.workflow = Workflow(
            cfg, self.clock, self.types, self.tokens, self.notifier, self.registry,
            BlobStore(cfg.blobs_dir), Budgets(self.clock, self.audit, cfg.workflow.zone),
        )
        good_sets, bad = read_condition_files(cfg.paths.rules / "conditions", fields_of)
        for _, cs in good_sets.values():
            self.workflow.conditions.add(cs)
        self.broken_rules += broken_files("condition set", bad)
        self.workflow.library = ConditionLibrary(self.clock, fields_of, self.audit.append,
                                                 self.audit.lock)
        self.workflow.factors = Factors(self.clock, self.audit)
        self.executions = self._executions(fields_of)
        self.workflow.executions = self.executions
        self.partners = PartnerRegistry(self.clock, self.audit.append,
                                        case_types=set(fields_of))
        try:
            self.stamp_key = StampKey.load_or_create(cfg.stamp_key_path)
        except (InsecureSecretError, StampKeyError) as exc:
            raise StartupError("the stamp key is refused", [str(exc)]) from None
        self.stamper = Stamper(self.stamp_key, self.clock, self.workflow.blobs)
        self.publisher = Publisher(self.store, self.queue, self.workflow, self.partners,
                                   self.stamper)
        self.workflow.publisher = self.publisher
        self.delivery_builder = DeliveryBuilder(
            self.store, self.queue, self.clock, self.publisher, self.stamp_key,
            cfg.transmission_dir, cfg.publication.progress_every_mb * 1024 * 1024)
        self.decisions = Decisions(self.workflow)
        self.reorganisations = Reorganisations(self.store, self.workflow, self.audit,
                                               self.queue, cfg.workflow.reorg_on_failure)
        self.timers = Timers(self.store, self.workflow, self.audit, self.reorganisations)
        self.drops = DropRequestHandler(self.workflow)
        self.inbound = InboundProcessor(
            self.store, self.queue, cfg.mail, RequestHandler(
                self.workflow, RelationCommands(registry_for(cfg, self.clock, self.audit),
                                                self.notifier)),
            ReplyHandler(self.workflow, self.decisions), self.drops,
        )
        # Bounces: every mail leaves with a signed return path naming it (VERP).
        self.return_paths = ReturnPaths(load_or_create_key(cfg.token_key_path), cfg.mail)
        self.inbound.bounces = BounceHandler(self.workflow, self.alerts, self.return_paths)
        transport = transport or make_transport(cfg)
        self.outbox = OutboxRunner(self.store, self.queue, transport, self.clock,
                                   self.return_paths)
        self.execution_sender = ExecutionSender(
            self.store, self.queue, self.executions, self.destination_templates,
            self.notifier.composer, transport, self.clock, self.return_paths,
        )
        poll = cfg.queue.poll_seconds
        # Every dead letter is told to the administrator in the transaction that kills it.
        # An approval request the relay refuses for good is rerouted like a bounced one.
        self.dead_letters = dead = DeadLetters(
            self.alerts, self.workflow.record,
            partial(reroute_bounced_request, self.workflow, self.alerts))
        self.inbound_runner = Runner(self.queue, self.inbound, poll, dead)
        self.outbox_runner = Runner(self.queue, self.outbox, poll, dead)
        self.execution_runner = Runner(self.queue, self.execution_sender, poll, dead)
        self.publication_runner = Runner(self.queue, self.delivery_builder, poll, dead)
        # A reorganisation's commit switches at once; its moved cases follow here.
        self.rerouter = ReorgRerouter(self.store, self.queue, self.workflow)
        self.reorg_runner = Runner(self.queue, self.rerouter, poll, dead)
        self.smtp: IntakeController | None = None
        dedupe = Dedupe.from_config(cfg.mail)
        self.imap = [ImapChannel(acc, self.queue, self.wake_inbound, dedupe) for acc in cfg.imap]
        self.watcher = DropWatcher(self._drop_scanners())

    def _executions(self, fields_of: dict[str, set[str]]) -> Executions:
        """Destinations from <rules>/destinations.toml; their own mail templates live in
        <rules>/destinations/templates/<locale>/ and fall back to the mail templates."""
        rules, wf = self.cfg.paths.rules, self.cfg.workflow
        self.destination_templates = Templates(self.cfg.paths.templates,
                                               overrides=rules / "destinations" / "templates",
                                               zone=wf.timezone)
        path = rules / "destinations.toml"
        destinations, broken, self.good_files[DESTINATIONS] = destinations_at_start(
            self.store, path, lambda text: load_destinations(
                path, fields_of, wf.business_days, wf.holidays,
                self.destination_templates.problem, text))
        self.broken_rules += broken
        return Executions(self.workflow, destinations, self.clock, self.cfg.queue.max_attempts)

    def _drop_scanners(self) -> list[DropScanner]:
        d = self.cfg.drop
        takers: list[tuple[Path, Taker]] = [
            (f.path, RequestTaker(f, d, self.queue, self.drops, self.workflow.blobs,
                                  self.wake_inbound, self.cfg.cases.blocked_extensions))
            for f in d.folders
        ]
        if d.admin_folder is not None:
            takers.append((d.admin_folder, DirectoryTaker(
                self.store, self.clock, d.max_bytes, self.reroute_after_import,
                FileRules.from_config(self.cfg))))
        return [DropScanner(path, taker, self.clock, d.stable_seconds, d.rescan_seconds,
                            d.max_bytes, self.store, self.alerts) for path, taker in takers]

    def prepare(self) -> None:
        """Migrate, sync rule and partner files, load the configured directory if it changed,
        recover interrupted work."""
        self.store.migrate()
        for kind, texts in self.good_files.items():
            remember_good(self.store, self.clock, kind, texts)
        self.registry.restore([b for b in self.broken_rules if b.kind == "workflow template"])
        for line in self.registry.register():
            log.info("registered %s", line)
        with self.store.transaction() as s:  # before anything routes (the directory import)
            for line in suspend_unbuildable(self.workflow, s):
                log.warning("%s", line)
        with self.store.transaction() as s:
            lines, bad_sets = self.workflow.library.sync_files(
                s, self.cfg.paths.rules / "conditions")
        for line in lines:
            log.info("%s", line)
        self.broken_rules = [*(b for b in self.broken_rules if b.kind != "condition set"),
                             *bad_sets]
        self.sync_partners()
        self.sync_directory()
        report_broken(self.store, self.alerts, self.broken_rules)  # after the admin is known
        check_at_start(self.store, self.partners, self.alerts)  # what each partner needs
        reclaimed = self.queue.reclaim(at_start=True, on_dead=self.dead_letters)
        if reclaimed:
            log.warning("requeued %d item(s) interrupted by a previous stop", reclaimed)

    def sync_partners(self) -> list[str]:
        """Partner files into the database; a broken file stops the start, naming the lines."""
        try:
            with self.store.transaction() as s:
                self.audit.lock(s)  # queue with other audited writers (other instances too)
                lines = self.partners.sync_files(s, self.cfg.partners_dir)
        except PartnerError as exc:
            raise StartupError("partner files are invalid", exc.errors) from None
        for line in lines:
            log.info("%s", line)
        return lines

    def reroute_after_import(self, s: Session, diff: DirectoryDiff) -> None:
        """Every waiting case follows the new directory, in the import's transaction."""
        checks = reroute_all(self.workflow, s, "the organisation directory changed")
        moved = sum(c.outcome in ("moves", "fails", "resumes") for c in checks)
        if moved:
            log.info("directory import: %d waiting ask(s) re-resolved, %d changed", len(checks),
                     moved)

    def sync_directory(self) -> DirectoryDiff | None:
        path = self.cfg.directory.file
        if path is None:
            return None
        diff = import_directory_file(self.store, path, self.clock.now(),
                                     unless_digest=last_import_digest(self.store, str(path)),
                                     after=self.reroute_after_import,
                                     rules=FileRules.from_config(self.cfg))
        if diff is None:
            return None
        log.info("directory %s imported: %s", path, "; ".join(diff.lines()))
        return diff

    def wake_inbound(self) -> None:
        self.inbound_runner.wakeup.set()

    def wake_senders(self) -> None:
        self.outbox_runner.wakeup.set()
        self.execution_runner.wakeup.set()

    def start(self) -> None:
        if self.cfg.queue.runners:
            self.inbound_runner.start()
            self.outbox_runner.start()
            self.execution_runner.start()
            self.publication_runner.start()
            self.reorg_runner.start()
            self.rerouter.on_done = self.outbox_runner.wakeup.set
            self.reorganisations.on_commit = self.reorg_runner.wakeup.set
            # New mails (and executions due now) should go out without waiting a poll.
            self.inbound.on_done = self.wake_senders
            self.execution_sender.on_done = self.outbox_runner.wakeup.set
        if self.cfg.smtp.enabled:
            handler = IntakeHandler(self.queue, self.cfg.mail, self.cfg.smtp.lmtp,
                                    self.wake_inbound)
            self.smtp = IntakeController(handler, self.cfg.smtp)
            try:
                self.smtp.start()
            except (OSError, RuntimeError) as exc:
                self.smtp = None
                self.stop()
                where = f"{self.cfg.smtp.host}:{self.cfg.smtp.port}"
                raise StartupError(f"cannot listen on {where}", [str(exc)]) from exc
            log.info("listening for %s on %s:%s", "LMTP" if self.cfg.smtp.lmtp else "SMTP",
                     self.cfg.smtp.host, self.cfg.smtp.port)
        for channel in self.imap:
            channel.start()
        self.watcher.start()
        if self.cfg.queue.runners:
            self.timers.start()

    def stop(self) -> None:
        self.timers.stop()
        self._anchor_on_stop()
        self.watcher.stop()
        for channel in self.imap:
            if channel.thread.is_alive():
                channel.stop()
        if self.smtp is not None:
            self.smtp.stop()
            self.smtp = None
        for runner in (self.inbound_runner, self.outbox_runner, self.execution_runner,
                       self.publication_runner, self.reorg_runner):
            if runner.thread.is_alive():
                runner.stop()
        self.store.dispose()

    def _anchor_on_stop(self) -> None:
        """A clean stop leaves no case history outside the audit chain's anchors."""
        try:
            self.timers.anchor_histories()
        except Exception:  # a stop must finish; the next start's first pass anchors them
            log.exception("case histories could not be anchored at stop")
