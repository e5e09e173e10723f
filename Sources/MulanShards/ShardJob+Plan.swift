import Foundation
import MulanCatalog
import MulanCore

/// The plan: which clips, in which split and shuffle order, in which shards.
extension ShardJob {
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
        /// Train clips kept out as benchmark test tracks (or their duplicates), and their tracks.
        var heldOutClips = 0
        var heldOutTracks: Set<String> = []
        var datasetID = ""
        /// Splits in name order, each with its samples in shard order.
        var splits: [(name: String, entries: [Entry])] = []
    }

    /// Filter versions: per source the named one, else the latest one completed in every catalog.
    func resolveVersions(_ parts: [Part]) throws -> [String: String] {
        var versions: [String: String] = [:]
        for source in TextSource.allCases {
            if let named = filterVersions[source.rawValue] {
                for part in parts where try !part.store.isCompleteFilterVersion(named) {
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
                for (v, at) in try part.store.completedFilterVersions(source: source.rawValue) {
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
        var plan = Plan(versions: versions, vocabularySHA256: nil, sampleRate: 0, clipSeconds: 0)
        plan.audioFilterVersion = try resolveAudioFilterVersion(parts)
        let audioVersion = plan.audioFilterVersion
        var perSplit: [String: [Entry]] = [:]
        var lanes = [UInt64](repeating: 0, count: 4)
        var samples = 0
        // One dedupe identity per work directory: its parts share one result, so the id does not
        // depend on how the tracks were split.
        let dedupeSignatures = try DuplicateGroups.signatures(parts)
        var mergedClips = 0
        for (p, part) in parts.enumerated() {
            let store = part.store
            let groups = try DuplicateGroups(store, console: console)
            // Duplicate groups holding a held-out track: all their members are held out too.
            let heldGroups = Set(holdOut.map { h in groups.members.compactMap { h.trackIDs.contains($0.key) ? $0.value.groupKey : nil } } ?? [])
            if plan.vocabularySHA256 == nil {
                plan.vocabularySHA256 = try store.vocabularySHA256(versions: versionList)
            }
            if let rate = try store.minimumIngestedSampleRate() {
                plan.sampleRate = plan.sampleRate == 0 ? rate : min(plan.sampleRate, rate)
            }
            if let seconds = try store.maximumKeptClipSeconds() {
                plan.clipSeconds = max(plan.clipSeconds, seconds)
            }
            try store.forEachCandidateClip(versions: versionList, audioFilterVersion: audioVersion) { clip in
                let id = clip.clipID, track = clip.trackID, index = clip.clipIndex
                let member = groups.members[track]
                if groups.merge, member?.mergedInto != nil {
                    mergedClips += 1
                    return
                }
                if let reason = clip.audioDropReason {
                    plan.droppedByAudioFilter[reason, default: 0] += 1
                    return
                }
                if let reason = loudness.reason(status: clip.loudnessStatus, lufs: clip.lufs, truePeakDB: clip.truePeakDB) {
                    plan.loudnessDropped[reason.rawValue, default: 0] += 1
                    return
                }
                plan.normalization[NormalizationKey(target: clip.loudnessTargetLUFS, ceiling: clip.loudnessMaxTruePeakDB), default: 0] += 1
                let key = ShardKeys.key(trackID: track, clipIndex: index)
                // A duplicate group's members all go to one split: the group key's (see DuplicateGroups).
                let name = member.map { split.split(trackID: $0.groupKey, manifestSplit: $0.groupSplit) }
                    ?? split.split(trackID: track, manifestSplit: clip.split)
                if name == "train", let h = holdOut,
                   h.trackIDs.contains(track) || member.map({ heldGroups.contains($0.groupKey) }) == true {
                    plan.heldOutClips += 1
                    plan.heldOutTracks.insert(track)
                    return
                }
                perSplit[name, default: []].append(Entry(rank: ShardKeys.rank(key: key, seed: seed),
                                                         ref: UInt64(p) << 48 | UInt64(id)))
                // The loudness values are part of the sample's JSON, so they are part of its identity.
                let loud = [clip.lufs, clip.loudnessRange, clip.truePeakDB].map { Self.jsonLoudness($0).map { "\($0)" } ?? "-" }
                    .joined(separator: ",")
                let digest = SHA256Digest.hex(of: Array("\(name)/\(key)/\(clip.flacSHA256 ?? "")/\(loud)".utf8))
                for lane in 0..<4 {
                    let start = digest.index(digest.startIndex, offsetBy: lane * 16)
                    lanes[lane] &+= UInt64(digest[start..<digest.index(start, offsetBy: 16)], radix: 16) ?? 0
                }
                samples += 1
            }
            plan.clipsWithoutText += try store.clipsWithoutKeptText(versions: versionList)
        }
        if mergedClips > 0 {
            console.log(.info, "\(mergedClips) clips of tracks merged into their duplicate group's representative "
                        + "(mulan-dedupe --policy merge) are left out; their kept texts go with the representative",
                        event: "merged_duplicates")
        }
        if plan.heldOutClips > 0 {
            console.log(.warning, "\(plan.heldOutTracks.count) tracks (\(plan.heldOutClips) clips) of the train split are "
                        + "benchmark test tracks of --hold-out or their duplicates: kept out of train (dataset.json held_out)",
                        event: "held_out")
        }
        if plan.sampleRate == 0 { plan.sampleRate = 16000 }
        if plan.clipSeconds == 0 { plan.clipSeconds = 30 }
        if let unmeasured = plan.loudnessDropped[LoudnessFilter.Reason.notMeasured.rawValue] {
            console.log(.warning, "\(unmeasured) clips have no loudness measurement and are left out by --min-lufs/--max-true-peak; "
                        + "run mulan-ingest again on the same manifests to measure them", event: "loudness_not_measured")
        }
        // v3: samples carry lufs, loudness_range and true_peak_db. v4: and LAION-CLAP's text and tag,
        // and duplicate_group (a v3 dataset's shards must not be kept as complete by a v4 run).
        var settings = "v4;seed=\(seed);split=\(split.fractions.map { "\($0.name)=\($0.share)" });per=\(samplesPerShard)"
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
    func orderTies(_ entries: inout [Entry], parts: [Part]) throws {
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

    func sampleKey(_ entry: Entry, parts: [Part]) throws -> (key: String, track: String) {
        guard let (track, index) = try parts[entry.part].store.clipKey(clipID: entry.clipID) else {
            throw MulanError(.catalog, "clip \(entry.clipID) disappeared from \(parts[entry.part].directory) while sharding",
                             hint: "do not run mulan-ingest on the same work directory at the same time")
        }
        return (ShardKeys.key(trackID: track, clipIndex: index), track)
    }

    // MARK: Shard boundaries

    /// The sample ranges of a split's shards, when they can be known before writing: always with
    /// `samplesPerShard` alone; with `maxShardBytes`, by sizing every sample (its FLAC's size and
    /// its JSON) as the writer would. Nil: a single writer finds them as it writes.
    func shardRanges(_ entries: [Entry], parts: [Part], versions: [String: String], split name: String,
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
}
