"""Numbered migrations, tracked by ``PRAGMA user_version``. Append only; never edit a shipped one."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: events, keys, the photo queue, rejections, hot-folder bookkeeping
    """
    CREATE TABLE events (
        code TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_at TEXT NOT NULL,
        demo INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE functions (
        event TEXT NOT NULL REFERENCES events(code) ON DELETE CASCADE,
        name TEXT NOT NULL,
        PRIMARY KEY (event, name)
    );
    CREATE TABLE upload_keys (
        username TEXT PRIMARY KEY,
        event TEXT NOT NULL,
        function TEXT NOT NULL,
        camera TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT,
        FOREIGN KEY (event, function) REFERENCES functions(event, name) ON DELETE CASCADE
    );
    CREATE TABLE photos (
        id INTEGER PRIMARY KEY,
        event TEXT NOT NULL REFERENCES events(code),
        function TEXT NOT NULL,
        camera TEXT NOT NULL,
        username TEXT,
        original_name TEXT NOT NULL,
        ftp_path TEXT,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        kind TEXT NOT NULL,
        searchable INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued',
        stored_path TEXT NOT NULL,
        received_at TEXT NOT NULL,
        capture_time TEXT,
        body_serial TEXT,
        make TEXT,
        model TEXT,
        orientation INTEGER,
        width INTEGER,
        height INTEGER,
        UNIQUE (event, sha256)
    );
    CREATE INDEX photos_by_event ON photos (event, id);
    CREATE INDEX photos_by_state ON photos (state, id);
    CREATE TABLE rejections (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        username TEXT,
        event TEXT,
        original_name TEXT NOT NULL,
        size INTEGER NOT NULL,
        reason TEXT NOT NULL,
        quarantine_path TEXT
    );
    CREATE TABLE hotfolder_seen (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        outcome TEXT NOT NULL
    );
    """,
)
