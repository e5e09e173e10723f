import Foundation

/// The safetensors file format (Hugging Face): an 8-byte little-endian header length, a JSON header
/// mapping each tensor name to its dtype, shape and byte range, optional string metadata under
/// `__metadata__`, then the raw little-endian data. Python's `safetensors` reads what this writes.
public enum SafeTensors {
    public struct FormatError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Writes `encode(tensors, metadata:)` to `path` (Foundation's atomic write, not synced: for
    /// tests and tools; checkpoints go through `Checkpoint.save`, which syncs).
    public static func write(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:],
                             to path: String) throws {
        try encode(tensors, metadata: metadata).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// The file's bytes for float32 tensors (in the given order) and metadata. Writing them is the
    /// caller's (mulan-train publishes checkpoints through MulanCore's `AtomicFile`, which syncs).
    public static func encode(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for (name, t) in tensors {
            precondition(header[name] == nil && name != "__metadata__", "duplicate tensor name \(name)")
            header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.count]]
            offset += 4 * t.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad the header with spaces so the data starts 8-byte aligned.
        while (json.count + 8) % 8 != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for (_, t) in tensors {
            t.storage.withUnsafeBufferPointer { buf in
                buf.withMemoryRebound(to: UInt8.self) { out.append($0) }   // little-endian hosts only (x86-64, arm64)
            }
        }
        return out
    }

    /// Reads the tensors (F32, F16 and BF16 are converted to Float) and the metadata of `path`.
    ///
    /// With `include`, only the tensors whose name it accepts are converted (and only those need a
    /// floating-point dtype); every entry of the header is still checked. Hugging Face checkpoints
    /// hold integer buffers such as BERT's `embeddings.position_ids` (I64), which a caller skips so.
    ///
    /// Nothing in the file is trusted: the header length must fit the file, every size and offset
    /// is computed with overflow checks, dimensions must be non-negative, each byte range must be
    /// ordered, lie inside the data section (after the header) and hold exactly its shape, and no two
    /// tensors may share bytes. Each error names the file and the tensor.
    public static func read(_ path: String, include: ((String) -> Bool)? = nil)
        throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        return try read(data: data, path: path, include: include)
    }

    /// Reads the tensors and metadata of a safetensors file held in memory, with the checks of
    /// `read(_:include:)`; `path` only names it in messages.
    public static func read(data: Data, path: String = "<memory>", include: ((String) -> Bool)? = nil)
        throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let data = data.startIndex == 0 ? data : Data([UInt8](data))  // offsets below count from 0
        let (header, start) = try parseHeader(data, path: path)
        var entries: [Entry] = []
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = value as? [String: String] ?? [:]
                continue
            }
            entries.append(try Entry(name: name, value, dataSize: data.count - start, path: path))
        }
        try checkDisjoint(entries, path: path)
        var tensors: [String: Tensor] = [:]
        for e in entries where include?(e.name) ?? true {
            tensors[e.name] = try e.tensor(data, dataStart: start, path: path)
        }
        return (tensors, metadata)
    }

    /// The JSON header object and where the data section starts (8 + the header's length), after
    /// checking that the length is sane and fits the file.
    static func parseHeader(_ data: Data, path: String) throws -> (header: [String: Any], dataStart: Int) {
        guard data.count >= 8 else {
            throw FormatError(description: "\(path) is too short to be a safetensors file (\(data.count) bytes)")
        }
        let n = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        // As a signed 64-bit number (how other readers see it), a length ≥ 2⁶³ is negative.
        guard n <= UInt64(Int64.max) else {
            throw FormatError(description: "\(path): header length \(Int64(bitPattern: n)) is negative (not a safetensors file?)")
        }
        guard n <= UInt64(data.count - 8) else {
            throw FormatError(description: "\(path): header length \(n) exceeds the file of \(data.count) bytes (truncated?)")
        }
        guard n >= 2 else { throw FormatError(description: "\(path): header length \(n) cannot hold a JSON object") }
        let start = 8 + Int(n)
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<start))
        } catch {
            throw FormatError(description: "\(path): the header is not valid JSON (not a safetensors file?)")
        }
        guard let header = object as? [String: Any] else {
            throw FormatError(description: "\(path): the header is not a JSON object")
        }
        return (header, start)
    }

    /// One tensor's header entry, checked: a known dtype, non-negative dimensions, sizes computed
    /// with overflow checks, and an ordered byte range inside the data section that holds exactly
    /// its shape.
    struct Entry {
        var name: String
        var dtype: String
        var shape: [Int]
        var begin: Int
        var end: Int
        var count: Int

        init(name: String, _ value: Any, dataSize: Int, path: String) throws {
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int], let range = entry["data_offsets"] as? [Int], range.count == 2 else {
                throw FormatError(description: "\(path): tensor \(name) has a malformed header entry "
                                  + "(dtype, shape and data_offsets [begin, end] must be given as a string and integers)")
            }
            guard let width = SafeTensors.byteWidth(dtype) else {
                throw FormatError(description: "\(path): tensor \(name) has unknown dtype \(dtype)")
            }
            guard shape.allSatisfy({ $0 >= 0 }) else {
                throw FormatError(description: "\(path): tensor \(name) has a negative dimension in shape \(shape)")
            }
            var count = 1
            for d in shape {
                let (c, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow else {
                    throw FormatError(description: "\(path): tensor \(name) has shape \(shape), too many elements to address")
                }
                count = c
            }
            let (bytes, overflow) = count.multipliedReportingOverflow(by: width)
            guard !overflow else {
                throw FormatError(description: "\(path): tensor \(name) has shape \(shape), too many bytes to address")
            }
            let begin = range[0], end = range[1]
            guard begin >= 0, end >= 0 else {
                throw FormatError(description: "\(path): tensor \(name) has negative data_offsets \(range) "
                                  + "(it would overlap the header)")
            }
            guard begin <= end else {
                throw FormatError(description: "\(path): tensor \(name) has reversed data_offsets \(range)")
            }
            guard end <= dataSize else {
                throw FormatError(description: "\(path): tensor \(name) has data_offsets \(range) beyond the data "
                                  + "section of \(dataSize) bytes (truncated?)")
            }
            guard end - begin == bytes else {
                throw FormatError(description: "\(path): tensor \(name) has data_offsets \(range) (\(end - begin) bytes) "
                                  + "that do not fit shape \(shape) of \(dtype) (\(bytes) bytes)")
            }
            (self.name, self.dtype, self.shape, self.begin, self.end, self.count) = (name, dtype, shape, begin, end, count)
        }

        /// The tensor's values converted to Float (F32, F16 and BF16; other dtypes are refused).
        func tensor(_ data: Data, dataStart start: Int, path: String) throws -> Tensor {
            var values = [Float](repeating: 0, count: count)
            let count = count
            let ok = data.withUnsafeBytes { raw -> Bool in
                guard count > 0 else { return true }
                let base = raw.baseAddress! + start + begin
                switch dtype {
                case "F32":  // little-endian hosts only (x86-64, arm64), as `write`
                    values.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: base, count: 4 * count)) }
                case "BF16":
                    for i in 0..<count {
                        let h = base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian
                        values[i] = Float(bitPattern: UInt32(h) << 16)
                    }
                case "F16":
                    for i in 0..<count {
                        let h = base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian
                        values[i] = Float(Float16(bitPattern: h))
                    }
                default:
                    return false
                }
                return true
            }
            guard ok else {
                throw FormatError(description: "\(path): tensor \(name) has dtype \(dtype); only F32, F16 and BF16 are read")
            }
            return Tensor(shape: shape, values)
        }
    }

    /// No two tensors may share bytes (empty ones hold none).
    static func checkDisjoint(_ entries: [Entry], path: String) throws {
        let ordered = entries.filter { $0.end > $0.begin }.sorted { ($0.begin, $0.name) < ($1.begin, $1.name) }
        for (a, b) in zip(ordered, ordered.dropFirst()) where b.begin < a.end {
            throw FormatError(description: "\(path): tensors \(a.name) \([a.begin, a.end]) and \(b.name) "
                              + "\([b.begin, b.end]) share bytes")
        }
    }

    /// Bytes per element of the safetensors dtypes; nil for an unknown one.
    static func byteWidth(_ dtype: String) -> Int? {
        switch dtype {
        case "F64", "I64", "U64": 8
        case "F32", "I32", "U32": 4
        case "F16", "BF16", "I16", "U16": 2
        case "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2": 1
        default: nil
        }
    }
}
