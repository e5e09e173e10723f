import Foundation
import MulanCore

/// Writes a POSIX ustar archive deterministically: fixed mode (0644), uid/gid 0, empty user and
/// group names, mtime 0, members in the order given, two zero blocks at the end, padded to a
/// 10240-byte record as GNU tar does. The bytes written are hashed (SHA-256) on the way.
public final class TarWriter {
    public static let blockSize = 512
    public static let recordSize = 10240
    private let handle: FileHandle
    public let path: String
    private let digest = DigestBox()
    /// Hashing runs on its own serial queue, overlapping with the writes (chunks stay in order).
    private let hashQueue = DispatchQueue(label: "mulan.tar.sha256")

    /// The running digest, touched only on `hashQueue`.
    private final class DigestBox: @unchecked Sendable {
        let sha = SHA256Digest()
    }

    private func hash(_ data: Data) {
        let box = digest
        hashQueue.async { data.withUnsafeBytes { box.sha.update($0) } }
    }
    public private(set) var bytesWritten = 0
    /// Bytes so far, written or buffered.
    public var size: Int { bytesWritten + buffer.count }
    private var buffer: [UInt8] = []

    public init(path: String) throws(MulanError) {
        // open(2) rather than FileManager.createFile, which writes through a hidden temporary
        // (".dat.nosync…") that a killed process leaves behind.
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw MulanError(.io, "cannot create \(path)", hint: "check that the folder exists and is writable",
                             cause: SystemCallError.current())
        }
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        self.path = path
        buffer.reserveCapacity(1 << 20)
    }

    /// Whether a member name fits ustar (100 bytes, or a 155-byte prefix and 100-byte name split at "/").
    public static func fits(_ name: String) -> Bool { split(name) != nil }

    static func split(_ name: String) -> (prefix: [UInt8], name: [UInt8])? {
        let bytes = Array(name.utf8)
        if bytes.count <= 100 { return ([], bytes) }
        guard bytes.count <= 256 else { return nil }
        // Split at a "/" past the first byte: an empty prefix field means "no prefix" to every
        // reader, so a split at a leading "/" would lose it.
        for i in stride(from: bytes.count - 1, through: 1, by: -1) where bytes[i] == 0x2F {
            let prefix = Array(bytes[0..<i]), rest = Array(bytes[(i + 1)...])
            if prefix.count <= 155 && rest.count <= 100 && !rest.isEmpty { return (prefix, rest) }
        }
        return nil
    }

    /// The 512-byte ustar header of a regular file.
    public static func header(name: String, size: Int) throws(MulanError) -> [UInt8] {
        guard let (prefix, short) = split(name) else {
            throw MulanError(.usage, "tar member name \(name) is too long for ustar")
        }
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ bytes: [UInt8], at offset: Int) { for (i, b) in bytes.enumerated() { h[offset + i] = b } }
        func octal(_ value: Int, width: Int) -> [UInt8] {
            let digits = String(value, radix: 8)
            return Array((String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits).utf8) + [0]
        }
        put(short, at: 0)
        put(octal(0o644, width: 8), at: 100)
        put(octal(0, width: 8), at: 108)
        put(octal(0, width: 8), at: 116)
        put(octal(size, width: 12), at: 124)
        put(octal(0, width: 12), at: 136)
        put(Array(repeating: 0x20, count: 8), at: 148)  // checksum placeholder: spaces
        h[156] = 0x30                                    // regular file
        put(Array("ustar".utf8) + [0], at: 257)
        put(Array("00".utf8), at: 263)
        put(octal(0, width: 8), at: 329)
        put(octal(0, width: 8), at: 337)
        put(prefix, at: 345)
        let sum = h.reduce(0) { $0 + Int($1) }
        put(octal(sum, width: 7) + [0x20], at: 148)
        return h
    }

    /// Appends one regular file.
    public func add(name: String, data: [UInt8]) throws(MulanError) {
        try add(name: name, data: Data(data))
    }

    /// Appends one regular file; large contents go straight to the file (hashed on the way)
    /// without being copied into the buffer.
    public func add(name: String, data: Data) throws(MulanError) {
        try write(try Self.header(name: name, size: data.count))
        if data.count >= 1 << 16 {
            try flush()
            hash(data)
            do {
                try handle.write(contentsOf: data)
            } catch {
                throw MulanError(.io, "cannot write \(path)", hint: "check free space", cause: error)
            }
            bytesWritten += data.count
        } else {
            buffer.append(contentsOf: data)
            if buffer.count >= 1 << 20 { try flush() }
        }
        let pad = (Self.blockSize - data.count % Self.blockSize) % Self.blockSize
        if pad > 0 { try write([UInt8](repeating: 0, count: pad)) }
    }

    private func write(_ bytes: [UInt8]) throws(MulanError) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 20 { try flush() }
    }

    private func flush() throws(MulanError) {
        guard !buffer.isEmpty else { return }
        hash(Data(buffer))
        do {
            try handle.write(contentsOf: buffer)
        } catch {
            throw MulanError(.io, "cannot write \(path)", hint: "check free space", cause: error)
        }
        bytesWritten += buffer.count
        buffer.removeAll(keepingCapacity: true)
    }

    /// Ends the archive and closes the file; returns its size and SHA-256. With `sync` false the
    /// data is not flushed to the disk here: the caller syncs it (`Durable.rename`) before it
    /// publishes the file.
    public func finish(sync: Bool = true) throws(MulanError) -> (bytes: Int, sha256: String) {
        try write([UInt8](repeating: 0, count: 2 * Self.blockSize))
        let total = bytesWritten + buffer.count
        let pad = (Self.recordSize - total % Self.recordSize) % Self.recordSize
        if pad > 0 { try write([UInt8](repeating: 0, count: pad)) }
        try flush()
        // On the disk before the caller renames it into place (Durable).
        if sync { try Durable.sync(descriptor: handle.fileDescriptor, path: path) }
        do {
            try handle.close()
        } catch {
            throw MulanError(.io, "cannot close \(path)", cause: error)
        }
        let box = digest
        return (bytesWritten, hashQueue.sync { box.sha.hex() })
    }
}

/// Reads the members of a ustar archive one by one, checking header checksums.
public final class TarReader {
    public struct Member: Sendable {
        public var name: String
        public var data: [UInt8]
        public var offset: Int
    }

    public struct ReadError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    private let data: Data
    private var offset = 0
    public let path: String

    public init(path: String) throws(MulanError) {
        self.path = path
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw MulanError(.io, "cannot read \(path)", cause: error)
        }
    }

    /// Reads an archive held in memory; `path` only names it in messages.
    public init(data: Data, path: String = "<memory>") {
        self.path = path
        self.data = data.startIndex == 0 ? data : Data([UInt8](data))  // offsets below count from 0
    }

    /// A member's header: its name and where its bytes lie in the archive.
    public struct Entry: Sendable {
        public var name: String
        /// Offset of the member's header; its data starts 512 bytes later.
        public var offset: Int
        public var dataOffset: Int { offset + 512 }
        public var size: Int
    }

    /// The next member, nil at the end-of-archive marker; throws on a damaged header or truncation.
    public func next() throws(ReadError) -> Member? {
        guard let entry = try nextEntry() else { return nil }
        return Member(name: entry.name, data: bytes(of: entry), offset: entry.offset)
    }

    /// The bytes of a member found by `nextEntry()`.
    public func bytes(of entry: Entry) -> [UInt8] {
        [UInt8](data[entry.dataOffset..<(entry.dataOffset + entry.size)])
    }

    /// The next member's header without copying its data (for scanning large shards).
    public func nextEntry() throws(ReadError) -> Entry? {
        guard offset + 512 <= data.count else {
            throw ReadError(message: "the archive ends at byte \(data.count) without its end-of-archive blocks (truncated)")
        }
        let header = [UInt8](data[offset..<(offset + 512)])
        if header.allSatisfy({ $0 == 0 }) { return nil }
        var check = header
        for i in 148..<156 { check[i] = 0x20 }
        let sum = check.reduce(0) { $0 + Int($1) }
        func field(_ range: Range<Int>) -> String {
            String(decoding: header[range].prefix { $0 != 0 }, as: UTF8.self)
        }
        let stored = Int(field(148..<156).trimmingCharacters(in: .whitespaces), radix: 8)
        guard stored == sum else {
            throw ReadError(message: "bad header checksum at byte \(offset) (stored \(stored.map(String.init) ?? "none"), computed \(sum))")
        }
        // (Int parses a sign; a negative size would put the member's end before its start.)
        guard let size = Int(field(124..<136).trimmingCharacters(in: .whitespaces), radix: 8), size >= 0 else {
            throw ReadError(message: "bad size field at byte \(offset)")
        }
        let prefix = field(345..<500)
        let name = prefix.isEmpty ? field(0..<100) : prefix + "/" + field(0..<100)
        let start = offset + 512
        guard start + size <= data.count else {
            throw ReadError(message: "member \(name) needs \(size) bytes but the archive ends first (truncated)")
        }
        let entry = Entry(name: name, offset: offset, size: size)
        offset = start + (size + 511) / 512 * 512
        return entry
    }
}
