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
    # 2: cloud sync: jobs (lease, attempts, dead letter), multipart journal, usage ledger
    """
    ALTER TABLE events ADD COLUMN originals_policy TEXT NOT NULL DEFAULT 'all';
    ALTER TABLE events ADD COLUMN index_quota INTEGER;
    ALTER TABLE photos ADD COLUMN proxy_path TEXT;
    ALTER TABLE photos ADD COLUMN proxy_sha256 TEXT;
    ALTER TABLE photos ADD COLUMN searchable_in_cloud_at TEXT;
    CREATE TABLE sync_jobs (
        id INTEGER PRIMARY KEY,
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        priority INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        lease_until REAL,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        last_error TEXT,
        updated_at TEXT NOT NULL,
        UNIQUE (photo_id, kind)
    );
    CREATE INDEX sync_jobs_ready ON sync_jobs (state, priority, next_attempt_at, id);
    CREATE TABLE multipart_uploads (
        key TEXT PRIMARY KEY,
        upload_id TEXT NOT NULL,
        part_size INTEGER NOT NULL,
        parts TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE usage_ledger (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        event TEXT NOT NULL,
        operation TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        photo_id INTEGER,
        outcome TEXT NOT NULL
    );
    CREATE INDEX usage_ledger_key ON usage_ledger (idempotency_key);
    CREATE TABLE cloud_faces (
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        face_id TEXT NOT NULL,
        PRIMARY KEY (photo_id, face_id)
    );
    CREATE TRIGGER photos_make_sync_jobs AFTER INSERT ON photos BEGIN
        INSERT INTO sync_jobs (photo_id, kind, priority, updated_at)
            SELECT NEW.id, 'proxy', 0, NEW.received_at WHERE NEW.kind = 'jpeg';
        INSERT INTO sync_jobs (photo_id, kind, priority, updated_at)
            SELECT NEW.id, 'original', 1, NEW.received_at
            WHERE (SELECT originals_policy FROM events WHERE code = NEW.event) = 'all'
               OR ((SELECT originals_policy FROM events WHERE code = NEW.event) = 'jpeg'
                   AND NEW.kind = 'jpeg');
    END;
    INSERT INTO sync_jobs (photo_id, kind, priority, updated_at)
        SELECT id, 'proxy', 0, received_at FROM photos WHERE kind = 'jpeg';
    INSERT INTO sync_jobs (photo_id, kind, priority, updated_at)
        SELECT id, 'original', 1, received_at FROM photos;
    """,
    # 3: the local face index (guests search it on the venue LAN) and guest access per event
    """
    ALTER TABLE events ADD COLUMN pin_hash TEXT;
    ALTER TABLE events ADD COLUMN host_key_hash TEXT;
    ALTER TABLE photos ADD COLUMN faces_state TEXT;
    ALTER TABLE photos ADD COLUMN searchable_local_at TEXT;
    CREATE INDEX photos_faces_todo ON photos (id) WHERE faces_state IS NULL AND kind = 'jpeg';
    CREATE TABLE faces (
        id INTEGER PRIMARY KEY,
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        event TEXT NOT NULL,
        x INTEGER NOT NULL,
        y INTEGER NOT NULL,
        w INTEGER NOT NULL,
        h INTEGER NOT NULL,
        embedding BLOB
    );
    CREATE INDEX faces_by_event ON faces (event, id);
    CREATE INDEX faces_by_photo ON faces (photo_id);
    """,
    # 4: storage policy: originals deleted from the box once safely in S3
    """
    ALTER TABLE photos ADD COLUMN evicted_at TEXT;
    CREATE INDEX photos_evicted ON photos (evicted_at) WHERE evicted_at IS NOT NULL;
    """,
    # 5: the operator's cameras view (last frame and frames today per upload key)
    """
    CREATE INDEX photos_by_username ON photos (username, received_at);
    CREATE INDEX rejections_by_username ON rejections (username, id);
    """,
    # 6: a cut upload the camera then resumed to the end is one frame, not a rejection
    """
    ALTER TABLE rejections ADD COLUMN resumed_photo_id INTEGER;
    """,
)
