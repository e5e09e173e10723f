import Foundation
import MulanCore
import MulanFormats
import MulanTestSupport
import Testing

@Suite("TOML parsing agrees with Python's tomllib")
struct TOMLTests {
    static let documents: [String] = [
        """
        # comment
        title = "mulan" # trailing
        count = 1_000
        hex = 0xDEAD_beef
        oct = 0o755
        bin = 0b1101
        neg = -17
        pi = 3.14159
        exp = 6.02e23
        small = -1E-3
        big = inf
        nope = -inf
        yes = true
        no = false
        """,
        """
        [tags]
        stoplist = ["favorite", "seen live", 'check out',]
        min_frequency = 2
        [tags.synonyms]
        "hip hop" = ["hip-hop", "hiphop"]
        rnb = ["r&b", "r and b"]
        [descriptions]
        length = { min = 3, max = 128 }
        patterns = [
          '^\\d{1,2}:\\d{2}',   # timestamps
          "https?://\\\\S+",
        ]
        """,
        """
        a.b.c = 1
        a.b.d = "x"
        "quoted key".v = 'literal \\ backslash'
        site."google.com" = true
        str1 = "tab\\there \\u00e9 \\U0001F3B5 \\"q\\""
        ml = \"\"\"
        Roses are red
        Violets are blue\"\"\"
        ml2 = \"\"\"\\
            The quick brown \\
            fox.\"\"\"
        lit = '''
        raw \\n text
        '''
        arr = [[1, 2], ["a", 'b'], []]
        inline = { x = 1, y = { z = "deep" } }
        """,
        """
        [[playlists.generic]]
        title = "my mix"
        [[playlists.generic]]
        title = "favorites"
        pattern = "^\\\\d+$"
        [playlists]
        min_tracks = 2
        """,
        // Arrays of tables whose elements have sub-tables (each element its own).
        "[[f]]\nn = 1\n[f.p]\nx = 1\n[[f]]\nn = 2\n[f.p]\nx = 2\n",
        "[[f]]\n[f.p]\n[[f.p.q]]\ny = 1\n[[f]]\n[f.p]\n[[f.p.q]]\ny = 2\n",
        // Sub-tables of a table defined by dotted keys.
        "[fruit]\napple.color = \"red\"\n[fruit.apple.texture]\nsmooth = true\n",
        // Errors: both must refuse.
        "a = {x = 1}\n[a]\ny = 2\n",
        "a = {x = 1}\n[a.b]\ny = 2\n",
        "a = {x = 1}\na.y = 2\n",
        "a = [1, 2]\n[[a]]\n",
        "a = [{x = 1}]\n[[a]]\nx = 2\n",
        "a.b = 1\n[a]\nc = 2\n",
        "[[f]]\n[f.p]\n[f.p]\n",
        "a = 1\na = 2\n",
        "[t]\n[t]\n",
        "a = \"unterminated\n",
        "a = 01\n",
        "a = 1979-05-27\n",
        "a = [1, 2\n",
        "a = { b = 1\n",
        "= 1\n",
        "a = 1 b = 2\n",
    ]

    @Test func documentsMatchReference() throws {
        let dir = TempDir("toml")
        var paths: [String] = []
        for (i, doc) in Self.documents.enumerated() {
            paths.append(try dir.write("d\(i).toml", doc))
        }
        let reference = try TestPython.tool("toml_reference.py", paths).stdoutText.split(separator: "\n").map(String.init)
        #expect(reference.count == paths.count)
        for (i, doc) in Self.documents.enumerated() where i < reference.count {
            let ours: String
            do {
                ours = TOMLValue.table(try TOMLParser.parse(doc, source: "d\(i).toml")).json
            } catch {
                #expect(reference[i] == "error" || reference[i] == "date",
                        "document \(i): we refused (\(error)) but tomllib accepted it")
                continue
            }
            if reference[i] == "error" || reference[i] == "date" {
                Issue.record("document \(i): tomllib refused it but we accepted \(ours)")
                continue
            }
            let a = try JSONSerialization.jsonObject(with: Data(ours.utf8)) as? NSDictionary
            let b = try JSONSerialization.jsonObject(with: Data(reference[i].utf8)) as? NSDictionary
            #expect(a == b, "document \(i): ours \(ours) reference \(reference[i])")
        }
    }

    @Test func errorsNameTheLine() {
        do {
            _ = try TOMLParser.parse("a = 1\n\nb = [1,\n 2\nc = 3\n", source: "f.toml")
            Issue.record("expected an error")
        } catch {
            #expect(error.location?.file == "f.toml")
            #expect((error.location?.line ?? 0) >= 4)
        }
    }
}
