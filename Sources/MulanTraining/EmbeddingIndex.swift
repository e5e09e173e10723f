import Foundation
import MulanCore

/// One row of an embedding index (`index.jsonl`): what row `row` of `embeddings.npy` embeds.
///
/// Audio rows name a file (`path`) or a shard clip (`shard`, `key`, `track`); text rows hold the
/// `text`. `seconds` is the audio's decoded length and `windows` how many windows were averaged.
public struct IndexRow: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case audio, text }

    public var row: Int
    public var kind: Kind
    public var path: String?
    public var shard: String?
    public var key: String?
    public var track: String?
    public var text: String?
    public var seconds: Double?
    public var windows: Int?

    public init(row: Int, kind: Kind, path: String? = nil, shard: String? = nil, key: String? = nil,
                track: String? = nil, text: String? = nil, seconds: Double? = nil, windows: Int? = nil) {
        self.row = row
        self.kind = kind
        self.path = path
        self.shard = shard
        self.key = key
        self.track = track
        self.text = text
        self.seconds = seconds
        self.windows = windows
    }

    /// How a person finds the item: the file path, `SHARD#KEY` for a shard clip, or the text.
    public var label: String {
        if let path { return path }
        if let shard, let key { return shard + "#" + key }
        return text ?? key ?? "row \(row)"
    }
}

/// An input that could not be embedded, with the reason (a `FailureReason` raw value) and what to do.
public struct EmbeddingFailure: Error, Codable, Sendable, Equatable {
    public var path: String
    public var reason: String
    public var detail: String

    public init(path: String, reason: String, detail: String) {
        self.path = path
        self.reason = reason
        self.detail = detail
    }
}

/// `embedding-info.json`: which model made the index and what it holds.
public struct EmbeddingInfo: Codable, Sendable, Equatable {
    public static let format = "mulan-embeddings-1"
    public var format = EmbeddingInfo.format
    public var checkpoint: String
    /// SHA-256 of the checkpoint file: queries must be embedded by the same model.
    public var checkpointSHA256: String
    public var step: Int
    public var dim: Int
    public var sampleRate: Int
    public var windowSeconds: Double
    public var vocabulary: String?
    public var rows: Int
    public var audioRows: Int
    public var textRows: Int
    public var failures: [EmbeddingFailure]

    public init(checkpoint: String, checkpointSHA256: String, step: Int, dim: Int, sampleRate: Int,
                windowSeconds: Double, vocabulary: String?, rows: Int, audioRows: Int, textRows: Int,
                failures: [EmbeddingFailure]) {
        self.checkpoint = checkpoint
        self.checkpointSHA256 = checkpointSHA256
        self.step = step
        self.dim = dim
        self.sampleRate = sampleRate
        self.windowSeconds = windowSeconds
        self.vocabulary = vocabulary
        self.rows = rows
        self.audioRows = audioRows
        self.textRows = textRows
        self.failures = failures
    }

    enum CodingKeys: String, CodingKey {
        case format, checkpoint, checkpointSHA256 = "checkpoint_sha256", step, dim, sampleRate = "sample_rate"
        case windowSeconds = "window_seconds", vocabulary, rows, audioRows = "audio_rows", textRows = "text_rows", failures
    }
}

/// Writes a float32 NumPy array of shape [rows, dim] (format version 1.0) row by row. The header
/// is written first with room for any row count, and rewritten with the true count by `finish`.
/// Data go to `PATH.tmp`, renamed to `PATH` only by `finish`.
public final class NPYWriter {
    public let path: String
    public let dim: Int
    public private(set) var rows = 0
    private let handle: FileHandle
    /// Magic, version, header length and the padded header dict: a multiple of 64 bytes.
    static let headerBytes = 128

    public init(path: String, dim: Int) throws(MulanError) {
        self.path = path
        self.dim = dim
        let tmp = path + ".tmp"
        guard let h = Paths.createForWriting(tmp) else {
            throw MulanError(.io, "cannot create \(tmp)", hint: "check that the output folder is writable")
        }
        handle = h
        try write(Self.header(rows: 0, dim: dim))
    }

    /// A whole float32 [rows, dim] array as one .npy file, written under a temporary name and renamed.
    static func write(_ path: String, rows: Int, dim: Int, _ values: [Float]) throws(MulanError) {
        precondition(values.count == rows * dim, "NPYWriter.write: \(values.count) values for [\(rows), \(dim)]")
        let writer = try NPYWriter(path: path, dim: dim)
        try writer.append(values)
        try writer.finish()
        try Durable.rename(path + ".tmp", to: path)
    }

    /// The NPY v1.0 header for a little-endian float32, C-order [rows, dim] array.
    static func header(rows: Int, dim: Int) -> Data {
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(rows), \(dim)), }"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        let length = headerBytes - 10
        bytes += [UInt8(length & 0xFF), UInt8(length >> 8)]
        bytes += Array(dict.utf8)
        bytes += [UInt8](repeating: 0x20, count: headerBytes - 1 - bytes.count)
        bytes.append(0x0A)
        return Data(bytes)
    }

    /// Appends rows (row-major, `dim` values each).
    public func append(_ values: [Float]) throws(MulanError) {
        precondition(values.count % dim == 0, "NPYWriter: \(values.count) values are not whole rows of \(dim)")
        var data = Data(capacity: values.count * 4)
        for v in values {
            let bits = v.bitPattern.littleEndian
            withUnsafeBytes(of: bits) { data.append(contentsOf: $0) }
        }
        try write(data)
        rows += values.count / dim
    }

    private func write(_ data: Data) throws(MulanError) {
        do { try handle.write(contentsOf: data) } catch {
            throw MulanError(.io, "cannot write \(path).tmp", hint: "check free space", cause: error)
        }
    }

    /// Fixes the header's shape and flushes; the file stays `PATH.tmp` until `commit`.
    public func finish() throws(MulanError) {
        do {
            try handle.seek(toOffset: 0)
            try handle.write(contentsOf: Self.header(rows: rows, dim: dim))
            try handle.synchronize()
            try handle.close()
        } catch {
            throw MulanError(.io, "cannot finish \(path).tmp", hint: "check free space", cause: error)
        }
    }
}

/// Reads a float32 [rows, dim] NumPy array (version 1.0, 2.0 or 3.0; C order; little-endian).
public enum NPYReader {
    public static func read(_ path: String) throws(MulanError) -> (rows: Int, dim: Int, values: [Float]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MulanError(.io, "cannot read \(path)", hint: "pass --index with a folder written by mulan-embed")
        }
        let bytes = [UInt8](data)
        func bad(_ why: String) -> MulanError {
            MulanError(.data, "\(path) is not a float32 [rows, dim] .npy file: \(why)",
                       hint: "re-create the index with mulan-embed")
        }
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1..<6]) == Array("NUMPY".utf8) else { throw bad("no NumPy magic") }
        let major = bytes[6]
        let headerStart: Int, headerLength: Int
        switch major {
        case 1:
            headerStart = 10
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        case 2, 3:
            guard bytes.count >= 12 else { throw bad("cut short") }
            headerStart = 12
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        default:
            throw bad("format version \(major)")
        }
        guard headerStart + headerLength <= bytes.count else { throw bad("the header runs past the end") }
        let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        guard header.contains("'descr': '<f4'") else { throw bad("dtype is not '<f4' (header \(header))") }
        guard header.contains("'fortran_order': False") else { throw bad("Fortran order") }
        guard let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")") else {
            throw bad("no shape")
        }
        let dims = header[open.upperBound..<close].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.map { Int($0) }
        guard dims.count == 2, let rows = dims[0], let dim = dims[1], rows >= 0, dim > 0 else {
            throw bad("shape is not (rows, dim)")
        }
        let start = headerStart + headerLength
        guard bytes.count - start == rows * dim * 4 else {
            throw bad("\(bytes.count - start) data bytes for shape (\(rows), \(dim)) (truncated?)")
        }
        var values = [Float](repeating: 0, count: rows * dim)
        for i in 0..<(rows * dim) {
            let o = start + 4 * i
            let bits = UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
            values[i] = Float(bitPattern: bits)
        }
        return (rows, dim, values)
    }
}

/// The three files of an embedding index folder, written under temporary names
/// (`NAME.tmp`) and renamed into place by `commit`, so a killed run leaves no partial file under a
/// real name.
public final class EmbeddingIndexWriter {
    public static let embeddingsFile = "embeddings.npy"
    public static let indexFile = "index.jsonl"
    public static let infoFile = "embedding-info.json"

    public let directory: String
    private let npy: NPYWriter
    private let index: FileHandle
    private let encoder: JSONEncoder
    public private(set) var rows: [IndexRow] = []

    public init(directory: String, dim: Int) throws(MulanError) {
        self.directory = directory
        try Durable.createFolder(directory)
        // Leftovers of a killed run.
        for name in [Self.embeddingsFile, Self.indexFile, Self.infoFile] {
            try? FileManager.default.removeItem(atPath: directory + "/" + name + ".tmp")
        }
        npy = try NPYWriter(path: directory + "/" + Self.embeddingsFile, dim: dim)
        let tmp = directory + "/" + Self.indexFile + ".tmp"
        guard let h = Paths.createForWriting(tmp) else {
            throw MulanError(.io, "cannot create \(tmp)", hint: "check that the output folder is writable")
        }
        index = h
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    }

    /// Appends embeddings with their rows (`row` is assigned here).
    public func append(_ items: [(row: IndexRow, embedding: [Float])]) throws(MulanError) {
        guard !items.isEmpty else { return }
        var values: [Float] = []
        var lines = Data()
        for item in items {
            var r = item.row
            r.row = rows.count
            rows.append(r)
            values += item.embedding
            do { lines += try encoder.encode(r) + Data("\n".utf8) } catch {
                throw MulanError(.internalError, "cannot encode an index row", cause: error)
            }
        }
        try npy.append(values)
        do { try index.write(contentsOf: lines) } catch {
            throw MulanError(.io, "cannot write \(directory)/\(Self.indexFile).tmp", hint: "check free space", cause: error)
        }
    }

    /// Finishes the files and renames them into place: the embeddings, the rows, then the info
    /// (which `EmbeddingIndex` checks against both).
    public func commit(info: EmbeddingInfo) throws(MulanError) {
        try npy.finish()
        do {
            try index.synchronize()
            try index.close()
        } catch {
            throw MulanError(.io, "cannot finish \(directory)/\(Self.indexFile).tmp", cause: error)
        }
        let pretty = JSONEncoder()
        pretty.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let infoData: Data
        do { infoData = try pretty.encode(info) + Data("\n".utf8) } catch {
            throw MulanError(.internalError, "cannot encode embedding-info.json", cause: error)
        }
        do { try infoData.write(to: URL(fileURLWithPath: directory + "/" + Self.infoFile + ".tmp")) } catch {
            throw MulanError(.io, "cannot write \(directory)/\(Self.infoFile).tmp", cause: error)
        }
        // The old info goes first (and durably), so that a folder never pairs new data with an old
        // description; the data files next (one folder sync for both), the new info last.
        if unlink(directory + "/" + Self.infoFile) == 0 { try Durable.syncFolder(directory) }
        for name in [Self.embeddingsFile, Self.indexFile] {
            try Durable.rename(directory + "/" + name + ".tmp", to: directory + "/" + name, syncFolder: false)
        }
        try Durable.syncFolder(directory)
        try Durable.rename(directory + "/" + Self.infoFile + ".tmp", to: directory + "/" + Self.infoFile)
    }
}

/// An embedding index folder read back: the info, the rows and the [rows, dim] matrix.
public struct EmbeddingIndex: Sendable {
    public var directory: String
    public var info: EmbeddingInfo
    public var rows: [IndexRow]
    public var dim: Int
    /// Row-major, `rows.count × dim`.
    public var embeddings: [Float]

    public init(directory: String) throws(MulanError) {
        self.directory = directory
        let infoPath = directory + "/" + EmbeddingIndexWriter.infoFile
        guard let infoData = FileManager.default.contents(atPath: infoPath) else {
            throw MulanError(.io, "cannot read \(infoPath)",
                             hint: "pass --index with a folder written by mulan-embed (it holds embeddings.npy, index.jsonl and embedding-info.json)")
        }
        do { info = try JSONDecoder().decode(EmbeddingInfo.self, from: infoData) } catch {
            throw MulanError(.data, "\(infoPath) is not a mulan-embed info file", cause: error)
        }
        let indexPath = directory + "/" + EmbeddingIndexWriter.indexFile
        guard let text = try? String(contentsOfFile: indexPath, encoding: .utf8) else {
            throw MulanError(.io, "cannot read \(indexPath)", hint: "re-create the index with mulan-embed")
        }
        var rows: [IndexRow] = []
        let decoder = JSONDecoder()
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            do { rows.append(try decoder.decode(IndexRow.self, from: Data(line.utf8))) } catch {
                throw MulanError(.data, "not an index row", location: SourceLocation(file: indexPath, line: i + 1),
                                 hint: "re-create the index with mulan-embed", cause: error)
            }
            if rows[rows.count - 1].row != rows.count - 1 {
                throw MulanError(.data, "row number \(rows[rows.count - 1].row), expected \(rows.count - 1)",
                                 location: SourceLocation(file: indexPath, line: i + 1), hint: "re-create the index with mulan-embed")
            }
        }
        self.rows = rows
        let matrix = try NPYReader.read(directory + "/" + EmbeddingIndexWriter.embeddingsFile)
        guard matrix.rows == rows.count, matrix.rows == info.rows, matrix.dim == info.dim else {
            throw MulanError(.data, "the index in \(directory) is inconsistent: embeddings.npy has \(matrix.rows)×\(matrix.dim), "
                             + "index.jsonl \(rows.count) rows, embedding-info.json \(info.rows)×\(info.dim)",
                             hint: "re-create the index with mulan-embed")
        }
        dim = matrix.dim
        embeddings = matrix.values
    }

    public func embedding(_ row: Int) -> [Float] { Array(embeddings[(row * dim)..<((row + 1) * dim)]) }
}

/// Cosine similarity of unit vectors (a dot product), and ranking by it.
public enum SimilaritySearch {
    public static func dot(_ a: [Float], _ b: ArraySlice<Float>) -> Float {
        var s: Float = 0
        var j = b.startIndex
        for v in a {
            s += v * b[j]
            j += 1
        }
        return s
    }

    /// The `top` best of `candidates` (row numbers) by similarity with `query`, best first; ties
    /// keep row order.
    public static func rank(query: [Float], in index: EmbeddingIndex, candidates: [Int], top: Int) -> [(row: Int, score: Float)] {
        let d = index.dim
        let scored = candidates.map { r in (row: r, score: dot(query, index.embeddings[(r * d)..<((r + 1) * d)])) }
        let sorted = scored.sorted { $0.score != $1.score ? $0.score > $1.score : $0.row < $1.row }
        return Array(sorted.prefix(max(0, top)))
    }
}
