"""Numbered migrations, tracked by ``PRAGMA user_version``. Append only; never edit a shipped one.

Which photos are searchable has one definition: ``formats.SEARCHABLE_KINDS``, recorded per photo
by ingest as ``photos.searchable``; from migration 7 on, every trigger, index and query reads
that column (never a list of kinds), less the RAW half of a RAW+JPEG pair (``PAIRED_RAW``).
"""

from __future__ import annotations

# Two frames of one shutter (``{a}`` and ``{b}``, table aliases or NEW): same event, same camera
# key (or hot-folder camera), same body when both say, same base name (case-blind: IMG_0001.JPG
# and IMG_0001.CR3), same capture time (a frame with none is never paired). Frozen with
# migration 7, whose trigger holds it: a change is a new migration.
SAME_SHUTTER = (
    "{b}.event = {a}.event AND {b}.capture_time = {a}.capture_time AND {b}.camera = {a}.camera"
    " AND {b}.username IS {a}.username"
    " AND ({b}.body_serial IS NULL OR {a}.body_serial IS NULL OR {b}.body_serial = {a}.body_serial)"
    " AND instr({a}.original_name, '.') > 0"
    " AND lower(rtrim({b}.original_name, replace({b}.original_name, '.', '')))"
    " = lower(rtrim({a}.original_name, replace({a}.original_name, '.', '')))"
)
RAW_KINDS_SQL = "('raw', 'cr3')"  # formats.RAW_KINDS

# True for the RAW half of a RAW+JPEG pair, ``{p}`` being the photo (an alias, ``photos`` or
# NEW): its JPEG is the photo guests see and the index searches; the RAW stays stored and synced
# and the host downloads it beside the JPEG.
PAIRED_RAW = (
    "({p}.kind IN "
    + RAW_KINDS_SQL
    + " AND EXISTS (SELECT 1 FROM photos pair_jpeg WHERE pair_jpeg.kind = 'jpeg'"
    " AND pair_jpeg.id != {p}.id AND " + SAME_SHUTTER.format(a="{p}", b="pair_jpeg") + "))"
)

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
    # 7: every format searchable (photos.searchable, not kind = 'jpeg'), RAW+JPEG pairs, the
    # reason a photo could not be indexed ("no preview: ...")
    """
    UPDATE photos SET kind = 'png', searchable = 1 WHERE kind = 'other' AND lower(stored_path) LIKE '%.png';
    UPDATE photos SET kind = 'webp', searchable = 1 WHERE kind = 'other' AND lower(stored_path) LIKE '%.webp';
    ALTER TABLE photos ADD COLUMN faces_error TEXT;
    DROP INDEX photos_faces_todo;
    CREATE INDEX photos_faces_todo ON photos (id) WHERE faces_state IS NULL AND searchable = 1;
    CREATE INDEX photos_by_shutter ON photos (event, capture_time) WHERE capture_time IS NOT NULL;
    DROP TRIGGER photos_make_sync_jobs;
    CREATE TRIGGER photos_make_sync_jobs AFTER INSERT ON photos BEGIN
        INSERT INTO sync_jobs (photo_id, kind, priority, updated_at)
            SELECT NEW.id, 'proxy', 0, NEW.received_at
            WHERE NEW.searchable = 1 AND NOT """
    + PAIRED_RAW.format(p="NEW")
    + """;
        INSERT INTO sync_jobs (photo_id, kind, priority, updated_at)
            SELECT NEW.id, 'original', 1, NEW.received_at
            WHERE (SELECT originals_policy FROM events WHERE code = NEW.event) = 'all'
               OR ((SELECT originals_policy FROM events WHERE code = NEW.event) = 'jpeg'
                   AND NEW.kind = 'jpeg');
        UPDATE sync_jobs SET state = 'discarded', updated_at = NEW.received_at,
                last_error = 'RAW half of a RAW+JPEG pair: its JPEG is photo ' || NEW.id
            WHERE NEW.kind = 'jpeg' AND kind = 'proxy' AND state = 'pending' AND attempts = 0
              AND photo_id IN (SELECT r.id FROM photos r WHERE r.kind IN """
    + RAW_KINDS_SQL
    + " AND r.id != NEW.id AND "
    + SAME_SHUTTER.format(a="NEW", b="r")
    + """);
    END;
    INSERT INTO sync_jobs (photo_id, kind, priority, updated_at)
        SELECT id, 'proxy', 0, received_at FROM photos
        WHERE searchable = 1 AND NOT """
    + PAIRED_RAW.format(p="photos")
    + """
          AND NOT EXISTS (SELECT 1 FROM sync_jobs j WHERE j.photo_id = photos.id AND j.kind = 'proxy');
    """,
    # 8: the cloud proxy sized to the link: the long edge and quality chosen for the photo and the
    # SHA-256 of what they made, recorded before its upload (a retry sends the same bytes); photos
    # by arrival time, for the shooting rate the choice is made for
    """
    ALTER TABLE photos ADD COLUMN cloud_proxy_edge INTEGER;
    ALTER TABLE photos ADD COLUMN cloud_proxy_quality INTEGER;
    ALTER TABLE photos ADD COLUMN cloud_proxy_sha256 TEXT;
    CREATE INDEX photos_by_received ON photos (received_at);
    """,
    # 9: the host in control: moderation per event ('open': every frame shown to guests at once;
    # 'approve': only frames the host approved), face search on or off, the event's look on the
    # guest pages and table card; per photo the host's decision and a hide switch
    """
    ALTER TABLE events ADD COLUMN moderation TEXT NOT NULL DEFAULT 'open';
    ALTER TABLE events ADD COLUMN face_search INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE events ADD COLUMN event_date TEXT;
    ALTER TABLE events ADD COLUMN accent TEXT;
    ALTER TABLE events ADD COLUMN cover_photo_id INTEGER;
    ALTER TABLE photos ADD COLUMN approval TEXT;
    ALTER TABLE photos ADD COLUMN hidden_at TEXT;
    """,
)
