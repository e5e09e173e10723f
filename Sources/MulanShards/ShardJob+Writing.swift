import Foundation
import MulanCatalog
import MulanCore
import MulanShardFormat

/// Writing shards: samples read from their catalogs, tars under temporary names, sidecars.
extension ShardJob {
    // MARK: Writing

    /// Writes the shards `slice` owns (all of them for a single process), skipping complete ones.
    func writeShards(_ plan: Plan, parts: [Part], directory: String, slice: WorkerSlice) throws -> WorkerSummary {
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
        let publisher = ShardPublisher()
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
                                                  parts: parts, versions: plan.versions, progress: progress,
                                                  publisher: publisher, summary: &summary)
                    position += sidecar.samples
                    index += 1
                }
                // Every shard of the split published, then one folder sync for their names
                // (Durable's batched form).
                try publisher.drain()
                try Durable.syncFolder(folder)
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
                                              publisher: publisher, summary: &summary)
                if sidecar.samples != range.count {
                    throw MulanError(.internalError, "\(name)/\(sidecar.shard) holds \(sidecar.samples) samples, "
                                     + "the plan says \(range.count)")
                }
            }
            // Every shard of the split published, then one folder sync for their names (Durable's
            // batched form): a worker's shards are durable when it exits, before the finishing run
            // lists them.
            try publisher.drain()
            try Durable.syncFolder(folder)
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

    func writeOrKeep(_ index: Int, entries: [Entry], from start: Int, to end: Int?, folder: String, parts: [Part],
                             versions: [String: String], progress: ProgressMeter, publisher: ShardPublisher,
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
                                     versions: versions, progress: progress, publisher: publisher)
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
        let store = part.store
        guard let clip = try store.sampleClip(clipID: entry.clipID) else {
            throw MulanError(.catalog, "clip \(entry.clipID) disappeared from the catalog while sharding",
                             hint: "do not run mulan-ingest on the same work directory at the same time")
        }
        let track = clip.trackID, clipIndex = clip.clipIndex, flacPath = clip.flacPath
        let key = ShardKeys.key(trackID: track, clipIndex: clipIndex)
        // The track's own kept texts, then those of the duplicates merged into it (mulan-dedupe --policy merge).
        let textTracks = [track] + (try DuplicateGroups.mergedInto(track, in: store))
        let textIDs = try textTracks.map { try StableIDs.rawTexts(of: $0, in: store) }
        var bySource: [String: [SampleRecord.Text]] = [:]
        var sampleTexts: [String: Int] = [:]
        for source in TextSource.allCases.map(\.rawValue) {
            guard let version = versions[source] else { continue }
            var texts: [SampleRecord.Text] = []
            for (n, textTrack) in textTracks.enumerated() {
                texts += try store.keptTexts(version: version, track: textTrack).map {
                    guard let local = $0.rawTextID, let id = textIDs[n][local] else {
                        throw MulanError(.catalog, "a kept \(source) text of track \(textTrack) has no raw text in \(part.directory)")
                    }
                    return SampleRecord.Text(text: $0.normalized ?? "",
                                             tokenIDs: ($0.tokenIDs ?? "").split(separator: " ").compactMap { Int($0) },
                                             rawTextID: id)
                }
            }
            if texts.isEmpty { continue }
            bySource[source] = texts
            sampleTexts[source] = texts.count
        }
        let group = try DuplicateGroups.groupKey(of: track, in: store)
        let record = SampleRecord(
            key: key, trackID: track, clipIndex: clipIndex, startSeconds: clip.startSeconds ?? 0,
            durationSeconds: clip.durationSeconds ?? 0, sampleRate: clip.sampleRate ?? 0, split: split, texts: bySource,
            provenance: .init(clipID: StableIDs.clip(track: track, index: clipIndex), trackRowID: StableIDs.track(track),
                              flacSHA256: clip.flacSHA256 ?? "", filterVersions: versions),
            lufs: Self.jsonLoudness(clip.lufs), loudnessRange: Self.jsonLoudness(clip.loudnessRange),
            truePeakDB: Self.jsonLoudness(clip.truePeakDB),
            text: ClapFields.captions(bySource), tag: ClapFields.tags(bySource),
            duplicateGroup: group)
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

    func missingClip(_ path: String, _ track: String) -> MulanError {
        MulanError(.io, "the clip file \(path) of track \(track) is missing from the store",
                   hint: "re-run mulan-ingest on this work directory (or worker part) to restore it")
    }

    /// Writes samples from `start` into one shard: up to `end` when the plan fixed it, else until
    /// `samplesPerShard` or `maxShardBytes` closes it.
    func writeShard(_ shardName: String, entries: [Entry], from start: Int, to end: Int?, directory: String,
                            parts: [Part], versions: [String: String], progress: ProgressMeter,
                            publisher: ShardPublisher) throws -> ShardSidecar {
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
        // The publisher syncs the tar's data, renames it, then writes the sidecar (synced, renamed),
        // while this thread builds the next shard.
        let (bytes, sha) = try writer.finish(sync: false)
        let sidecar = ShardSidecar(shard: shardName + ".tar", samples: count, bytes: bytes, sha256: sha,
                                   firstKey: firstKey, lastKey: lastKey, textsBySource: texts)
        try publisher.publish(part: partPath, as: tarPath, sidecar: sidecar, at: directory + "/" + shardName + ".json")
        return sidecar
    }
}

/// Publishes finished shards on a thread of its own while the next shard is being built: the tar's
/// data synced (most of what durability costs a shard: its megabytes reaching the disk), the tar
/// renamed from `.part`, then its sidecar written, synced and renamed. Per shard that is the order
/// `Durable` keeps (data on the disk before the rename; the sidecar after its tar, so that a power
/// cut leaves a tar without a sidecar, or neither, and the re-run rewrites that shard). The
/// folder's names are synced once per split after `drain()`, before `sizes.json` and
/// `dataset.json` name the shards. At most two shards wait; the first failure is thrown by the
/// next `publish` or by `drain`.
final class ShardPublisher: @unchecked Sendable {
    // `failure` is guarded by `lock`; the rest is immutable.
    private let queue = DispatchQueue(label: "mulan.shard.publish")
    private let slots = DispatchSemaphore(value: 2)
    private let lock = NSLock()
    private var failure: MulanError?

    func publish(part: String, as tar: String, sidecar: ShardSidecar, at sidecarPath: String) throws(MulanError) {
        try check()
        slots.wait()
        queue.async { [self] in
            defer { slots.signal() }
            if lock.withLock({ failure != nil }) { return }
            do throws(MulanError) {
                try Durable.rename(part, to: tar, syncFolder: false)
                try sidecar.write(to: sidecarPath, syncFolder: false)
            } catch {
                lock.withLock { if failure == nil { failure = error } }
            }
        }
    }

    /// Waits until every shard handed over is published; throws the first failure.
    func drain() throws(MulanError) {
        queue.sync {}
        try check()
    }

    private func check() throws(MulanError) {
        if let failure = lock.withLock({ failure }) { throw failure }
    }
}
