import MulanCore

/// The catalog schema as an ordered list of migrations. Each runs once, in a transaction, and is
/// recorded in `schema_migrations`. Never edit a released migration: add a new one.
/// docs/catalog.md describes the tables.
enum Migrations {
    static let all: [(version: Int, name: String, sql: String, after: (@Sendable (Database) throws(MulanError) -> Void)?)] = [
        (1, "ingest", """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            stage TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            settings TEXT NOT NULL,
            summary TEXT
        );
        CREATE TABLE tracks (
            id INTEGER PRIMARY KEY,
            track_id TEXT NOT NULL UNIQUE,
            source_path TEXT NOT NULL,
            manifest_file TEXT,
            manifest_line INTEGER,
            split TEXT,
            start_s REAL,
            end_s REAL,
            file_size INTEGER,
            content_hash TEXT,
            container TEXT,
            codec TEXT,
            orig_sample_rate INTEGER,
            orig_channels INTEGER,
            channel_layout TEXT,
            duration_s REAL,
            status TEXT NOT NULL CHECK (status IN ('ingested', 'failed')),
            reason TEXT,
            detail TEXT,
            decode_errors INTEGER NOT NULL DEFAULT 0,
            clips_kept INTEGER NOT NULL DEFAULT 0,
            clips_silent INTEGER NOT NULL DEFAULT 0,
            tail_dropped_s REAL NOT NULL DEFAULT 0,
            downmix_gain REAL NOT NULL DEFAULT 1,
            sample_rate INTEGER NOT NULL,
            settings_key TEXT NOT NULL,
            run_id INTEGER REFERENCES runs(id),
            updated_at TEXT NOT NULL
        );
        CREATE INDEX tracks_status ON tracks(status, reason);
        CREATE TABLE clips (
            id INTEGER PRIMARY KEY,
            track_rowid INTEGER NOT NULL REFERENCES tracks(id) ON DELETE CASCADE,
            clip_index INTEGER NOT NULL,
            start_s REAL NOT NULL,
            duration_s REAL NOT NULL,
            sample_rate INTEGER NOT NULL,
            rms REAL NOT NULL,
            peak REAL NOT NULL,
            silence_share REAL NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('kept', 'silent')),
            flac_path TEXT,
            flac_sha256 TEXT,
            UNIQUE (track_rowid, clip_index),
            CHECK ((status = 'kept') = (flac_sha256 IS NOT NULL))
        );
        CREATE INDEX clips_sha ON clips(flac_sha256);
        CREATE TABLE raw_texts (
            id INTEGER PRIMARY KEY,
            track_id TEXT NOT NULL,
            origin TEXT NOT NULL,
            field TEXT NOT NULL,
            text TEXT NOT NULL,
            origin_file TEXT,
            origin_line INTEGER
        );
        CREATE INDEX raw_texts_track ON raw_texts(track_id, origin);
        CREATE TABLE rejected_rows (
            id INTEGER PRIMARY KEY,
            manifest_file TEXT NOT NULL,
            manifest_line INTEGER NOT NULL,
            track_id TEXT,
            reason TEXT NOT NULL,
            detail TEXT NOT NULL,
            raw TEXT NOT NULL,
            run_id INTEGER REFERENCES runs(id),
            UNIQUE (manifest_file, manifest_line)
        );
        CREATE TABLE file_gc (
            sha256 TEXT PRIMARY KEY
        );
        """, nil),
        (2, "weak-text", """
        ALTER TABLE raw_texts ADD COLUMN source TEXT
            CHECK (source IS NULL OR source IN ('tags', 'descriptions', 'playlists', 'aset'));
        ALTER TABLE raw_texts ADD COLUMN group_id TEXT;
        ALTER TABLE raw_texts ADD COLUMN repaired INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX raw_texts_source ON raw_texts(source, track_id);
        CREATE INDEX raw_texts_file ON raw_texts(origin_file);
        CREATE TABLE text_files (
            path TEXT PRIMARY KEY,
            format TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            options TEXT NOT NULL,
            texts INTEGER NOT NULL,
            rejects INTEGER NOT NULL,
            run_id INTEGER REFERENCES runs(id),
            loaded_at TEXT NOT NULL
        );
        """, { db throws(MulanError) in
            // Container tags recorded before this version get their source now.
            for row in try db.rows("SELECT DISTINCT field FROM raw_texts WHERE origin LIKE 'container:%'") {
                guard let field = row[0].string, let source = ContainerTagSources.source(forTag: field) else { continue }
                try db.run("UPDATE raw_texts SET source = ? WHERE origin LIKE 'container:%' AND field = ?",
                           [source.rawValue, field])
            }
        }),
        (3, "filter-decisions", """
        CREATE TABLE filter_versions (
            version TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            unfiltered INTEGER NOT NULL,
            config TEXT NOT NULL,
            vocab_sha256 TEXT NOT NULL,
            created_at TEXT NOT NULL,
            completed_at TEXT,
            stats TEXT
        );
        CREATE TABLE text_decisions (
            version TEXT NOT NULL REFERENCES filter_versions(version) ON DELETE CASCADE,
            raw_text_id INTEGER NOT NULL REFERENCES raw_texts(id) ON DELETE CASCADE,
            source TEXT NOT NULL,
            track_id TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('kept', 'dropped')),
            reason TEXT NOT NULL,
            normalized TEXT NOT NULL,
            token_ids TEXT,
            token_count INTEGER NOT NULL DEFAULT 0,
            details TEXT,
            PRIMARY KEY (version, raw_text_id)
        );
        CREATE INDEX text_decisions_track ON text_decisions(version, track_id, status);
        CREATE INDEX text_decisions_norm ON text_decisions(version, status, normalized);
        CREATE INDEX raw_texts_group ON raw_texts(source, group_id);
        """, nil),
        (4, "fingerprints-and-duplicates", """
        CREATE TABLE fingerprints (
            track_rowid INTEGER PRIMARY KEY REFERENCES tracks(id) ON DELETE CASCADE,
            algorithm INTEGER NOT NULL,
            sample_rate INTEGER NOT NULL,
            duration_s REAL NOT NULL,
            item_s REAL NOT NULL,
            item_count INTEGER NOT NULL,
            raw BLOB NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('ok', 'too-short', 'silent', 'low-information', 'failed')),
            detail TEXT,
            content_hash TEXT,
            created_at TEXT NOT NULL,
            CHECK (length(raw) = 4 * item_count)
        );
        CREATE INDEX fingerprints_status ON fingerprints(status);
        CREATE TABLE dup_groups (
            id INTEGER PRIMARY KEY,
            group_key TEXT NOT NULL UNIQUE,
            size INTEGER NOT NULL,
            representative TEXT NOT NULL,
            kinds TEXT NOT NULL,
            total_s REAL NOT NULL,
            removed_s REAL NOT NULL,
            run_id INTEGER REFERENCES runs(id)
        );
        CREATE TABLE dup_members (
            track_id TEXT PRIMARY KEY,
            group_id INTEGER NOT NULL REFERENCES dup_groups(id) ON DELETE CASCADE,
            decision TEXT NOT NULL CHECK (decision IN ('representative', 'kept', 'merged')),
            merged_into TEXT,
            reason TEXT NOT NULL,
            CHECK ((decision = 'merged') = (merged_into IS NOT NULL))
        );
        CREATE INDEX dup_members_group ON dup_members(group_id);
        CREATE INDEX dup_members_merged ON dup_members(merged_into);
        CREATE TABLE dup_pairs (
            id INTEGER PRIMARY KEY,
            group_id INTEGER NOT NULL REFERENCES dup_groups(id) ON DELETE CASCADE,
            track_a TEXT NOT NULL,
            track_b TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('exact', 'same-recording', 'contained', 'overlap')),
            a_start_s REAL,
            a_end_s REAL,
            b_start_s REAL,
            b_end_s REAL,
            bit_error_rate REAL,
            votes INTEGER,
            UNIQUE (track_a, track_b),
            CHECK (track_a < track_b)
        );
        CREATE TABLE dedupe_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            policy TEXT NOT NULL CHECK (policy IN ('split', 'merge')),
            run_id INTEGER REFERENCES runs(id),
            settings TEXT NOT NULL,
            signature TEXT NOT NULL,
            completed_at TEXT NOT NULL
        );
        """, nil),
        // Loudness (docs/catalog.md#loudness-schema-version-5): NULL in rows written before, until a re-run of
        // mulan-ingest measures their stored clips (loudness_status IS NULL marks them).
        (5, "loudness", """
        ALTER TABLE clips ADD COLUMN lufs REAL;
        ALTER TABLE clips ADD COLUMN loudness_range REAL;
        ALTER TABLE clips ADD COLUMN true_peak_db REAL;
        ALTER TABLE clips ADD COLUMN loudness_status TEXT
            CHECK (loudness_status IS NULL OR loudness_status IN ('measured', 'below-gate', 'failed'));
        ALTER TABLE clips ADD COLUMN lufs_before REAL;
        ALTER TABLE clips ADD COLUMN true_peak_before_db REAL;
        ALTER TABLE clips ADD COLUMN loudness_gain_db REAL;
        ALTER TABLE tracks ADD COLUMN loudness_target_lufs REAL;
        ALTER TABLE tracks ADD COLUMN loudness_max_true_peak_db REAL;
        """, nil),
        (6, "audio-filter", """
        CREATE TABLE audio_filter_versions (
            version TEXT PRIMARY KEY,
            score_set TEXT NOT NULL,
            checkpoint TEXT NOT NULL,
            checkpoint_sha256 TEXT NOT NULL,
            checkpoint_step INTEGER NOT NULL,
            vocab_sha256 TEXT NOT NULL,
            prompts TEXT NOT NULL,
            rules TEXT NOT NULL,
            created_at TEXT NOT NULL,
            completed_at TEXT,
            stats TEXT
        );
        CREATE TABLE audio_scores (
            score_set TEXT NOT NULL,
            clip_id INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
            flac_sha256 TEXT NOT NULL,
            scores TEXT,
            windows INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            PRIMARY KEY (score_set, clip_id),
            CHECK ((scores IS NULL) = (error IS NOT NULL))
        );
        CREATE INDEX audio_scores_clip ON audio_scores(clip_id);
        CREATE TABLE audio_decisions (
            version TEXT NOT NULL REFERENCES audio_filter_versions(version) ON DELETE CASCADE,
            clip_id INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
            track_id TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('kept', 'dropped')),
            reason TEXT NOT NULL,
            detail TEXT,
            PRIMARY KEY (version, clip_id)
        );
        CREATE INDEX audio_decisions_clip ON audio_decisions(clip_id);
        CREATE INDEX audio_decisions_status ON audio_decisions(version, status, reason);
        """, nil),
        // Dedupe over worker parts (docs/catalog.md#dedupe-over-worker-parts-schema-version-7): the group's
        // manifest split as dedupe computed it from all members, and the run that wrote the result into
        // every part. NULL in results written before (mulan-shard then computes the split itself).
        (7, "dedupe-parts", """
        ALTER TABLE dup_groups ADD COLUMN manifest_split TEXT;
        ALTER TABLE dedupe_state ADD COLUMN run_token TEXT;
        ALTER TABLE dedupe_state ADD COLUMN parts INTEGER;
        """, nil),
    ]

    static func apply(to db: Database) throws(MulanError) {
        try db.execute("""
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)
        """)
        let applied = Set(try db.rows("SELECT version FROM schema_migrations").compactMap { $0[0].int })
        if let newest = applied.max(), newest > (all.last?.version ?? 0) {
            throw MulanError(.catalog, "the catalog \(db.path) has schema version \(newest), newer than this mulan knows",
                             hint: "use a newer mulan, or another --workdir")
        }
        for migration in all where !applied.contains(migration.version) {
            do {
                try db.transaction {
                    try db.execute(migration.sql)
                    try migration.after?(db)
                    try db.run("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                               [migration.version, migration.name, Timestamp.now()])
                }
            } catch {
                throw MulanError(.catalog, "migration \(migration.version) (\(migration.name)) failed on \(db.path)",
                                 cause: error)
            }
        }
    }
}
