import Foundation
import MulanCore
@testable import MulanShards
import MulanShardFormat
import Testing

/// Inputs found by the libFuzzer harness fuzz/Sources/fuzz-tar (scripts/fuzz.sh; docs/reliability.md),
/// each with the outcome the fix gives.
@Suite("FuzzRegression: ustar reading and writing")
struct TarFuzzRegressionTests {
    /// fuzz-tar crash-56cad1df…: a header (valid checksum) whose size field is "-0040". The reader
    /// took the size as −32 and trapped slicing the member's bytes ("Range requires lowerBound <=
    /// upperBound"); now it is a bad size field.
    static let negativeSize = Data(base64Encoded: [
        "AjAwMDAwMS5mbGMBYQIAAAAAAAAA//8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAACgAAAAAA",
        "AAAAAAAo9/8AAAAAAAAAAAAAAAAAAAAAAP//AAAAADAwMDA2NDUAMDAwMDAwMAAwMC0wMDQwAAAAAAAAAAAAAAAAAAAAAAAAADAy",
        "MDQyNwAgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAYwAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAJAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACMDAwMDA0",
        "LmZsYwFhAAAAAAAAAAAAAADtAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAADAwMDAwMDA1NIAw",
        "MDAwMDAwMDAwMAAwMDczMTMAIDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAKAAAAAAAAAAAAACj3/wAA",
        "AAAAAAAAAAAAAAAAAAAA//8AAAAAMDAwMDY0NQAwMDAwMDAwADAwLTAwMDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAD/",
        "/wD/////",
    ].joined())!

    @Test func negativeSizeFieldIsABadSizeField() throws {
        #expect(Self.negativeSize.count == 531)
        for headersOnly in [false, true] {
            let reader = TarReader(data: Self.negativeSize, path: "fuzz.tar")
            #expect {
                if headersOnly { _ = try reader.nextEntry() } else { _ = try reader.next() }
            } throws: { error in
                (error as? TarReader.ReadError)?.message == "bad size field at byte 0"
            }
        }
    }

    /// The same defect on a header TarWriter makes, with its size field rewritten as a negative number.
    @Test func negativeSizeInAnOtherwiseValidHeader() throws {
        var header = try TarWriter.header(name: "000001.json", size: 0)
        let size = Array("-000000001".utf8) + [0, 0]
        header.replaceSubrange(124..<136, with: size)
        header.replaceSubrange(148..<156, with: [UInt8](repeating: 0x20, count: 8))
        let sum = header.reduce(0) { $0 + Int($1) }
        let digits = Array(String(sum, radix: 8).utf8)
        header.replaceSubrange(148..<156, with: [UInt8](repeating: 0x30, count: 6 - digits.count) + digits + [0, 0x20])
        let archive = Data(header + [UInt8](repeating: 0, count: 1024))
        #expect(throws: TarReader.ReadError.self) { _ = try TarReader(data: archive).next() }
    }

    /// fuzz-tar crash-3966239f…: a 101-byte name starting with "/" and holding no other "/" was split
    /// at the leading "/" into an empty ustar prefix, which readers take for "no prefix": the member
    /// read back without its "/". Such a name does not fit ustar; a split needs a non-empty prefix.
    @Test func leadingSlashIsNotSplitIntoAnEmptyPrefix() throws {
        let name = "/" + String(repeating: "k", count: 100)
        #expect(!TarWriter.fits(name))
        let error = #expect(throws: MulanError.self) { _ = try TarWriter.header(name: name, size: 0) }
        #expect(error?.message.contains("too long for ustar") == true, "\(String(describing: error))")
        // A name with a real prefix still splits, and reads back whole.
        let long = "a/" + String(repeating: "k", count: 100)
        #expect(TarWriter.fits(long))
        let archive = Data(try TarWriter.header(name: long, size: 3) + [1, 2, 3] + [UInt8](repeating: 0, count: 509 + 1024))
        let reader = TarReader(data: archive)
        let member = try #require(try reader.next())
        #expect(member.name == long && member.data == [1, 2, 3])
        #expect(try reader.next() == nil)
    }
}
