import Foundation
@testable import MulanCore
@testable import MulanFormats
import MulanTestSupport
import Testing

@Suite("Manifest reading")
struct ManifestReaderTests {
    func read(_ name: String, _ content: String) throws -> (rows: [ManifestRow], rejects: [RejectedRow], dir: TempDir) {
        let dir = TempDir()
        let path = try dir.write(name, content)
        let reader = try ManifestReader(path: path)
        var rows: [ManifestRow] = []
        var rejects: [RejectedRow] = []
        while let entry = reader.next() {
            switch entry {
            case .row(let r): rows.append(r)
            case .rejected(let r): rejects.append(r)
            }
        }
        #expect(reader.readError == nil)
        return (rows, rejects, dir)
    }

    @Test func csvWithQuotesNewlinesAndRelativePaths() throws {
        let csv = "track_id,path,start_s,end_s,split\n"
            + "a,music/a.mp3,,,train\n"
            + "\"b,1\",\"/abs/b c.ogg\",10,20,\n"
            + "\"c\",\"odd \"\"name\"\"\nwith newline.wav\",,,\n"
            + "d,d.wav,5,3,\n"
            + "e,e.wav\n"
            + ",f.wav,,,\n"
            + "g,g.wav,x,,\n"
        let (rows, rejects, dir) = try read("m.csv", csv)
        #expect(rows.map(\.trackID) == ["a", "b,1", "c"])
        #expect(rows[0].path == dir.path + "/music/a.mp3")
        #expect(rows[0].split == "train")
        #expect(rows[0].origin.line == 2)
        #expect(rows[1].path == "/abs/b c.ogg")
        #expect(rows[1].startSeconds == 10 && rows[1].endSeconds == 20)
        #expect(rows[2].path == dir.path + "/odd \"name\"\nwith newline.wav")
        #expect(rows[2].origin.line == 4)
        // Rows after the quoted newline keep their true line numbers.
        #expect(rejects.map { $0.origin.line ?? 0 } == [6, 7, 8, 9])
        #expect(rejects.allSatisfy { $0.reason == .invalidRow })
        #expect(rejects[0].detail.contains("end_s"))
        #expect(rejects[1].detail.contains("expected 5 fields"))
        #expect(rejects[2].detail.contains("track_id"))
        #expect(rejects[3].detail.contains("start_s"))
    }

    @Test func csvUnclosedQuoteAndStrayQuote() throws {
        let (rows, rejects, _) = try read("m.csv", "track_id,path\na,a\"b.wav\nb,\"unterminated.wav\n")
        // A quote inside an unquoted field is kept literally (as Python's csv module does).
        #expect(rows.map(\.trackID) == ["a"])
        #expect(rows.first?.path.hasSuffix("a\"b.wav") == true)
        #expect(rejects.count == 1)
        #expect(rejects.first?.detail.contains("not closed") == true)
    }

    @Test func csvInvalidUTF8IsRejectedWithLine() throws {
        let dir = TempDir()
        let path = dir.file("m.csv")
        var bytes = Array("track_id,path\nok,a.wav\n".utf8)
        bytes += [0x62, 0xFF, 0xFE, 0x2C] + Array("b.wav\n".utf8)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let reader = try ManifestReader(path: path)
        let entries = Array(AnySequence { reader })
        #expect(entries.count == 2)
        if case .rejected(let r) = entries[1] {
            #expect(r.origin.line == 3)
            #expect(r.detail.contains("UTF-8"))
        } else {
            Issue.record("expected a rejected row")
        }
    }

    @Test func csvHeaderMustNameColumns() throws {
        let dir = TempDir()
        let path = try dir.write("m.csv", "id,file\na,b\n")
        let reader = try ManifestReader(path: path)
        #expect(reader.next() == nil)
        #expect(reader.readError?.message.contains("track_id") == true)
    }

    @Test func jsonlRows() throws {
        let jsonl = """
        {"track_id": "a", "path": "a.flac", "start_s": 1.5, "end_s": "4", "split": "valid", "extra": [1]}

        {"track_id": "b", "path": "/x/b.wav"}
        not json
        [1, 2]
        {"track_id": 7, "path": "c.wav"}
        {"track_id": "d", "path": "d.wav", "start_s": true}
        {"track_id": "e"}
        {"track_id": "f", "path": "f.wav", "start_s": -1}
        """
        let (rows, rejects, dir) = try read("m.jsonl", jsonl)
        #expect(rows.map(\.trackID) == ["a", "b"])
        #expect(rows[0].path == dir.path + "/a.flac")
        #expect(rows[0].startSeconds == 1.5 && rows[0].endSeconds == 4)
        #expect(rows[0].split == "valid")
        #expect(rows[1].origin.line == 3)
        #expect(rejects.map { $0.origin.line ?? 0 } == [4, 5, 6, 7, 8, 9])
        #expect(rejects[2].detail.contains("track_id must be a string"))
        #expect(rejects[3].detail.contains("start_s must be a number"))
        #expect(rejects[4].detail.contains("path"))
    }

    @Test func unknownExtensionNeedsFormat() throws {
        let dir = TempDir()
        let path = try dir.write("m.txt", "x")
        #expect(throws: MulanError.self) { try ManifestReader(path: path) }
        #expect(try ManifestReader(path: path, format: .jsonl).format == .jsonl)
    }
}

@Suite("Directory scanning")
struct DirectoryScanTests {
    @Test(arguments: [
        ("*.mp3", "a/b/song.mp3", true),
        ("*.mp3", "song.ogg", false),
        ("**/*.ogg", "x.ogg", true),
        ("**/*.ogg", "a/b/x.ogg", true),
        ("a/*.ogg", "a/b/x.ogg", false),
        ("a/**/x.ogg", "a/b/c/x.ogg", true),
        ("take?.wav", "take1.wav", true),
    ])
    func globMatching(_ pattern: String, _ path: String, _ expected: Bool) {
        #expect(DirectoryScan.glob(pattern, matches: path) == expected)
    }

    @Test func scanListsMatchingFilesSortedWithRelativeIDs() throws {
        let dir = TempDir()
        try dir.write("b/two.ogg", "x")
        try dir.write("a/one.mp3", "x")
        try dir.write("a/notes.txt", "x")
        try dir.write("three.wav", "x")
        symlink(dir.path + "/a", dir.path + "/a/loop")  // a folder link loop must not hang the scan
        let entries = try DirectoryScan(root: dir.path, globs: []).rows()
        let ids = entries.compactMap { if case .row(let r) = $0 { r.trackID } else { nil } }
        #expect(ids == ["a/one.mp3", "b/two.ogg", "three.wav"])
    }
}
