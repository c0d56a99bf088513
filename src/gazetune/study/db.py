"""Study database: tables (SQLAlchemy 2 Core), engine set-up and schema migrations.

SQLite (WAL journal) is the embedded default; PostgreSQL is used when the URL says so.  The same
table definitions serve both.

Migrations
----------
A table ``schema_version`` holds the versions applied; :data:`MIGRATIONS` is an ordered list of
``(version, description, function(connection))``, each run in its own transaction at start-up.
We chose this over Alembic because the schema belongs to this one module and must upgrade itself
wherever ``gazetune study serve`` starts (a researcher's laptop, a lab PC) without an
``alembic.ini``/script folder to ship and locate; both SQLite and PostgreSQL run DDL inside a
transaction, so a failed migration leaves the previous version intact.  A database written by a
newer gazetune (higher version than this code knows) is refused rather than silently misused.

Gaze samples
------------
One row per uploaded batch (not per sample): ``data`` holds a float64 array of shape
``(len(SAMPLE_COLUMNS), n)`` in little-endian bytes; ``digest`` is its SHA-256, so a retried
batch (same trial, source and ``seq``) is recognised as a duplicate and a conflicting one refused.
"""

from __future__ import annotations

import hashlib
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

SAMPLE_COLUMNS = ("t_ms", "screen_x", "screen_y", "x", "y", "pupil", "confidence")
"""Rows of a stored gaze batch: time (ms, client clock or LSL clock), screen position (CSS px of
the viewport), image position (pixels of the served image), pupil and confidence (NaN when
absent)."""

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.Float, nullable=False),
)

generator_versions = sa.Table(
    "generator_versions", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(20), nullable=False),  # demo-blend | checkpoint | folder
    sa.Column("source", sa.String(500)),  # checkpoint path / folder
    sa.Column("note", sa.Text),
    sa.Column("trained_on", sa.Text),  # JSON: what the trainer used (cursor, n responses, ...)
    sa.Column("created_at", sa.Float, nullable=False),
)

stimuli = sa.Table(
    "stimuli", metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # random hex: never reveals the kind
    sa.Column("kind", sa.String(10), nullable=False),  # real | synthetic
    sa.Column("name", sa.String(300), nullable=False),  # real file name, or v{version}_s{seed}
    sa.Column("generator_version", sa.Integer, sa.ForeignKey("generator_versions.version")),
    sa.Column("seed", sa.BigInteger),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("png", sa.LargeBinary, nullable=False),
    # "" (plain), or "guided_toward" / "guided_away": a guided variant of a plain synthetic image
    sa.Column("condition", sa.String(20), nullable=False, server_default=""),
    sa.Column("source_stimulus_id", sa.String(32)),  # guided variant: the plain stimulus it was made from
    sa.Index("ix_stimuli_kind_version", "kind", "generator_version"),
)

participants = sa.Table(
    "participants", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("external_id", sa.String(200)),  # e.g. a crowdsourcing worker id from the URL
    sa.Column("token", sa.String(64), nullable=False, unique=True),
    sa.Column("gaze_mode", sa.String(10), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("consent_at", sa.Float, nullable=False),
    sa.Column("user_agent", sa.String(500)),
    sa.Column("screen", sa.Text),  # JSON as reported by the browser
    sa.Column("px_per_mm", sa.Float),  # CSS px per mm (card calibration)
    sa.Column("viewing_distance_mm", sa.Float),  # blind-spot test
    sa.Column("completion_code", sa.String(64), nullable=False),
    sa.Column("completed_at", sa.Float),
    sa.Column("excluded", sa.Boolean),  # exclusion rules at completion (None: not judged)
    sa.Column("exclusion_reasons", sa.Text),  # JSON list of the rules that excluded the participant
)

trials = sa.Table(
    "trials", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("participant_id", sa.Integer, sa.ForeignKey("participants.id"), nullable=False),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("stimulus_id", sa.String(32), sa.ForeignKey("stimuli.id"), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),  # pending | shown | answered
    sa.Column("image_rect", sa.Text),  # JSON [left, top, width, height] in CSS px
    sa.Column("viewport", sa.Text),  # JSON [width, height] CSS px, device pixel ratio
    sa.Column("shown_at", sa.Float),  # server time, s
    sa.Column("client_onset_ms", sa.Float),  # performance.now() at image onset
    sa.Column("lsl_onset", sa.Float),  # LSL clock at start (s), tracker mode
    sa.Column("lsl_offset", sa.Float),  # LSL clock at answer (s)
    sa.Column("answer", sa.Integer),
    sa.Column("rt_ms", sa.Float),
    sa.Column("timed_out", sa.Boolean),  # image hidden by max_display_ms before the answer
    sa.Column("answered_at", sa.Float),
    sa.Column("stimulus2_id", sa.String(32), sa.ForeignKey("stimuli.id")),  # 2AFC: the right-hand image
    sa.Column("real_side", sa.Integer),  # 2AFC: 0 = the left image is the real one, 1 = the right
    sa.Column("image_rect2", sa.Text),  # 2AFC: JSON rectangle of the right-hand image
    sa.Column("exposure_ms", sa.Float),  # HYPE-time: how long the image was shown before the mask
    sa.Column("gaze_batches_sent", sa.Integer),  # batches the page made for this trial (told with the answer)
    sa.Column("gaze_complete", sa.Boolean),  # every one of them is stored (None: the page did not say)
    sa.Column("gaze_model", sa.Integer),  # webcam: which fit of the gaze model predicted it (1 = calibration, +1 per re-fit)
    sa.Column("expression", sa.Text),  # webcam: JSON mean expression scores over the trial's frames (numbers only)
    sa.UniqueConstraint("participant_id", "idx", name="uq_trials_participant_idx"),
)

gaze_batches = sa.Table(
    "gaze_batches", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("trial_id", sa.Integer, sa.ForeignKey("trials.id"), nullable=False),
    sa.Column("source", sa.String(10), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.UniqueConstraint("trial_id", "source", "seq", name="uq_gaze_batch_seq"),
)

calibrations = sa.Table(
    "calibrations", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("participant_id", sa.Integer, sa.ForeignKey("participants.id"), nullable=False),
    sa.Column("kind", sa.String(12), nullable=False),  # validation | drift
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("before_trial", sa.Integer),  # trial index it precedes
    sa.Column("accuracy_px", sa.Float),
    sa.Column("precision_px", sa.Float),
    sa.Column("accuracy_deg", sa.Float),
    sa.Column("precision_deg", sa.Float),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("points", sa.Text),  # JSON per target: target, mean gaze, n, error
    sa.Column("refit", sa.Boolean),  # webcam drift check: its samples re-fitted the gaze model afterwards
    sa.Column("gaze_model", sa.Integer),  # webcam: the fit of the gaze model in use after this check
    sa.Column("created_at", sa.Float, nullable=False),
)

responses = sa.Table(
    "responses", metadata,
    sa.Column("id", sa.Integer, primary_key=True),  # the trainer's cursor
    sa.Column("trial_id", sa.Integer, sa.ForeignKey("trials.id"), nullable=False, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

markers = sa.Table(
    "markers", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("trial_id", sa.Integer, sa.ForeignKey("trials.id")),
    sa.Column("stream", sa.String(200), nullable=False),
    sa.Column("t_lsl", sa.Float, nullable=False),
    sa.Column("value", sa.Text, nullable=False),  # JSON list of channel values
)

meta_kv = sa.Table(
    "meta_kv", metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


def _migrate_1(conn: Connection) -> None:
    for t in metadata.sorted_tables:
        if t.name != "schema_version":
            t.create(conn, checkfirst=True)


_COLUMNS_2 = {"participants": ("excluded", "exclusion_reasons"),
              "trials": ("stimulus2_id", "real_side", "image_rect2", "exposure_ms", "gaze_batches_sent",
                         "gaze_complete")}


def _add_columns(conn: Connection, columns: dict[str, tuple[str, ...]]) -> None:
    """Add the columns an older database lacks (a database made by this version already has them
    from :func:`_migrate_1`)."""
    inspector = sa.inspect(conn)
    quote = conn.dialect.identifier_preparer.quote
    for table, names in columns.items():
        have = {c["name"] for c in inspector.get_columns(table)}
        for name in names:
            if name not in have:
                col = metadata.tables[table].c[name]
                ddl = f"ALTER TABLE {table} ADD COLUMN {quote(name)} {col.type.compile(conn.dialect)}"
                if col.server_default is not None:  # existing rows get the default
                    ddl += f" DEFAULT '{col.server_default.arg}'" + ("" if col.nullable else " NOT NULL")
                conn.exec_driver_sql(ddl)


def _migrate_2(conn: Connection) -> None:
    """Trial designs and exclusions."""
    _add_columns(conn, _COLUMNS_2)


_COLUMNS_3 = {"trials": ("gaze_model", "expression"), "calibrations": ("refit", "gaze_model")}


def _migrate_3(conn: Connection) -> None:
    """Webcam: gaze-model re-fits at drift checks, expression scores per trial."""
    _add_columns(conn, _COLUMNS_3)


_COLUMNS_4 = {"stimuli": ("condition", "source_stimulus_id")}


def _migrate_4(conn: Connection) -> None:
    """Guided variants: each stimulus's condition ("" for every stimulus stored before) and the
    plain stimulus a variant was made from."""
    _add_columns(conn, _COLUMNS_4)


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "initial schema: generators, stimuli, participants, trials, gaze, calibrations, "
        "responses, markers", _migrate_1),
    (2, "trial designs (2AFC pair, HYPE-time exposure), participant exclusions, gaze completeness per trial",
     _migrate_2),
    (3, "webcam: gaze model re-fits at drift checks (trials, validations), expression scores per trial",
     _migrate_3),
    (4, "guided variants: stimulus condition and the plain stimulus a variant was made from", _migrate_4),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def migrate(engine: Engine) -> int:
    """Bring the schema up to :data:`SCHEMA_VERSION`; returns the version now in the database.

    Raises ``RuntimeError`` when the database was written by a newer gazetune.
    """
    schema_version.create(engine, checkfirst=True)
    with engine.connect() as conn:
        current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
    if current > SCHEMA_VERSION:
        raise RuntimeError(
            f"study database schema version {current} is newer than this gazetune knows "
            f"({SCHEMA_VERSION}); upgrade gazetune")
    for version, desc, fn in MIGRATIONS:
        if version <= current:
            continue
        with engine.begin() as conn:
            fn(conn)
            conn.execute(schema_version.insert().values(
                version=version, description=desc, applied_at=time.time()))
        current = version
    return current


def make_engine(url: str, sqlite_synchronous: str = "NORMAL") -> Engine:
    """Engine for ``url``.  SQLite gets WAL, ``synchronous`` as given, a 10 s busy timeout and
    foreign keys; its folder is created.  PostgreSQL gets a connection pool of 20."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 10},
                                  pool_size=20, max_overflow=20)
        sync = sqlite_synchronous.upper()
        engine.info = {"autocheckpoint": True}  # type: ignore[attr-defined]

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sync}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=10000")
            if not engine.info["autocheckpoint"]:  # type: ignore[attr-defined]
                cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        return engine
    return sa.create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)


class Database:
    """Engine + a write lock.

    SQLite allows one writer at a time; taking an in-process lock around write transactions
    avoids ``database is locked`` errors on lock upgrades.  PostgreSQL needs no lock.
    """

    def __init__(self, url: str, sqlite_synchronous: str = "NORMAL") -> None:
        self.url = url
        self.engine = make_engine(url, sqlite_synchronous)
        self.is_sqlite = url.startswith("sqlite")
        self._lock = threading.Lock() if self.is_sqlite else None
        self.version = migrate(self.engine)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (committed on exit, rolled back on an exception)."""
        if self._lock is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._lock:
            with self.engine.begin() as conn:
                # take SQLite's write lock up front: with several server processes (uvicorn
                # workers) a read-then-write transaction could otherwise fail on the lock upgrade
                # instead of waiting (busy_timeout)
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                yield conn

    def checkpoint_in_background(self, every_s: float = 0.5) -> None:
        """SQLite: move WAL checkpoints off the request path.

        By default the connection whose commit makes the WAL pass 1000 pages copies them into
        the database file and syncs it, inside that request.  Here the serving connections
        never checkpoint; a daemon thread with its own connection runs a PASSIVE checkpoint
        every ``every_s`` seconds (writers go on meanwhile).  Commits stay as durable as before.
        """
        path = self.url.split("///", 1)[1] if "///" in self.url else ""
        if not self.is_sqlite or not path or path == ":memory:" or getattr(self, "_checkpointer", None):
            return
        import sqlite3

        self.engine.info["autocheckpoint"] = False  # type: ignore[attr-defined]
        self.engine.dispose()  # pooled connections re-open with wal_autocheckpoint=0
        stop = threading.Event()

        def run() -> None:
            conn = sqlite3.connect(path, timeout=10, check_same_thread=False)
            while not stop.wait(every_s):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    pass  # busy or locked: next time
            conn.close()

        self._checkpointer = (threading.Thread(target=run, daemon=True, name="sqlite-checkpoint"), stop)
        self._checkpointer[0].start()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        if getattr(self, "_checkpointer", None):
            self._checkpointer[1].set()
            self._checkpointer[0].join(5)
            self._checkpointer = None
        self.engine.dispose()


def pack_samples(cols: dict[str, np.ndarray]) -> tuple[bytes, str, int]:
    """Pack sample columns (each ``(n,)``; missing columns become NaN) into ``(bytes, sha256 hex,
    n)``; see :data:`SAMPLE_COLUMNS`."""
    n = len(cols["t_ms"])
    arr = np.full((len(SAMPLE_COLUMNS), n), np.nan, dtype="<f8")
    for i, name in enumerate(SAMPLE_COLUMNS):
        if cols.get(name) is not None:
            arr[i] = np.asarray(cols[name], dtype=np.float64)
    data = arr.tobytes()
    return data, hashlib.sha256(data).hexdigest(), n


def unpack_samples(data: bytes) -> dict[str, np.ndarray]:
    """Inverse of :func:`pack_samples`: ``{column: float64 (n,)}``."""
    arr = np.frombuffer(data, dtype="<f8").reshape(len(SAMPLE_COLUMNS), -1)
    return {name: arr[i] for i, name in enumerate(SAMPLE_COLUMNS)}
