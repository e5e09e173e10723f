import Foundation
import Testing
@testable import MulanCore

/// The underlying error stays an error a caller can inspect, and reads as it did as text.
@Suite struct MulanErrorTests {
    @Test func systemCallCauseKeepsItsErrno() throws {
        let path = NSTemporaryDirectory() + "mulan-no-such-file-\(getpid())"
        do {
            _ = try ByteReader(path: path)
            Issue.record("opening a missing file succeeded")
        } catch {
            let system = try #require(error.cause as? SystemCallError)
            #expect(system.errno == ENOENT)
            #expect(error.description == "cannot open \(path) (No such file or directory). check that the file exists and is readable")
        }
    }

    @Test func libraryAndFoundationCausesReadAsTheirMessages() {
        let sqlite = MulanError(.catalog, "SQL failed", cause: LibraryError("SQLite", code: 13, "database or disk is full"))
        #expect(sqlite.description == "SQL failed (database or disk is full)")
        #expect((sqlite.cause as? LibraryError)?.code == 13)
        let cocoa = CocoaError(.fileNoSuchFile)
        let io = MulanError(.io, "cannot read x", cause: cocoa)
        #expect(io.description == "cannot read x (\(cocoa.localizedDescription))")
        #expect((io.cause as? CocoaError)?.code == .fileNoSuchFile)
    }

    @Test func aMulanErrorCauseIsKeptWhole() {
        let inner = MulanError(.media, "cannot decode a.ogg", location: SourceLocation(file: "a.ogg"))
        let outer = MulanError(.data, "cannot read the shard", cause: inner)
        #expect((outer.cause as? MulanError)?.location?.file == "a.ogg")
        #expect(outer.description == "cannot read the shard (a.ogg: cannot decode a.ogg)")
    }
}
