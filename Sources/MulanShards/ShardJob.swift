import Foundation
import MulanCatalog
import MulanCore

/// `mulan-shard`: writes WebDataset tar shards of the catalog's clips and their kept texts.
///
/// Plan: every kept clip of an ingested track that has kept text in some source (the latest filter
/// version of each source, or the one named), a split per track, a global shuffle by a seeded hash
/// of the sample key. Only the shuffle index (rank and clip reference per sample) is held in
/// memory; each sample's row and texts are read from its catalog when it is written. Shards are
/// written under a temporary name and renamed when complete, then described by a sidecar; a re-run
/// skips complete shards whose hash matches their sidecar and finishes the rest, giving the same
/// bytes.
///
/// The catalog may be one work directory's `catalog.sqlite` or the worker parts of one or more
/// work directories (`parts/I-of-N/`), read as one catalog: the plan, the samples and every byte
/// of the output do not depend on how the tracks were split. Shard writing itself can be split
/// too: worker I of N writes the shards whose number (counted over the splits in name order) is
/// I mod N, and `finalize` writes `sizes.json`, `dataset.json` and `shards/latest` once all are there.
public struct ShardJob: Sendable {
    public var workdir: String
    public var output: String?
    public var split: SplitSpec
    public var seed: UInt64
    public var samplesPerShard: Int
    public var maxShardBytes: Int?
    public var filterVersions: [String: String]
    public var console: Console
    /// Work directories or worker parts to read as one catalog; empty: the work directory.
    public var catalogs: [String]
    /// This process's share of the shards to write.
    public var slice: WorkerSlice
    /// Clips left out for their loudness (`--min-lufs`, `--max-true-peak`); inactive by default.
    public var loudness: LoudnessFilter
    /// Which `mulan-filter audio` version's dropped clips to leave out (default: the latest).
    public var audioFilter: AudioFilterChoice = .latest

    public init(workdir: String, output: String?, split: SplitSpec, seed: UInt64, samplesPerShard: Int,
                maxShardBytes: Int?, filterVersions: [String: String], console: Console,
                catalogs: [String] = [], slice: WorkerSlice = .single, loudness: LoudnessFilter = LoudnessFilter()) {
        self.workdir = Paths.absolute(workdir)
        self.output = output.map(Paths.absolute)
        self.split = split
        self.seed = seed
        self.samplesPerShard = samplesPerShard
        self.maxShardBytes = maxShardBytes
        self.filterVersions = filterVersions
        self.console = console
        self.catalogs = catalogs.map(Paths.absolute)
        self.slice = slice
        self.loudness = loudness
    }

    /// One position of the plan: the shuffle rank and where the clip is (part << 48 | clip row id).
    struct Entry {
        var rank: UInt64
        var ref: UInt64
        var part: Int { Int(ref >> 48) }
        var clipID: Int { Int(ref & 0xFFFF_FFFF_FFFF) }
    }

    /// A catalog the plan reads, and the folder its clip paths are relative to.
    struct Part {
        var directory: String
        var catalog: Catalog
        var db: Database { catalog.database }
    }

    /// What a shard-writing worker did.
    public struct WorkerSummary: Sendable {
        public var datasetID: String
        public var directory: String
        public var shardsWritten = 0
        public var shardsKept = 0
        public var samples = 0
        public var shardsTotal = 0
    }

    // MARK: Entry points

    /// Plans and writes every shard, then `dataset.json` (a single process: the default).
    public func run() throws -> (manifest: DatasetManifest, directory: String) {
        // A single process on its own catalog takes the work directory, as every writer does;
        // otherwise the inputs are finished parts, read immutable, and locks guard the outputs.
        let layout = try WorkLayout.inspect(workdir)
        let own = catalogs.isEmpty && layout == .single
        let lock = own ? try WorkdirLock(workdir: workdir, stage: "mulan-shard") : nil
        defer { withExtendedLifetime(lock) {} }
        let parts = try openParts(asWriter: own)
        let plan = try makePlan(parts)
        let directory = output ?? workdir + "/shards/" + plan.datasetID
        let workerLock = lock == nil ? try outputLock(plan.datasetID, "all") : nil
        defer { withExtendedLifetime(workerLock) {} }
        _ = try writeShards(plan, parts: parts, directory: directory, slice: .single)
        let manifest = try finish(plan, parts: parts, directory: directory)
        return (manifest, directory)
    }

    /// Writes this worker's shards (number ≡ I mod N); `finalize` completes the dataset.
    public func runWorker() throws -> WorkerSummary {
        let parts = try openParts()
        let plan = try makePlan(parts)
        let directory = output ?? workdir + "/shards/" + plan.datasetID
        let lock = try outputLock(plan.datasetID, WorkLayout.partName(slice.index, of: slice.count))
        defer { withExtendedLifetime(lock) {} }
        console.log(.info, "\(slice) (from \(slice.origin)): writing shards n ≡ \(slice.index) mod \(slice.count) of "
                    + "dataset \(plan.datasetID)", event: "worker")
        return try writeShards(plan, parts: parts, directory: directory, slice: slice)
    }

    /// Checks that every shard of the plan is there with its sidecar, and writes `sizes.json`,
    /// `dataset.json` and (without `--out`) `shards/latest`.
    public func finalize() throws -> (manifest: DatasetManifest, directory: String) {
        let parts = try openParts()
        let plan = try makePlan(parts)
        let directory = output ?? workdir + "/shards/" + plan.datasetID
        let lock = try outputLock(plan.datasetID, "finalize")
        defer { withExtendedLifetime(lock) {} }
        return (try finish(plan, parts: parts, directory: directory), directory)
    }

    /// An exclusive lock for one writer of a dataset (`WORKDIR/shards/.locks/`), so two processes
    /// never write the same shards.
    private func outputLock(_ datasetID: String, _ who: String) throws -> WorkdirLock {
        let folder = workdir + "/shards/.locks"
        try Paths.makeDirectory(folder)
        return try WorkdirLock(lockFile: folder + "/\(datasetID)-\(who).lock", stage: "mulan-shard",
                               what: "dataset \(datasetID) (\(who))",
                               hint: "another mulan-shard process is writing the same shards; wait for it")
    }

    // MARK: Catalogs

    /// The catalogs to read: the work directory's own catalog or the worker parts of each work
    /// directory named. `asWriter` (a single process sharding its own catalog, under the work
    /// directory's lock) opens it as today's writers do; otherwise each is opened read-only and
    /// immutable, as finished files that other machines may be reading too.
    private func openParts(asWriter: Bool = false) throws -> [Part] {
        let roots = catalogs.isEmpty ? [workdir] : catalogs
        var directories: [String] = []
        for root in roots {
            switch try WorkLayout.inspect(root) {
            case .single:
                directories.append(root)
            case .parts(let n, let present):
                let missing = (0..<n).filter { !present.contains($0) }
                if !missing.isEmpty {
                    throw MulanError(.usage, "\(root) is split into \(n) worker parts but "
                                     + missing.map { "parts/\(WorkLayout.partName($0, of: n))" }.joined(separator: ", ")
                                     + " \(missing.count == 1 ? "is" : "are") missing",
                                     hint: "run mulan-ingest (and mulan-filter) for the missing workers first")
                }
                directories += (0..<n).map { WorkLayout.partDirectory(root: root, index: $0, count: n) }
            case .empty:
                // A part folder named directly, or nothing at all.
                if FileManager.default.fileExists(atPath: root + "/catalog.sqlite") {
                    directories.append(root)
                } else {
                    throw MulanError(.usage, "there is no catalog in \(root)", hint: "run mulan-ingest first")
                }
            }
        }
        guard directories.count < 1 << 15 else { throw MulanError(.usage, "too many catalogs (\(directories.count))") }
        return try directories.map { dir throws -> Part in
            let path = dir + "/catalog.sqlite"
            return Part(directory: dir, catalog: asWriter ? try Catalog(path: path) : try Catalog(finishedAt: path))
        }
    }

    // MARK: The plan

    struct NormalizationKey: Hashable {
        var target: Double?
        var ceiling: Double?
    }

    struct Plan {
        var versions: [String: String]
        var vocabularySHA256: String?
        var sampleRate: Int
        var clipSeconds: Double
        var clipsWithoutText = 0
        /// Clips with kept text left out by the loudness filter, by reason.
        var loudnessDropped: [String: Int] = [:]
        /// Selected samples by the track's `--loudness-target` and ceiling (nil: not normalized).
        var normalization: [NormalizationKey: Int] = [:]
        /// The audio filter version whose dropped clips are left out, and how many per reason.
        var audioFilterVersion: String?
        var droppedByAudioFilter: [String: Int] = [:]
        var datasetID = ""
        /// Splits in name order, each with its samples in shard order.
        var splits: [(name: String, entries: [Entry])] = []
    }

    /// Filter versions: per source the named one, else the latest one completed in every catalog.
    private func resolveVersions(_ parts: [Part]) throws -> [String: String] {
        var versions: [String: String] = [:]
        for source in TextSource.allCases {
            if let named = filterVersions[source.rawValue] {
                for part in parts where try part.db.row(
                    "SELECT 1 FROM filter_versions WHERE version = ? AND completed_at IS NOT NULL", [named]) == nil {
                    throw MulanError(.usage, "filter version \(named) does not exist or did not complete"
                                     + (parts.count > 1 ? " in \(part.directory)" : ""),
                                     hint: "list them with: sqlite3 catalog.sqlite 'select version from filter_versions'")
                }
                versions[source.rawValue] = named
                continue
            }
            // Completed versions of this source per catalog, with their completion time.
            var completedIn: [String: (count: Int, latest: String)] = [:]
            for part in parts {
                for row in try part.db.rows("""
                    SELECT version, completed_at FROM filter_versions WHERE source = ? AND completed_at IS NOT NULL
                    AND version NOT LIKE '%~dry-run'
                    """, [source.rawValue]) {
                    guard let v = row[0].string, let at = row[1].string else { continue }
                    let previous = completedIn[v]
                    completedIn[v] = ((previous?.count ?? 0) + 1, max(previous?.latest ?? "", at))
                }
            }
            let everywhere = completedIn.filter { $0.value.count == parts.count }
            if let latest = everywhere.max(by: { ($0.value.latest, $0.key) < ($1.value.latest, $1.key) }) {
                versions[source.rawValue] = latest.key
            } else if let partial = completedIn.max(by: { $0.value.count < $1.value.count }) {
                throw MulanError(.usage, "no \(source.rawValue) filter version is complete in every part: \(partial.key) "
                                 + "is complete in \(partial.value.count) of \(parts.count)",
                                 hint: "run mulan-filter --phase global on the other workers, or name a version with --filter-version")
            }
        }
        guard !versions.isEmpty else {
            throw MulanError(.usage, "the catalog has no filtered text", hint: "run mulan-filter --source S first")
        }
        return versions
    }

    /// Selects, splits and orders every sample; the dataset id hashes the settings and the set of
    /// samples (split, key and clip hash), combined so that it does not depend on catalog order.
    func makePlan(_ parts: [Part]) throws -> Plan {
        let versions = try resolveVersions(parts)
        let versionList = versions.values.sorted()
        let placeholders = versionList.map { _ in "?" }.joined(separator: ",")
        var plan = Plan(versions: versions, vocabularySHA256: nil, sampleRate: 0, clipSeconds: 0)
        plan.audioFilterVersion = try resolveAudioFilterVersion(parts)
        let audioVersion = plan.audioFilterVersion
        var perSplit: [String: [Entry]] = [:]
        var lanes = [UInt64](repeating: 0, count: 4)
        var samples = 0
        var dedupeSignatures: [String] = []
        var mergedClips = 0
        for (p, part) in parts.enumerated() {
            let db = part.db
            let groups = try DuplicateGroups(db, console: console)
            if let signature = groups.signature { dedupeSignatures.append(signature) }
            if plan.vocabularySHA256 == nil {
                plan.vocabularySHA256 = try db.row(
                    "SELECT vocab_sha256 FROM filter_versions WHERE version IN (\(placeholders)) LIMIT 1", versionList)?[0].string
            }
            if let rate = try db.row("SELECT MIN(sample_rate) FROM tracks WHERE status = 'ingested'")?[0].int {
                plan.sampleRate = plan.sampleRate == 0 ? rate : min(plan.sampleRate, rate)
            }
            if let seconds = try db.row("SELECT MAX(duration_s) FROM clips WHERE status = 'kept'")?[0].double {
                plan.clipSeconds = max(plan.clipSeconds, seconds)
            }
            try db.forEach("""
                SELECT c.id, t.track_id, c.clip_index, t.split, c.flac_sha256, c.loudness_status, c.lufs, c.true_peak_db,
                       c.loudness_range, t.loudness_target_lufs, t.loudness_max_true_peak_db, \(Self.audioDropReason(audioVersion))
                FROM clips c JOIN tracks t ON t.id = c.track_rowid
                WHERE c.status = 'kept' AND t.status = 'ingested' AND (\(Self.hasKeptText(placeholders)))
                ORDER BY c.id
                """, (audioVersion.map { [$0] } ?? []) + versionList + versionList) { row in
                guard let id = row[0].int, let track = row[1].string, let index = row[2].int else { return }
                let member = groups.members[track]
                if groups.merge, member?.mergedInto != nil {
                    mergedClips += 1
                    return
                }
                if let reason = row[11].string {
                    plan.droppedByAudioFilter[reason, default: 0] += 1
                    return
                }
                if let reason = loudness.reason(status: row[5].string, lufs: row[6].double, truePeakDB: row[7].double) {
                    plan.loudnessDropped[reason.rawValue, default: 0] += 1
                    return
                }
                plan.normalization[NormalizationKey(target: row[9].double, ceiling: row[10].double), default: 0] += 1
                let key = ShardKeys.key(trackID: track, clipIndex: index)
                // A duplicate group's members all go to one split: the group key's (see DuplicateGroups).
                let name = member.map { split.split(trackID: $0.groupKey, manifestSplit: $0.groupSplit) }
                    ?? split.split(trackID: track, manifestSplit: row[3].string)
                perSplit[name, default: []].append(Entry(rank: ShardKeys.rank(key: key, seed: seed),
                                                         ref: UInt64(p) << 48 | UInt64(id)))
                // The loudness values are part of the sample's JSON, so they are part of its identity.
                let loud = [6, 8, 7].map { Self.jsonLoudness(row[$0].double).map { "\($0)" } ?? "-" }.joined(separator: ",")
                let digest = SHA256Digest.hex(of: Array("\(name)/\(key)/\(row[4].string ?? "")/\(loud)".utf8))
                for lane in 0..<4 {
                    let start = digest.index(digest.startIndex, offsetBy: lane * 16)
                    lanes[lane] &+= UInt64(digest[start..<digest.index(start, offsetBy: 16)], radix: 16) ?? 0
                }
                samples += 1
            }
            plan.clipsWithoutText += try part.catalog.count("""
                SELECT COUNT(*) FROM clips c JOIN tracks t ON t.id = c.track_rowid
                WHERE c.status = 'kept' AND t.status = 'ingested' AND NOT (\(Self.hasKeptText(placeholders)))
                """, versionList + versionList)
        }
        if mergedClips > 0 {
            console.log(.info, "\(mergedClips) clips of tracks merged into their duplicate group's representative "
                        + "(mulan-dedupe --policy merge) are left out; their kept texts go with the representative",
                        event: "merged_duplicates")
        }
        if plan.sampleRate == 0 { plan.sampleRate = 16000 }
        if plan.clipSeconds == 0 { plan.clipSeconds = 30 }
        if let unmeasured = plan.loudnessDropped[LoudnessFilter.Reason.notMeasured.rawValue] {
            console.log(.warning, "\(unmeasured) clips have no loudness measurement and are left out by --min-lufs/--max-true-peak; "
                        + "run mulan-ingest again on the same manifests to measure them", event: "loudness_not_measured")
        }
        // v3: samples carry lufs, loudness_range and true_peak_db.
        var settings = "v3;seed=\(seed);split=\(split.fractions.map { "\($0.name)=\($0.share)" });per=\(samplesPerShard)"
            + ";max=\(maxShardBytes ?? 0);versions=\(versionList);samples=\(samples);sum="
            + lanes.map { String($0, radix: 16) }.joined(separator: ",")
            + (dedupeSignatures.isEmpty ? "" : ";dedupe=" + dedupeSignatures.joined(separator: ","))
            + loudness.settingsText
        // Only a dataset that honours an audio filter adds it: without one, the id is as without the filter.
        let audioSetting: String = audioVersion.map { ";audio=" + $0 } ?? ""
        settings += audioSetting
        plan.datasetID = String(SHA256Digest.hex(of: Array(settings.utf8)).prefix(12))
        for name in perSplit.keys.sorted() {
            var entries = perSplit[name]!
            entries.sort { $0.rank < $1.rank }
            try orderTies(&entries, parts: parts)
            plan.splits.append((name, entries))
        }
        return plan
    }

    /// Samples of equal rank (a 64-bit coincidence) are ordered by key; equal keys mean a track id
    /// that two of the catalogs read both hold.
    private func orderTies(_ entries: inout [Entry], parts: [Part]) throws {
        var i = 0
        while i < entries.count {
            var j = i + 1
            while j < entries.count && entries[j].rank == entries[i].rank { j += 1 }
            if j - i > 1 {
                var keyed = try entries[i..<j].map { (key: try sampleKey($0, parts: parts).key, entry: $0) }
                keyed.sort { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
                for k in 1..<keyed.count where keyed[k].key == keyed[k - 1].key {
                    let a = try sampleKey(keyed[k - 1].entry, parts: parts), b = try sampleKey(keyed[k].entry, parts: parts)
                    throw MulanError(.data, "sample \(a.key) is in two catalogs: track \(a.track) in \(parts[keyed[k - 1].entry.part].directory) "
                                     + "and track \(b.track) in \(parts[keyed[k].entry.part].directory)",
                                     hint: "a track id must be in one catalog only; read the catalogs separately")
                }
                for (k, item) in keyed.enumerated() { entries[i + k] = item.entry }
            }
            i = j
        }
    }

    private func sampleKey(_ entry: Entry, parts: [Part]) throws -> (key: String, track: String) {
        guard let row = try parts[entry.part].db.row("""
            SELECT t.track_id, c.clip_index FROM clips c JOIN tracks t ON t.id = c.track_rowid WHERE c.id = ?
            """, [entry.clipID]), let track = row[0].string, let index = row[1].int else {
            throw MulanError(.catalog, "clip \(entry.clipID) disappeared from \(parts[entry.part].directory) while sharding",
                             hint: "do not run mulan-ingest on the same work directory at the same time")
        }
        return (ShardKeys.key(trackID: track, clipIndex: index), track)
    }

    // MARK: Shard boundaries

    /// The sample ranges of a split's shards, when they can be known before writing: always with
    /// `samplesPerShard` alone; with `maxShardBytes`, by sizing every sample (its FLAC's size and
    /// its JSON) as the writer would. Nil: a single writer finds them as it writes.
    private func shardRanges(_ entries: [Entry], parts: [Part], versions: [String: String], split name: String,
                             sizing: Bool) throws -> [Range<Int>]? {
        guard let max = maxShardBytes else {
            return stride(from: 0, to: entries.count, by: samplesPerShard).map { $0..<min($0 + samplesPerShard, entries.count) }
        }
        guard sizing else { return nil }
        var ranges: [Range<Int>] = []
        var start = 0, size = 0, count = 0
        for i in entries.indices {
            let sample = try buildSample(entries[i], parts: parts, versions: versions, split: name, readAudio: false)
            if count > 0 && (count >= samplesPerShard || !Self.fits(size: size, flac: sample.flacBytes, json: sample.json.count, max: max)) {
                ranges.append(start..<i)
                start = i
                size = 0
                count = 0
            }
            size += Self.memberBytes(sample.flacBytes) + Self.memberBytes(sample.json.count)
            count += 1
        }
        if count > 0 { ranges.append(start..<entries.count) }
        return ranges
    }

    /// Bytes a member adds to a tar: its header and its data padded to 512-byte blocks.
    static func memberBytes(_ dataBytes: Int) -> Int { 512 + (dataBytes + 511) / 512 * 512 }

    /// Whether a sample still goes into a shard that holds `size` bytes (the writer's rule).
    static func fits(size: Int, flac: Int, json: Int, max: Int) -> Bool {
        size + 1024 + flac + json + 1536 <= max
    }

    // MARK: Writing

    /// Writes the shards `slice` owns (all of them for a single process), skipping complete ones.
    private func writeShards(_ plan: Plan, parts: [Part], directory: String, slice: WorkerSlice) throws -> WorkerSummary {
        try Paths.makeDirectory(directory)
        var summary = WorkerSummary(datasetID: plan.datasetID, directory: directory)
        // Ranges first (a worker must know which shards are its own), then the samples to write.
        var layout: [(name: String, entries: [Entry], ranges: [Range<Int>]?)] = []
        for (name, entries) in plan.splits {
            layout.append((name, entries, try shardRanges(entries, parts: parts, versions: plan.versions, split: name,
                                                          sizing: !slice.isSingle)))
        }
        var number = 0
        var owned = 0
        for item in layout {
            guard let ranges = item.ranges else { owned += item.entries.count; continue }
            for (k, range) in ranges.enumerated() where (number + k) % slice.count == slice.index { owned += range.count }
            number += ranges.count
        }
        let progress = ProgressMeter(total: owned, unit: "samples", console: console)
        number = 0
        for (name, entries, ranges) in layout {
            let folder = directory + "/" + name
            try Paths.makeDirectory(folder)
            if slice.isSingle {
                Self.removeLeftovers(in: folder) { _ in true }
            }
            guard let ranges else {
                // One writer, shards closed by size as they fill.
                var position = 0
                var index = 0
                while position < entries.count {
                    let sidecar = try writeOrKeep(index, entries: entries, from: position, to: nil, folder: folder,
                                                  parts: parts, versions: plan.versions, progress: progress, summary: &summary)
                    position += sidecar.samples
                    index += 1
                }
                summary.shardsTotal += index
                continue
            }
            summary.shardsTotal += ranges.count
            let mine = Set(ranges.indices.filter { (number + $0) % slice.count == slice.index })
            if !slice.isSingle {
                Self.removeLeftovers(in: folder) { Self.shardNumber($0).map { mine.contains($0) } ?? false }
            }
            for (index, range) in ranges.enumerated() where mine.contains(index) {
                let sidecar = try writeOrKeep(index, entries: entries, from: range.lowerBound, to: range.upperBound,
                                              folder: folder, parts: parts, versions: plan.versions, progress: progress,
                                              summary: &summary)
                if sidecar.samples != range.count {
                    throw MulanError(.internalError, "\(name)/\(sidecar.shard) holds \(sidecar.samples) samples, "
                                     + "the plan says \(range.count)")
                }
            }
            number += ranges.count
        }
        progress.finish()
        return summary
    }

    /// The shard number in a leftover's name (`shard-000012.tar.part` → 12).
    static func shardNumber(_ name: String) -> Int? {
        guard name.hasPrefix("shard-") else { return nil }
        return Int(name.dropFirst(6).prefix(6))
    }

    /// Removes a killed run's leftovers that `mine` selects: partial shards, half-written JSON files,
    /// and Foundation temporaries of versions that created files through FileManager.
    static func removeLeftovers(in folder: String, mine: (String) -> Bool) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
            where (name.hasSuffix(".part") || name.hasSuffix(".tmp") || name.hasPrefix(".dat.nosync")) && mine(name) {
            try? FileManager.default.removeItem(atPath: folder + "/" + name)
        }
    }

    private func writeOrKeep(_ index: Int, entries: [Entry], from start: Int, to end: Int?, folder: String, parts: [Part],
                             versions: [String: String], progress: ProgressMeter,
                             summary: inout WorkerSummary) throws -> ShardSidecar {
        let shardName = "shard-" + String(format: "%06d", index)
        if let done = try Self.completeShard(tarPath: folder + "/" + shardName + ".tar",
                                             sidecarPath: folder + "/" + shardName + ".json") {
            // Written by an earlier, interrupted run: keep it.
            progress.advance(by: done.samples)
            summary.shardsKept += 1
            summary.samples += done.samples
            return done
        }
        let sidecar = try writeShard(shardName, entries: entries, from: start, to: end, directory: folder, parts: parts,
                                     versions: versions, progress: progress)
        summary.shardsWritten += 1
        summary.samples += sidecar.samples
        return sidecar
    }

    /// The sidecar of a shard that is complete (its hash matches), or nil.
    static func completeShard(tarPath: String, sidecarPath: String) throws -> ShardSidecar? {
        guard FileManager.default.fileExists(atPath: tarPath), let data = FileManager.default.contents(atPath: sidecarPath),
              let sidecar = try? JSONDecoder().decode(ShardSidecar.self, from: data) else { return nil }
        guard let actual = try? SHA256Digest.hex(ofFile: tarPath), actual.digest == sidecar.sha256,
              actual.bytes == sidecar.bytes else { return nil }
        return sidecar
    }

    /// One sample as it goes into a shard.
    struct Sample {
        var key: String
        var json: [UInt8]
        var flacPath: String
        var flacBytes: Int
        var flac: Data?
        var textsBySource: [String: Int]
    }

    /// Reads one sample's clip row and kept texts, and builds its JSON. Provenance ids are the
    /// catalog-independent ids of `StableIDs`, so the bytes do not depend on how tracks were split.
    func buildSample(_ entry: Entry, parts: [Part], versions: [String: String], split: String,
                     readAudio: Bool) throws -> Sample {
        let part = parts[entry.part]
        let db = part.db
        guard let row = try db.row("""
            SELECT c.id, t.id, t.track_id, c.clip_index, c.start_s, c.duration_s, c.sample_rate, c.flac_path,
                   c.flac_sha256, t.split, c.lufs, c.loudness_range, c.true_peak_db
            FROM clips c JOIN tracks t ON t.id = c.track_rowid WHERE c.id = ?
            """, [entry.clipID]), let track = row[2].string, let clipIndex = row[3].int, let flacPath = row[7].string else {
            throw MulanError(.catalog, "clip \(entry.clipID) disappeared from the catalog while sharding",
                             hint: "do not run mulan-ingest on the same work directory at the same time")
        }
        let key = ShardKeys.key(trackID: track, clipIndex: clipIndex)
        // The track's own kept texts, then those of the duplicates merged into it (mulan-dedupe --policy merge).
        let textTracks = [track] + (try DuplicateGroups.mergedInto(track, in: db))
        let textIDs = try textTracks.map { try StableIDs.rawTexts(of: $0, in: db) }
        var bySource: [String: [SampleRecord.Text]] = [:]
        var sampleTexts: [String: Int] = [:]
        for source in TextSource.allCases.map(\.rawValue) {
            guard let version = versions[source] else { continue }
            var texts: [SampleRecord.Text] = []
            for (n, textTrack) in textTracks.enumerated() {
                let rows = try db.rows("""
                    SELECT raw_text_id, normalized, token_ids FROM text_decisions INDEXED BY text_decisions_track
                    WHERE version = ? AND track_id = ? AND status = 'kept' ORDER BY raw_text_id
                    """, [version, textTrack])
                texts += try rows.map {
                    guard let local = $0[0].int, let id = textIDs[n][local] else {
                        throw MulanError(.catalog, "a kept \(source) text of track \(textTrack) has no raw text in \(part.directory)")
                    }
                    return SampleRecord.Text(text: $0[1].string ?? "",
                                             tokenIDs: ($0[2].string ?? "").split(separator: " ").compactMap { Int($0) },
                                             rawTextID: id)
                }
            }
            if texts.isEmpty { continue }
            bySource[source] = texts
            sampleTexts[source] = texts.count
        }
        let record = SampleRecord(
            key: key, trackID: track, clipIndex: clipIndex, startSeconds: row[4].double ?? 0,
            durationSeconds: row[5].double ?? 0, sampleRate: row[6].int ?? 0, split: split, texts: bySource,
            provenance: .init(clipID: StableIDs.clip(track: track, index: clipIndex), trackRowID: StableIDs.track(track),
                              flacSHA256: row[8].string ?? "", filterVersions: versions),
            lufs: Self.jsonLoudness(row[10].double), loudnessRange: Self.jsonLoudness(row[11].double),
            truePeakDB: Self.jsonLoudness(row[12].double))
        let flacFile = part.directory + "/" + flacPath
        var flac: Data?
        let bytes: Int
        if readAudio {
            guard let data = FileManager.default.contents(atPath: flacFile) else { throw missingClip(flacFile, track) }
            flac = data
            bytes = data.count
        } else {
            var info = stat()
            guard stat(flacFile, &info) == 0 else { throw missingClip(flacFile, track) }
            bytes = Int(info.st_size)
        }
        return Sample(key: key, json: try record.jsonBytes(), flacPath: flacFile, flacBytes: bytes, flac: flac,
                      textsBySource: sampleTexts)
    }

    /// Loudness values in a sample's JSON, to 0.001 (LU, dB): far finer than any measurement
    /// agrees with another, and short to read.
    static func jsonLoudness(_ value: Double?) -> Double? {
        value.map { ($0 * 1000).rounded() / 1000 }
    }

    private func missingClip(_ path: String, _ track: String) -> MulanError {
        MulanError(.io, "the clip file \(path) of track \(track) is missing from the store",
                   hint: "re-run mulan-ingest on this work directory (or worker part) to restore it")
    }

    /// Writes samples from `start` into one shard: up to `end` when the plan fixed it, else until
    /// `samplesPerShard` or `maxShardBytes` closes it.
    private func writeShard(_ shardName: String, entries: [Entry], from start: Int, to end: Int?, directory: String,
                            parts: [Part], versions: [String: String], progress: ProgressMeter) throws -> ShardSidecar {
        let tarPath = directory + "/" + shardName + ".tar"
        let partPath = tarPath + ".part"
        let writer = try TarWriter(path: partPath)
        let split = (directory as NSString).lastPathComponent
        var count = 0
        var texts: [String: Int] = [:]
        var firstKey = "", lastKey = ""
        var i = start
        while i < (end ?? entries.count) && (end != nil || count < samplesPerShard) {
            let sample = try buildSample(entries[i], parts: parts, versions: versions, split: split, readAudio: true)
            if end == nil, let max = maxShardBytes, count > 0,
               !Self.fits(size: writer.size, flac: sample.flacBytes, json: sample.json.count, max: max) {
                break  // this sample starts the next shard
            }
            try writer.add(name: sample.key + ".flac", data: sample.flac ?? Data())
            try writer.add(name: sample.key + ".json", data: sample.json)
            for (source, n) in sample.textsBySource { texts[source, default: 0] += n }
            if count == 0 { firstKey = sample.key }
            lastKey = sample.key
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

    // MARK: Finishing

    /// Walks each split's shards as the plan lays them out, checking that each is there (its tar's
    /// size and first key match its sidecar), then writes `sizes.json`, `dataset.json` and `latest`.
    private func finish(_ plan: Plan, parts: [Part], directory: String) throws -> DatasetManifest {
        let root = workdir + "/shards"
        let latestLink = root + "/latest"
        let previous = (try? FileManager.default.destinationOfSymbolicLink(atPath: latestLink))
            .map { ($0 as NSString).lastPathComponent }
        var manifest = DatasetManifest(
            datasetID: plan.datasetID, previousDatasetID: previous == plan.datasetID ? nil : previous,
            sampleRate: plan.sampleRate, clipSeconds: plan.clipSeconds, seed: seed,
            splitSpec: Dictionary(uniqueKeysWithValues: split.fractions.map { ($0.name, $0.share) }),
            samplesPerShard: samplesPerShard, maxShardBytes: maxShardBytes, vocabularySHA256: plan.vocabularySHA256,
            filterVersions: plan.versions)
        manifest.clipsWithoutText = plan.clipsWithoutText
        if loudness.isActive {
            var dropped = Dictionary(uniqueKeysWithValues: LoudnessFilter.Reason.allCases.map { ($0.rawValue, 0) })
            dropped.merge(plan.loudnessDropped) { $1 }
            manifest.loudnessFilter = .init(minLUFS: loudness.minLUFS, maxTruePeakDB: loudness.maxTruePeakDB,
                                            clipsDroppedByReason: dropped)
        }
        let normalized = plan.normalization.compactMap { key, samples -> DatasetManifest.LoudnessNormalizationSummary.Setting? in
            guard let target = key.target else { return nil }
            return .init(targetLUFS: target, maxTruePeakDB: key.ceiling ?? 0, samples: samples)
        }.sorted { ($0.targetLUFS, $0.maxTruePeakDB) < ($1.targetLUFS, $1.maxTruePeakDB) }
        if !normalized.isEmpty {
            manifest.loudnessNormalization = .init(
                settings: normalized,
                samplesNotNormalized: plan.normalization.filter { $0.key.target == nil }.values.reduce(0, +))
        }
        if let v = plan.audioFilterVersion {
            manifest.audioFilterVersion = v
            manifest.clipsDroppedByAudioFilter = plan.droppedByAudioFilter
        }
        var missing: [String] = []
        var allSizes: [String: [String: Int]] = [:]
        for (name, entries) in plan.splits {
            let folder = directory + "/" + name
            var result = DatasetManifest.Split()
            var sizes: [String: Int] = [:]
            var position = 0
            var index = 0
            while position < entries.count {
                let shardName = "shard-" + String(format: "%06d", index)
                let tarPath = folder + "/" + shardName + ".tar"
                let expectedKey = try sampleKey(entries[position], parts: parts).key
                guard let data = FileManager.default.contents(atPath: folder + "/" + shardName + ".json"),
                      let sidecar = try? JSONDecoder().decode(ShardSidecar.self, from: data),
                      let size = (try? FileManager.default.attributesOfItem(atPath: tarPath))?[.size] as? Int,
                      size == sidecar.bytes, sidecar.firstKey == expectedKey, sidecar.samples > 0,
                      maxShardBytes != nil || sidecar.samples == min(samplesPerShard, entries.count - position) else {
                    missing.append("\(name)/\(shardName).tar")
                    if maxShardBytes != nil { break }  // the next shard's start is unknown without this one
                    position += samplesPerShard
                    index += 1
                    continue
                }
                result.shards.append(shardName + ".tar")
                result.samples += sidecar.samples
                result.bytes += sidecar.bytes
                for (s, n) in sidecar.textsBySource { result.textsBySource[s, default: 0] += n }
                sizes[shardName + ".tar"] = sidecar.samples
                position += sidecar.samples
                index += 1
            }
            if position > entries.count { missing.append("\(name): the shards hold more samples than the plan") }
            manifest.splits[name] = result
            allSizes[name] = sizes
        }
        if !missing.isEmpty {
            throw MulanError(.data, "dataset \(plan.datasetID) is not complete: \(missing.count) shard(s) missing or "
                             + "unfinished: " + missing.prefix(10).joined(separator: ", ") + (missing.count > 10 ? ", …" : ""),
                             location: SourceLocation(file: directory),
                             hint: "run mulan-shard with --worker I --workers N for every worker (with the same options) first")
        }
        // Every worker is done: anything left half-written is stale.
        for (name, sizes) in allSizes.sorted(by: { $0.key < $1.key }) {
            let folder = directory + "/" + name
            Self.removeLeftovers(in: folder) { _ in true }
            // sizes.json, as LAION-CLAP's loader expects it in each split folder.
            let sizesJSON = "{" + sizes.keys.sorted().map { "\(JSONText.quote($0)): \(sizes[$0]!)" }.joined(separator: ", ") + "}\n"
            try AtomicFile.write(Data(sizesJSON.utf8), to: folder + "/sizes.json")
        }
        try manifest.write(to: directory + "/dataset.json")
        if output == nil {
            // Point shards/latest at this dataset (a new link, renamed over the old one).
            let tmp = root + "/.latest-\(getpid())"
            try? FileManager.default.removeItem(atPath: tmp)
            try FileManager.default.createSymbolicLink(atPath: tmp, withDestinationPath: plan.datasetID)
            if rename(tmp, latestLink) != 0 {
                throw MulanError(.io, "cannot update \(latestLink)", cause: String(cString: strerror(errno)))
            }
        }
        return manifest
    }
}

/// The duplicate groups mulan-dedupe recorded in a catalog: each member's group key (its smallest
/// track id, which chooses the group's split), the group's manifest split (the first one given among
/// its members in track id order), and under the merge policy the representative it was merged into.
struct DuplicateGroups {
    struct Member {
        var groupKey: String
        var groupSplit: String?
        var mergedInto: String?
    }

    var members: [String: Member] = [:]
    var merge = false
    /// Identifies the grouping and policy (part of the dataset id); nil when dedupe never ran.
    var signature: String?

    init(_ db: Database, console: Console) throws {
        guard let state = try db.row("SELECT policy, signature, completed_at FROM dedupe_state WHERE id = 1") else { return }
        merge = state[0].string == "merge"
        signature = "\(state[0].string ?? ""):\(state[1].string ?? "")"
        for row in try db.rows("""
            SELECT m.track_id, g.group_key, m.merged_into,
                   (SELECT t.split FROM dup_members m2 JOIN tracks t ON t.track_id = m2.track_id
                    WHERE m2.group_id = g.id AND t.split IS NOT NULL AND t.split != '' ORDER BY t.track_id LIMIT 1)
            FROM dup_members m JOIN dup_groups g ON g.id = m.group_id
            """) {
            guard let track = row[0].string, let key = row[1].string else { continue }
            members[track] = Member(groupKey: key, groupSplit: row[3].string, mergedInto: row[2].string)
        }
        let changed = try db.row("SELECT COUNT(*) FROM tracks WHERE status = 'ingested' AND updated_at > ?",
                                 [state[2].string ?? ""])?[0].int ?? 0
        if changed > 0 {
            console.log(.warning, "\(changed) tracks were ingested after mulan-dedupe ran: they are not in any duplicate "
                        + "group yet; run mulan-dedupe again before sharding", event: "dedupe_stale")
        }
    }

    /// The tracks merged into `track` (none unless dedupe ran with the merge policy), in track id order.
    static func mergedInto(_ track: String, in db: Database) throws(MulanError) -> [String] {
        try db.rows("SELECT track_id FROM dup_members WHERE merged_into = ? ORDER BY track_id", [track]).compactMap { $0[0].string }
    }
}

extension ShardJob {
    /// SQL: track `t` has a kept text of a selected version, itself or through a duplicate merged into
    /// it. Takes the version list twice.
    static func hasKeptText(_ placeholders: String) -> String {
        """
        EXISTS (SELECT 1 FROM text_decisions d INDEXED BY text_decisions_track WHERE d.track_id = t.track_id
                AND d.status = 'kept' AND d.version IN (\(placeholders)))
        OR EXISTS (SELECT 1 FROM dup_members m JOIN text_decisions d INDEXED BY text_decisions_track ON d.track_id = m.track_id
                   WHERE m.merged_into = t.track_id AND d.status = 'kept' AND d.version IN (\(placeholders)))
        """
    }
}

/// Ids in a sample's JSON that name the same track, clip and raw text whichever catalog (or worker
/// part) holds them: the first 8 bytes of SHA-256 over NUL-separated fields, big-endian, with the
/// top bit cleared (a non-negative 63-bit integer).
///
/// - track: `"track" ␀ track_id`
/// - clip: `"clip" ␀ track_id ␀ clip_index`
/// - raw text: `"text" ␀ track_id ␀ origin ␀ origin_file ␀ origin_line ␀ n`, where n counts the
///   track's earlier raw texts with the same origin, file and line (0 for the first).
public enum StableIDs {
    public static func of(_ fields: [String]) -> Int {
        let hex = SHA256Digest.hex(of: Array(fields.joined(separator: "\u{0}").utf8))
        return Int((UInt64(hex.prefix(16), radix: 16) ?? 0) & 0x7FFF_FFFF_FFFF_FFFF)
    }

    public static func track(_ trackID: String) -> Int { of(["track", trackID]) }

    public static func clip(track: String, index: Int) -> Int { of(["clip", track, String(index)]) }

    /// The stable id of each raw text of a track, by its catalog row id.
    static func rawTexts(of track: String, in db: Database) throws(MulanError) -> [Int: Int] {
        var ids: [Int: Int] = [:]
        var seen: [String: Int] = [:]
        for row in try db.rows("SELECT id, origin, origin_file, origin_line FROM raw_texts WHERE track_id = ? ORDER BY id",
                               [track]) {
            guard let id = row[0].int else { continue }
            let fields = ["text", track, row[1].string ?? "", row[2].string ?? "", String(row[3].int ?? 0)]
            let place = fields.joined(separator: "\u{0}")
            let n = seen[place, default: 0]
            seen[place] = n + 1
            ids[id] = of(fields + [String(n)])
        }
        return ids
    }
}
