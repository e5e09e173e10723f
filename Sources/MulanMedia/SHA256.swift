internal import CFFmpeg
#if canImport(Glibc)
import Glibc
#endif

/// SHA-256 through libavutil's `av_sha` (`av_sha_init(ctx, 256)`, `av_sha_update`, `av_sha_final`).
public struct SHA256: ~Copyable {
    private let context: OpaquePointer

    public init() {
        // av_sha_alloc returns NULL only when out of memory.
        guard let ctx = av_sha_alloc() else { fatalError("av_sha_alloc: out of memory") }
        context = ctx
        av_sha_init(ctx, 256)
    }

    deinit { av_free(UnsafeMutableRawPointer(context)) }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        av_sha_update(context, base.assumingMemoryBound(to: UInt8.self), bytes.count)
    }

    public consuming func finalizeHex() -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        digest.withUnsafeMutableBufferPointer { av_sha_final(context, $0.baseAddress) }
        return digest.map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    public static func hex(of bytes: [UInt8]) -> String {
        var sha = SHA256()
        bytes.withUnsafeBytes { sha.update($0) }
        return sha.finalizeHex()
    }

    /// Hashes a file by streaming it through a 1 MiB buffer. Returns the digest and the byte count.
    public static func hex(ofFile path: String) throws(FileHashError) -> (digest: String, bytes: Int) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw FileHashError(path: path, errno: errno) }
        defer { close(fd) }
        var sha = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var total = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileHashError(path: path, errno: errno)
            }
            if n == 0 { break }
            total += n
            buffer.withUnsafeBytes { sha.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return (sha.finalizeHex(), total)
    }
}

public struct FileHashError: Error, CustomStringConvertible {
    public var path: String
    public var errno: Int32
    public var description: String { "cannot read \(path): \(String(cString: strerror(errno)))" }
}
