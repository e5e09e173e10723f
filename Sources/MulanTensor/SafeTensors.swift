import Foundation

/// The safetensors file format (Hugging Face): an 8-byte little-endian header length, a JSON header
/// mapping each tensor name to its dtype, shape and byte range, optional string metadata under
/// `__metadata__`, then the raw little-endian data. Python's `safetensors` reads what this writes.
public enum SafeTensors {
    public struct FormatError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Writes float32 tensors (in the given order) and metadata to `path` via `path.tmp` and a rename,
    /// so a crash never leaves a partial file under the real name.
    public static func write(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:],
                             to path: String) throws {
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
        let tmp = path + ".tmp"
        try out.write(to: URL(fileURLWithPath: tmp))
        guard rename(tmp, path) == 0 else {
            throw FormatError(description: "cannot rename \(tmp) to \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Reads every tensor (F32, F16 and BF16 are converted to Float) and the metadata of `path`.
    public static func read(_ path: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        guard data.count >= 8 else { throw FormatError(description: "\(path) is too short to be a safetensors file") }
        let n = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard n <= UInt64(data.count - 8) else {
            throw FormatError(description: "\(path): header length \(n) exceeds the file (truncated?)")
        }
        let start = 8 + Int(n)
        guard let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<start)) as? [String: Any] else {
            throw FormatError(description: "\(path): the header is not a JSON object")
        }
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = value as? [String: String] ?? [:]
                continue
            }
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int], let range = entry["data_offsets"] as? [Int], range.count == 2 else {
                throw FormatError(description: "\(path): tensor \(name) has a malformed header entry")
            }
            let count = shape.reduce(1, *)
            let width = dtype == "F32" ? 4 : (dtype == "F16" || dtype == "BF16") ? 2 : 0
            guard width > 0 else { throw FormatError(description: "\(path): tensor \(name) has unsupported dtype \(dtype)") }
            guard range[0] >= 0, range[1] - range[0] == count * width, start + range[1] <= data.count else {
                throw FormatError(description: "\(path): tensor \(name) has byte range \(range) that does not fit shape \(shape)")
            }
            var values = [Float](repeating: 0, count: count)
            data.withUnsafeBytes { raw in
                let base = raw.baseAddress! + start + range[0]
                for i in 0..<count {
                    switch dtype {
                    case "F32":
                        values[i] = Float(bitPattern: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian)
                    case "BF16":
                        let h = base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian
                        values[i] = Float(bitPattern: UInt32(h) << 16)
                    default:
                        let h = base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian
                        values[i] = Float(Float16(bitPattern: h))
                    }
                }
            }
            tensors[name] = Tensor(shape: shape, values)
        }
        return (tensors, metadata)
    }
}
