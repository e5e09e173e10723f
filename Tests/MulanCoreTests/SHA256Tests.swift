import Foundation
import MulanCore
import MulanTestSupport
import Testing

@Suite("SHA-256")
struct SHA256Tests {
    @Test(arguments: [0, 1, 55, 56, 63, 64, 65, 1000, 3_000_001])
    func matchesCoreutilsAtEveryLength(length: Int) throws {
        let dir = TempDir()
        let path = dir.file("blob")
        let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 7) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let reference = try TestProcess.run("sha256sum", [path]).stdoutText.split(separator: " ").first.map(String.init)
        #expect(try SHA256Digest.hex(ofFile: path).digest == reference)
        // Fed in uneven pieces, the digest is the same.
        let digest = SHA256Digest()
        var offset = 0
        var step = 1
        while offset < bytes.count {
            let n = min(step, bytes.count - offset)
            digest.update(Array(bytes[offset..<(offset + n)]))
            offset += n
            step = step * 3 % 97 + 1
        }
        #expect(digest.hex() == reference)
    }
}
