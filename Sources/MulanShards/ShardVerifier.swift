import Foundation
import MulanCore
import MulanMedia
import MulanShardFormat

/// `mulan-shard verify DIR`: re-reads every shard of a dataset, checks hashes against sidecars,
/// tar structure, member pairing and names, decodes every FLAC, checks every JSON against the
/// sample schema's rules (LAION-CLAP's `text` and `tag` included), and the counts against the
/// sidecars, sizes.json, the wids indexes and dataset.json; the dataset card is the one dataset.json gives.
public struct ShardVerifier: Sendable {
    public var directory: String
    public var console: Console

    public init(directory: String, console: Console) {
        self.directory = Paths.absolute(directory)
        self.console = console
    }

    public struct Result: Sendable {
        public var shards = 0
        public var samples = 0
        public var problems: [String] = []
    }

    public func run() throws -> Result {
        var result = Result()
        guard let data = FileManager.default.contents(atPath: directory + "/dataset.json") else {
            throw MulanError(.usage, "\(directory) has no dataset.json", hint: "pass the folder mulan-shard wrote")
        }
        let manifest: DatasetManifest
        do {
            manifest = try JSONDecoder().decode(DatasetManifest.self, from: data)
        } catch {
            throw MulanError(.usage, "\(directory)/dataset.json is not a mulan dataset manifest", cause: error)
        }
        let total = manifest.splits.values.reduce(0) { $0 + $1.samples }
        let progress = ProgressMeter(total: total, unit: "samples", console: console)
        let scratch = NSTemporaryDirectory() + "mulan-verify-\(getpid()).flac"
        defer { try? FileManager.default.removeItem(atPath: scratch) }

        for split in manifest.splits.keys.sorted() {
            let expected = manifest.splits[split]!
            let folder = directory + "/" + split
            var sizes: [String: Int] = [:]
            if let s = FileManager.default.contents(atPath: folder + "/sizes.json"),
               let parsed = try? JSONDecoder().decode([String: Int].self, from: s) {
                sizes = parsed
            } else {
                result.problems.append("\(split)/sizes.json: missing or not a JSON object of counts")
            }
            var splitSamples = 0
            var indexed: [(name: String, samples: Int, bytes: Int)] = []
            for shard in expected.shards {
                result.shards += 1
                let where_ = "\(split)/\(shard)"
                let tarPath = folder + "/" + shard
                let sidecarPath = folder + "/" + (shard as NSString).deletingPathExtension + ".json"
                guard let sidecarData = FileManager.default.contents(atPath: sidecarPath),
                      let sidecar = try? JSONDecoder().decode(ShardSidecar.self, from: sidecarData) else {
                    result.problems.append("\(where_): its sidecar is missing or unreadable")
                    continue
                }
                guard let hashed = try? SHA256Digest.hex(ofFile: tarPath) else {
                    result.problems.append("\(where_): the shard file is missing")
                    continue
                }
                indexed.append((shard, sidecar.samples, sidecar.bytes))
                if hashed.digest != sidecar.sha256 || hashed.bytes != sidecar.bytes {
                    result.problems.append("\(where_): SHA-256 or size differs from its sidecar (the file changed or is damaged)")
                }
                let reader = try TarReader(path: tarPath)
                var count = 0
                var pending: TarReader.Member?
                do {
                    while let member = try reader.next() {
                        let name = member.name
                        guard let dot = name.firstIndex(of: ".") else {
                            result.problems.append("\(where_): member \(name) has no extension")
                            continue
                        }
                        let key = String(name[..<dot]), ext = String(name[name.index(after: dot)...])
                        if !key.unicodeScalars.allSatisfy({ $0.properties.isASCIIHexDigit || $0 == "_" || ("a"..."z").contains($0) }) {
                            result.problems.append("\(where_): member \(name) has an unsafe key")
                        }
                        if ext == "flac" {
                            if let p = pending { result.problems.append("\(where_): member \(p.name) has no .json") }
                            pending = member
                            continue
                        }
                        guard ext == "json", let flac = pending, flac.name == key + ".flac" else {
                            result.problems.append("\(where_): member \(name) does not follow its .flac")
                            pending = nil
                            continue
                        }
                        pending = nil
                        count += 1
                        result.samples += 1
                        progress.advance()
                        guard let record = try? JSONDecoder().decode(SampleRecord.self, from: Data(member.data)) else {
                            result.problems.append("\(where_): member \(name) is not a valid sample JSON")
                            continue
                        }
                        if let problem = Self.check(record, key: key, split: split, manifest: manifest) {
                            result.problems.append("\(where_): member \(name): \(problem)")
                        }
                        if SHA256Digest.hex(of: flac.data) != record.provenance.flacSHA256 {
                            result.problems.append("\(where_): member \(flac.name): its SHA-256 differs from the clip's (damaged)")
                        } else if let problem = Self.decode(flac.data, scratch: scratch, record: record) {
                            result.problems.append("\(where_): member \(flac.name): \(problem)")
                        }
                    }
                } catch {
                    result.problems.append("\(where_): \(error)")
                }
                if let p = pending { result.problems.append("\(where_): member \(p.name) has no .json") }
                if count != sidecar.samples {
                    result.problems.append("\(where_): holds \(count) samples, its sidecar says \(sidecar.samples)")
                }
                if sizes[shard] != nil && sizes[shard] != count {
                    result.problems.append("\(where_): holds \(count) samples, sizes.json says \(sizes[shard]!)")
                }
                splitSamples += count
            }
            if splitSamples != expected.samples {
                result.problems.append("\(split): holds \(splitSamples) samples, dataset.json says \(expected.samples)")
            }
            if let problem = Self.checkWidsIndex(directory: directory, split: split, datasetID: manifest.datasetID,
                                                 shards: indexed) {
                result.problems.append(problem)
            }
        }
        let card = FileManager.default.contents(atPath: directory + "/README.md")
        if card != Data(DatasetCard.markdown(manifest).utf8) {
            result.problems.append("README.md: " + (card == nil ? "missing" : "differs from the one dataset.json gives")
                                   + " (the Hugging Face dataset card: run mulan-shard again with the same options and "
                                   + "--out, it keeps the shards and rewrites it)")
        }
        progress.finish()
        return result
    }

    static func check(_ r: SampleRecord, key: String, split: String, manifest: DatasetManifest) -> String? {
        if r.key != key { return "key \(r.key) differs from the member name" }
        if r.split != split { return "split \(r.split) differs from its folder" }
        if r.sampleRate != manifest.sampleRate { return "sample rate \(r.sampleRate), dataset says \(manifest.sampleRate)" }
        if r.texts.isEmpty { return "no texts" }
        for (source, texts) in r.texts {
            if TextSource(rawValue: source) == nil { return "unknown source \(source)" }
            if texts.isEmpty || texts.contains(where: { $0.text.isEmpty || $0.tokenIDs.isEmpty }) {
                return "an empty \(source) text or token list"
            }
        }
        if !(r.durationSeconds > 0) { return "duration \(r.durationSeconds)" }
        guard let text = r.text, let tag = r.tag else {
            return "no LAION-CLAP text/tag fields (written by a mulan-shard before they existed: shard the catalog again)"
        }
        if text.isEmpty || text != ClapFields.captions(r.texts) { return "its LAION-CLAP text differs from its kept texts" }
        if tag != ClapFields.tags(r.texts) { return "its LAION-CLAP tag differs from its kept tags" }
        return nil
    }

    /// A split's wids index against the shards' sidecars: nil when it is the one mulan-shard writes.
    static func checkWidsIndex(directory: String, split: String, datasetID: String,
                               shards: [(name: String, samples: Int, bytes: Int)]) -> String? {
        let file = WidsIndex.fileName(split: split)
        guard let data = FileManager.default.contents(atPath: directory + "/" + file) else {
            return "\(file): missing (the split's wids shard index: run mulan-shard again with the same options and "
                + "--out, it keeps the shards and rewrites it)"
        }
        guard let index = try? JSONDecoder().decode(WidsIndex.self, from: data) else {
            return "\(file): not a wids shard index"
        }
        let expected = WidsIndex(datasetID: datasetID, split: split, shards: shards)
        if index.shardlist != expected.shardlist {
            return "\(file): its shard list differs from the shards' sidecars (names, sample counts or sizes)"
        }
        if index.widsVersion != 1 || index.name != expected.name { return "\(file): wrong wids_version or name" }
        return nil
    }

    /// Decodes a FLAC member fully (libavcodec) and checks its rate and length.
    static func decode(_ bytes: [UInt8], scratch: String, record: SampleRecord) -> String? {
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: scratch))
            let decoder = try AudioDecoder(path: scratch, outputSampleRate: record.sampleRate, strict: true)
            if decoder.probe.codec != "flac" { return "not FLAC (\(decoder.probe.codec))" }
            if decoder.probe.sampleRate != record.sampleRate {
                return "sample rate \(decoder.probe.sampleRate), JSON says \(record.sampleRate)"
            }
            let stats = try decoder.decode { _ in true }
            if stats.decodeErrors > 0 { return "\(stats.decodeErrors) FLAC frames failed to decode" }
            let seconds = Double(stats.outputSamples) / Double(record.sampleRate)
            if abs(seconds - record.durationSeconds) > 0.01 {
                return String(format: "decodes to %.3f s, JSON says %.3f s", seconds, record.durationSeconds)
            }
            return nil
        } catch {
            return "cannot decode: \(error)"
        }
    }
}
