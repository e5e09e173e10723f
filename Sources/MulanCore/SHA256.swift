internal import CMulanCrypto
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SHA-256 through OpenSSL's libcrypto (`EVP_DigestInit_ex(ctx, EVP_sha256())`, `EVP_DigestUpdate`,
/// `EVP_DigestFinal_ex`), which uses the CPU's SHA instructions where present. One owner frees the
/// context (`EVP_MD_CTX_free`). Tested against coreutils' `sha256sum`.
public final class SHA256Digest {
    private let context: OpaquePointer

    public init() {
        // EVP_MD_CTX_new fails only when out of memory.
        guard let ctx = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
        context = ctx
        EVP_DigestInit_ex(ctx, EVP_sha256(), nil)
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        EVP_DigestUpdate(context, base, bytes.count)
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The digest as 64 lowercase hex digits.
    /// Finalizes; the digest must not be updated afterwards.
    public func hex() -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        digest.withUnsafeMutableBufferPointer { _ = EVP_DigestFinal_ex(context, $0.baseAddress, &length) }
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for b in digest {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The hex digest of `bytes`.
    public static func hex(of bytes: [UInt8]) -> String {
        let d = SHA256Digest()
        d.update(bytes)
        return d.hex()
    }

    /// Hashes a file by streaming it through a 256 KiB buffer (small enough to stay in the CPU's
    /// cache between the read and the hash). Returns the digest and the byte count.
    public static func hex(ofFile path: String) throws(FileHashError) -> (digest: String, bytes: Int) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw FileHashError(path: path, errno: errno) }
        defer { close(fd) }
        let digest = SHA256Digest()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 64)
        defer { buffer.deallocate() }
        var total = 0
        while true {
            let n = read(fd, buffer.baseAddress, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileHashError(path: path, errno: errno)
            }
            if n == 0 { break }
            total += n
            digest.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        return (digest.hex(), total)
    }
}

public struct FileHashError: Error, CustomStringConvertible {
    public var path: String
    public var errno: Int32
    public var description: String { "cannot read \(path): \(String(cString: strerror(errno)))" }
}
