import Foundation
import MulanCore
@testable import MulanShards
import MulanShardFormat
import MulanTestSupport
import Testing

@Suite("ustar writing and reading")
struct TarTests {
    @Test func gnuTarReadsWhatWeWrite() throws {
        let dir = TempDir()
        let longName = String(repeating: "d", count: 120) + "/" + String(repeating: "f", count: 90) + ".json"
        let members: [(String, [UInt8])] = [
            ("a.flac", (0..<1000).map { UInt8($0 % 251) }),
            ("a.json", Array("{\"x\": 1}".utf8)),
            ("empty.json", []),
            ("exact.bin", [UInt8](repeating: 7, count: 512)),
            (longName, Array("long".utf8)),
        ]
        let path = dir.file("t.tar")
        let writer = try TarWriter(path: path)
        for (name, data) in members { try writer.add(name: name, data: data) }
        let (bytes, sha) = try writer.finish()
        #expect(bytes % 10240 == 0)
        #expect(try SHA256Digest.hex(ofFile: path).digest == sha)
        let listing = try TestProcess.run("tar", ["-tvf", path]).stdoutText.split(separator: "\n")
        #expect(listing.count == members.count)
        #expect(listing.allSatisfy { $0.hasPrefix("-rw-r--r-- 0/0") && $0.contains("1970-01-01 00:00") })
        let out = dir.file("x")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        #expect(try TestProcess.run("tar", ["-xf", path, "-C", out]).status == 0)
        for (name, data) in members {
            #expect(FileManager.default.contents(atPath: out + "/" + name).map { [UInt8]($0) } == data, "\(name)")
        }
        // Our reader sees the same members.
        let reader = try TarReader(path: path)
        var names: [String] = []
        while let m = try reader.next() { names.append(m.name) }
        #expect(names == members.map(\.0))
        #expect(!TarWriter.fits(String(repeating: "x", count: 101)))
    }

    @Test func readerRejectsDamage() throws {
        let dir = TempDir()
        let path = dir.file("t.tar")
        let writer = try TarWriter(path: path)
        try writer.add(name: "a.bin", data: [UInt8](repeating: 1, count: 3000))
        _ = try writer.finish()
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[10] ^= 0xFF  // inside the first header's name
        try bytes.write(to: URL(fileURLWithPath: dir.file("bad.tar")))
        #expect(throws: TarReader.ReadError.self) { _ = try TarReader(path: dir.file("bad.tar")).next() }
        try Data(try Data(contentsOf: URL(fileURLWithPath: path)).prefix(1500)).write(to: URL(fileURLWithPath: dir.file("cut.tar")))
        #expect(throws: TarReader.ReadError.self) { _ = try TarReader(path: dir.file("cut.tar")).next() }
    }
}
