#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a file as a stream of bytes in fixed-size chunks (bounded memory),
/// through POSIX `open`/`read`. One owner closes the descriptor.
public final class ByteReader {
    private let fd: Int32
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var eof = false
    public let path: String

    public init(path: String, chunkSize: Int = 1 << 16) throws(MulanError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            throw MulanError(.io, "cannot open \(path)", hint: "check that the file exists and is readable",
                             cause: SystemCallError.current())
        }
        self.fd = fd
        self.buffer = [UInt8](repeating: 0, count: chunkSize)
    }

    deinit { close(fd) }

    private func fill() throws(MulanError) -> Bool {
        if eof { return false }
        if start > 0 && start == end { start = 0; end = 0 }
        if end == buffer.count {
            if start > 0 {
                buffer.replaceSubrange(0..<(end - start), with: buffer[start..<end])
                end -= start
                start = 0
            } else {
                buffer.append(contentsOf: [UInt8](repeating: 0, count: buffer.count))
            }
        }
        let n = buffer.withUnsafeMutableBytes { raw in
            read(fd, raw.baseAddress! + end, raw.count - end)
        }
        if n < 0 {
            throw MulanError(.io, "read error in \(path)", cause: SystemCallError.current())
        }
        if n == 0 { eof = true; return false }
        end += n
        return true
    }

    /// The next byte, or nil at end of file.
    public func next() throws(MulanError) -> UInt8? {
        if start == end, try !fill() { return nil }
        let b = buffer[start]
        start += 1
        return b
    }

    /// The next line without its terminator ("\n" or "\r\n"), or nil at end of file.
    /// Lines longer than `maxLength` bytes are returned truncated with `overlong` set.
    public func nextLine(maxLength: Int = 64 << 20) throws(MulanError) -> (bytes: [UInt8], overlong: Bool)? {
        var line: [UInt8] = []
        var overlong = false
        var sawAny = false
        while true {
            if start == end, try !fill() { break }
            sawAny = true
            // Scan the buffered bytes for a newline.
            var i = start
            while i < end && buffer[i] != 0x0A { i += 1 }
            let room = maxLength - line.count
            let take = min(i - start, max(room, 0))
            if take > 0 { line.append(contentsOf: buffer[start..<(start + take)]) }
            if i - start > take { overlong = true }
            if i < end {
                start = i + 1
                if line.last == 0x0D { line.removeLast() }
                return (line, overlong)
            }
            start = end
        }
        if !sawAny { return nil }
        if line.last == 0x0D { line.removeLast() }
        return (line, overlong)
    }
}
