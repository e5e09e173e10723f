import Foundation
import MulanCatalog
import MulanCore

/// `mulan-shard`: writes WebDataset tar shards of the catalog's clips and their kept texts.
///
/// Plan: every kept clip of an ingested track that has kept text in some source (the latest filter
/// version of each source, or the one named), a split per track, a global shuffle by a seeded hash
/// of the sample key. Only the shuffle index (rank and clip id per sample) is held in memory; each
/// sample's row and texts are read from the catalog when it is written. Shards are written under a
/// temporary name and renamed when complete, then described by a sidecar; a re-run skips complete
/// shards whose hash matches their sidecar and finishes the rest, giving the same bytes.
public struct ShardJob: Sendable {
    public var workdir: String
    public var output: String?
    public var split: SplitSpec
    public var seed: UInt64
    public var samplesPerShard: Int
    public var maxShardBytes: Int?
    public var filterVersions: [String: String]
    public var console: Console

    public init(workdir: String, output: String?, split: SplitSpec, seed: UInt64, samplesPerShard: Int,
                maxShardBytes: Int?, filterVersions: [String: String], console: Console) {
        self.workdir = Paths.absolute(workdir)
        self.output = output.map(Paths.absolute)
        self.split = split
        self.seed = seed
        self.samplesPerShard = samplesPerShard
        self.maxShardBytes = maxShardBytes
        self.filterVersions = filterVersions
        self.console = console
    }

    struct Entry { var rank: UInt64; var clipID: Int }

    public func run() throws -> (manifest: DatasetManifest, directory: String) {
        let lock = try WorkdirLock(workdir: workdir, stage: "mulan-shard")
        defer { withExtendedLifetime(lock) {} }
        let catalog = try Catalog(path: workdir + "/catalog.sqlite")
        let db = catalog.database

        // Filter versions: the latest completed one per source, unless named.
        var versions: [String: String] = [:]
        for source in TextSource.allCases {
            if let named = filterVersions[source.rawValue] {
                guard try db.row("SELECT 1 FROM filter_versions WHERE version = ? AND completed_at IS NOT NULL", [named]) != nil else {
                    throw MulanError(.usage, "filter version \(named) does not exist or did not complete",
                                     hint: "list them with: sqlite3 catalog.sqlite 'select version from filter_versions'")
                }
                versions[source.rawValue] = named
            } else if let latest = try db.row("""
                SELECT version FROM filter_versions WHERE source = ? AND completed_at IS NOT NULL
                AND version NOT LIKE '%~dry-run' ORDER BY completed_at DESC LIMIT 1
                """, [source.rawValue])?[0].string {
                versions[source.rawValue] = latest
            }
        }
        guard !versions.isEmpty else {
            throw MulanError(.usage, "the catalog has no filtered text", hint: "run mulan-filter --source S first")
        }
        let versionList = versions.values.sorted()
        let placeholders = versionList.map { _ in "?" }.joined(separator: ",")
        let vocab = try db.row("SELECT vocab_sha256 FROM filter_versions WHERE version IN (\(placeholders)) LIMIT 1",
                               versionList)?[0].string
        let sampleRate = try db.row("SELECT sample_rate FROM tracks WHERE status = 'ingested' LIMIT 1")?[0].int ?? 16000
        let clipSeconds = try db.row("SELECT MAX(duration_s) FROM clips WHERE status = 'kept'")?[0].double ?? 30

        // Plan: split and rank every selected clip; hash the plan's identity.
        var perSplit: [String: [Entry]] = [:]
        let identity = SHA256Digest()
        identity.update(Array("v1;seed=\(seed);split=\(split.fractions.map { "\($0.name)=\($0.share)" });per=\(samplesPerShard);max=\(maxShardBytes ?? 0);versions=\(versionList)".utf8))
        try db.forEach("""
            SELECT c.id, t.track_id, c.clip_index, t.split, c.flac_sha256 FROM clips c JOIN tracks t ON t.id = c.track_rowid
            WHERE c.status = 'kept' AND t.status = 'ingested' AND EXISTS (
                SELECT 1 FROM text_decisions d INDEXED BY text_decisions_track WHERE d.track_id = t.track_id AND d.status = 'kept'
                AND d.version IN (\(placeholders)))
            ORDER BY c.id
            """, versionList) { row in
            guard let id = row[0].int, let track = row[1].string, let index = row[2].int else { return }
            let key = ShardKeys.key(trackID: track, clipIndex: index)
            let name = split.split(trackID: track, manifestSplit: row[3].string)
            perSplit[name, default: []].append(Entry(rank: ShardKeys.rank(key: key, seed: seed), clipID: id))
            identity.update(Array("\(name)/\(key)/\(row[4].string ?? "")\n".utf8))
        }
        let without = try catalog.count("""
            SELECT COUNT(*) FROM clips c JOIN tracks t ON t.id = c.track_rowid
            WHERE c.status = 'kept' AND t.status = 'ingested' AND NOT EXISTS (
                SELECT 1 FROM text_decisions d INDEXED BY text_decisions_track WHERE d.track_id = t.track_id AND d.status = 'kept'
                AND d.version IN (\(placeholders)))
            """, versionList)
        let datasetID = String(identity.hex().prefix(12))
        let root = workdir + "/shards"
        let directory = output ?? root + "/" + datasetID
        let latestLink = root + "/latest"
        let previous = (try? FileManager.default.destinationOfSymbolicLink(atPath: latestLink))
            .map { ($0 as NSString).lastPathComponent }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)

        var manifest = DatasetManifest(
            datasetID: datasetID, previousDatasetID: previous == datasetID ? nil : previous, sampleRate: sampleRate,
            clipSeconds: clipSeconds, seed: seed,
            splitSpec: Dictionary(uniqueKeysWithValues: split.fractions.map { ($0.name, $0.share) }),
            samplesPerShard: samplesPerShard, maxShardBytes: maxShardBytes, vocabularySHA256: vocab,
            filterVersions: versions)
        manifest.clipsWithoutText = without

        let total = perSplit.values.reduce(0) { $0 + $1.count }
        let progress = ProgressMeter(total: total, unit: "samples", console: console)
        for name in perSplit.keys.sorted() {
            let entries = perSplit[name]!.sorted { $0.rank != $1.rank ? $0.rank < $1.rank : $0.clipID < $1.clipID }
            manifest.splits[name] = try writeSplit(name, entries: entries, directory: directory + "/" + name,
                                                   db: db, versions: versions, progress: progress)
        }
        progress.finish()
        try manifest.write(to: directory + "/dataset.json")
        if output == nil {
            // Point shards/latest at this dataset (a new link, renamed over the old one).
            let tmp = root + "/.latest-\(getpid())"
            try? FileManager.default.removeItem(atPath: tmp)
            try FileManager.default.createSymbolicLink(atPath: tmp, withDestinationPath: datasetID)
            if rename(tmp, latestLink) != 0 {
                throw MulanError(.io, "cannot update \(latestLink)", cause: String(cString: strerror(errno)))
            }
        }
        return (manifest, directory)
    }

    private func writeSplit(_ name: String, entries: [Entry], directory: String, db: Database,
                            versions: [String: String], progress: ProgressMeter) throws -> DatasetManifest.Split {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // Leftovers of a killed run: partial shards, half-written JSON files, and Foundation temporaries
        // of versions that created files through FileManager.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            where name.hasSuffix(".part") || name.hasSuffix(".tmp") || name.hasPrefix(".dat.nosync") {
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
        var result = DatasetManifest.Split()
        var sizes: [String: Int] = [:]
        var position = 0
        var shardIndex = 0
        while position < entries.count {
            let shardName = "shard-" + String(format: "%06d", shardIndex)
            let tarPath = directory + "/" + shardName + ".tar"
            let sidecarPath = directory + "/" + shardName + ".json"
            let sidecar: ShardSidecar
            if let done = try Self.completeShard(tarPath: tarPath, sidecarPath: sidecarPath) {
                sidecar = done  // written by an earlier, interrupted run: skip its samples
                progress.advance(by: done.samples)
            } else {
                sidecar = try writeShard(shardName, entries: entries, from: position, directory: directory, db: db,
                                         versions: versions, progress: progress)
            }
            position += sidecar.samples
            result.shards.append(shardName + ".tar")
            result.samples += sidecar.samples
            result.bytes += sidecar.bytes
            for (s, n) in sidecar.textsBySource { result.textsBySource[s, default: 0] += n }
            sizes[shardName + ".tar"] = sidecar.samples
            shardIndex += 1
        }
        // sizes.json, as LAION-CLAP's loader expects it in each split folder.
        let sizesJSON = "{" + sizes.keys.sorted().map { "\(JSONText.quote($0)): \(sizes[$0]!)" }.joined(separator: ", ") + "}\n"
        try AtomicFile.write(Data(sizesJSON.utf8), to: directory + "/sizes.json")
        return result
    }

    /// The sidecar of a shard that is complete (its hash matches), or nil.
    static func completeShard(tarPath: String, sidecarPath: String) throws -> ShardSidecar? {
        guard FileManager.default.fileExists(atPath: tarPath), let data = FileManager.default.contents(atPath: sidecarPath),
              let sidecar = try? JSONDecoder().decode(ShardSidecar.self, from: data) else { return nil }
        guard let actual = try? SHA256Digest.hex(ofFile: tarPath), actual.digest == sidecar.sha256,
              actual.bytes == sidecar.bytes else { return nil }
        return sidecar
    }

    private func writeShard(_ shardName: String, entries: [Entry], from start: Int, directory: String, db: Database,
                            versions: [String: String], progress: ProgressMeter) throws -> ShardSidecar {
        let tarPath = directory + "/" + shardName + ".tar"
        let partPath = tarPath + ".part"
        let writer = try TarWriter(path: partPath)
        var count = 0
        var texts: [String: Int] = [:]
        var firstKey = "", lastKey = ""
        var i = start
        let sourceOrder = TextSource.allCases.map(\.rawValue)
        while i < entries.count && count < samplesPerShard {
            guard let row = try db.row("""
                SELECT c.id, t.id, t.track_id, c.clip_index, c.start_s, c.duration_s, c.sample_rate, c.flac_path,
                       c.flac_sha256, t.split
                FROM clips c JOIN tracks t ON t.id = c.track_rowid WHERE c.id = ?
                """, [entries[i].clipID]), let clipID = row[0].int, let trackRow = row[1].int,
                  let track = row[2].string, let clipIndex = row[3].int, let flacPath = row[7].string else {
                throw MulanError(.catalog, "clip \(entries[i].clipID) disappeared from the catalog while sharding",
                                 hint: "do not run mulan-ingest on the same work directory at the same time")
            }
            let key = ShardKeys.key(trackID: track, clipIndex: clipIndex)
            var bySource: [String: [SampleRecord.Text]] = [:]
            var sampleTexts: [String: Int] = [:]
            for source in sourceOrder {
                guard let version = versions[source] else { continue }
                let rows = try db.rows("""
                    SELECT raw_text_id, normalized, token_ids FROM text_decisions INDEXED BY text_decisions_track
                    WHERE version = ? AND track_id = ? AND status = 'kept' ORDER BY raw_text_id
                    """, [version, track])
                if rows.isEmpty { continue }
                bySource[source] = rows.map {
                    SampleRecord.Text(text: $0[1].string ?? "",
                                      tokenIDs: ($0[2].string ?? "").split(separator: " ").compactMap { Int($0) },
                                      rawTextID: $0[0].int ?? 0)
                }
                sampleTexts[source] = rows.count
            }
            let record = SampleRecord(
                key: key, trackID: track, clipIndex: clipIndex, startSeconds: row[4].double ?? 0,
                durationSeconds: row[5].double ?? 0, sampleRate: row[6].int ?? 0,
                split: (directory as NSString).lastPathComponent, texts: bySource,
                provenance: .init(clipID: clipID, trackRowID: trackRow, flacSHA256: row[8].string ?? "",
                                  filterVersions: versions))
            let flacFile = workdir + "/" + flacPath
            guard let flac = FileManager.default.contents(atPath: flacFile) else {
                throw MulanError(.io, "the clip file \(flacFile) of track \(track) is missing from the store",
                                 hint: "re-run mulan-ingest on this work directory to restore it")
            }
            let json = try record.jsonBytes()
            if let max = maxShardBytes, count > 0,
               writer.size + 1024 + flac.count + json.count + 1536 > max {
                break  // this sample starts the next shard
            }
            try writer.add(name: key + ".flac", data: flac)
            try writer.add(name: key + ".json", data: json)
            for (source, n) in sampleTexts { texts[source, default: 0] += n }
            if count == 0 { firstKey = key }
            lastKey = key
            count += 1
            i += 1
            progress.advance()
        }
        let (bytes, sha) = try writer.finish()
        if rename(partPath, tarPath) != 0 {
            throw MulanError(.io, "cannot rename \(partPath)", cause: String(cString: strerror(errno)))
        }
        let sidecar = ShardSidecar(shard: shardName + ".tar", samples: count, bytes: bytes, sha256: sha,
                                   firstKey: firstKey, lastKey: lastKey, textsBySource: texts)
        try sidecar.write(to: directory + "/" + shardName + ".json")
        return sidecar
    }
}
