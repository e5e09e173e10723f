import Foundation
import MulanCore
import Testing

@Suite("Peak memory")
struct PeakMemoryTests {
    /// The high-water mark rises by what the process itself touches.
    @Test func highWaterMarkFollowsTouchedMemory() {
        let before = PeakMemory.residentBytes()
        #expect(before > 0)
        let size = 256 << 20
        let block = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
        defer { block.deallocate() }
        for page in stride(from: 0, to: size, by: 4096) { block.storeBytes(of: 1, toByteOffset: page, as: UInt8.self) }
        let after = PeakMemory.residentBytes()
        // At least what is resident now; never lower than before.
        #expect(after >= size && after >= before, "before \(before >> 20) MiB, after \(after >> 20) MiB")
    }
}
