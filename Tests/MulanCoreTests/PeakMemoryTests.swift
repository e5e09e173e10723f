import Foundation
import MulanCore
import Testing

@Suite("Peak memory")
struct PeakMemoryTests {
    /// The high-water mark rises by what the process itself touches. The mark is first reset to the
    /// current resident size (`/proc/self/clear_refs`, Linux ≥ 4.0), so a peak left by an earlier
    /// test in this process cannot make the check pass by itself.
    @Test func highWaterMarkFollowsTouchedMemory() throws {
        let reset = open("/proc/self/clear_refs", O_WRONLY)
        try #require(reset >= 0, "cannot open /proc/self/clear_refs to reset the peak: \(String(cString: strerror(errno)))")
        let wrote = write(reset, "5", 1)
        close(reset)
        try #require(wrote == 1, "cannot reset the peak resident size (clear_refs 5): \(String(cString: strerror(errno)))")
        let before = PeakMemory.residentBytes()
        #expect(before > 0)
        let size = 256 << 20
        let block = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
        defer { block.deallocate() }
        for page in stride(from: 0, to: size, by: 4096) { block.storeBytes(of: 1, toByteOffset: page, as: UInt8.self) }
        let after = PeakMemory.residentBytes()
        // The touched pages are resident on top of what was before (less what the kernel may have
        // reclaimed meanwhile: a quarter at most, on a machine under memory pressure).
        #expect(after >= before + size * 3 / 4, "before \(before >> 20) MiB, after \(after >> 20) MiB")
    }
}
