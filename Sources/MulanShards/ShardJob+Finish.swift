import Foundation
import MulanCatalog
import MulanCore
import MulanFormats
import MulanShardFormat

extension ShardJob {
    // MARK: Finishing

    /// Walks each split's shards as the plan lays them out, checking that each is there (its tar's
    /// size and first key match its sidecar), then writes `sizes.json`, the wids indexes, the dataset
    /// card, `dataset.json` and `latest`.
    func finish(_ plan: Plan, parts: [Part], directory: String) throws -> DatasetManifest {
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
        if let h = holdOut {
            manifest.heldOut = .init(files: h.files, tracksListed: h.trackIDs.count, tracksKeptOutOfTrain: plan.heldOutTracks.count,
                                     clipsKeptOutOfTrain: plan.heldOutClips, tracks: Array(plan.heldOutTracks.sorted().prefix(1000)))
        }
        if let v = plan.audioFilterVersion {
            manifest.audioFilterVersion = v
            manifest.clipsDroppedByAudioFilter = plan.droppedByAudioFilter
        }
        var missing: [String] = []
        var allSizes: [String: [String: Int]] = [:]
        var shardFiles: [String: [(name: String, samples: Int, bytes: Int)]] = [:]
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
                shardFiles[name, default: []].append((shardName + ".tar", sidecar.samples, sidecar.bytes))
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
            // The split's wids shard index, beside the split folder (urls relative to it).
            let index = WidsIndex(datasetID: plan.datasetID, split: name, shards: shardFiles[name] ?? [])
            try AtomicFile.write(try index.jsonBytes(), to: directory + "/" + WidsIndex.fileName(split: name))
        }
        // The Hugging Face dataset card that names each split's shards.
        try AtomicFile.write(Data(DatasetCard.markdown(manifest).utf8), to: directory + "/README.md")
        try manifest.write(to: directory + "/dataset.json")
        if output == nil {
            // Point shards/latest at this dataset (a new link, renamed over the old one).
            let tmp = root + "/.latest-\(getpid())"
            try? FileManager.default.removeItem(atPath: tmp)
            try FileManager.default.createSymbolicLink(atPath: tmp, withDestinationPath: plan.datasetID)
            if rename(tmp, latestLink) != 0 {
                throw MulanError(.io, "cannot update \(latestLink)", cause: SystemCallError.current())
            }
            try Durable.syncFolder(root)
        }
        return manifest
    }
}
