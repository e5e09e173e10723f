#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import MulanCore

/// Streams lines from a file descriptor through a `BertTokenizer`, writing each line's ids
/// space-separated on one output line. Memory stays bounded: a line longer than `maxLineBytes`
/// is tokenized from its first `maxLineBytes` bytes and reported.
public struct LineTokenizer {
    public var tokenizer: BertTokenizer
    public var special: Bool
    public var maxLineBytes = 1 << 20

    public init(tokenizer: BertTokenizer, special: Bool) {
        self.tokenizer = tokenizer
        self.special = special
    }

    public struct Summary: Sendable {
        public var lines = 0
        public var tokens = 0
        public var bytes = 0
        public var overlongLines: [Int] = []
    }

    /// Reads `input` to its end, writing to `output`. Throws on read or write errors.
    public func run(input: Int32, output: Int32) throws(MulanError) -> Summary {
        var summary = Summary()
        var inBuffer = [UInt8](repeating: 0, count: 1 << 20)
        var line: [UInt8] = []
        var lineOverlong = false
        var out: [UInt8] = []
        out.reserveCapacity(1 << 17)
        var ids: [Int32] = []
        let digits: [UInt8] = Array("0123456789".utf8)

        func flush() throws(MulanError) {
            var offset = 0
            while offset < out.count {
                let n = out.withUnsafeBytes { write(output, $0.baseAddress! + offset, $0.count - offset) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw MulanError(.io, "cannot write the token ids", cause: SystemCallError.current())
                }
                offset += n
            }
            out.removeAll(keepingCapacity: true)
        }

        func emit() throws(MulanError) {
            summary.lines += 1
            if lineOverlong { summary.overlongLines.append(summary.lines) }
            ids.removeAll(keepingCapacity: true)
            line.withUnsafeBufferPointer { tokenizer.encode(utf8: $0, special: special, into: &ids) }
            summary.tokens += ids.count
            var first = true
            for id in ids {
                if !first { out.append(0x20) }
                first = false
                var v = Int(id)
                if v == 0 { out.append(0x30); continue }
                var tmp: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
                var k = 0
                withUnsafeMutableBytes(of: &tmp) { t in
                    while v > 0 { t[k] = digits[v % 10]; v /= 10; k += 1 }
                    while k > 0 { k -= 1; out.append(t[k]) }
                }
            }
            out.append(0x0A)
            line.removeAll(keepingCapacity: true)
            lineOverlong = false
            if out.count >= 1 << 16 { try flush() }
        }

        var sawData = false
        while true {
            let n = inBuffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw MulanError(.io, "cannot read standard input", cause: SystemCallError.current())
            }
            if n == 0 { break }
            sawData = true
            summary.bytes += n
            var start = 0
            try inBuffer.withUnsafeBufferPointer { (buf: UnsafeBufferPointer<UInt8>) throws(MulanError) in
                var i = 0
                while i < n {
                    if buf[i] == 0x0A {
                        appendCapped(&line, buf[start..<i], overlong: &lineOverlong)
                        try emit()
                        start = i + 1
                    }
                    i += 1
                }
                appendCapped(&line, buf[start..<n], overlong: &lineOverlong)
            }
        }
        if sawData && (!line.isEmpty || lineOverlong) { try emit() }
        try flush()
        return summary
    }

    private func appendCapped(_ line: inout [UInt8], _ bytes: Slice<UnsafeBufferPointer<UInt8>>, overlong: inout Bool) {
        let room = maxLineBytes - line.count
        if bytes.count <= room {
            line.append(contentsOf: bytes)
        } else {
            if room > 0 { line.append(contentsOf: bytes.prefix(room)) }
            overlong = true
        }
    }
}
