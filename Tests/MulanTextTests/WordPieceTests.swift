import Foundation
import MulanCore
@testable import MulanText
import MulanTestSupport
import Testing

@Suite("BERT WordPiece tokenization")
struct WordPieceTests {
    static let tiny = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "aff", "a", "b", "##b",
                       "!", ",", "hello", "cafe", "naive", "x", "##x", "中", "ab"]

    func ids(_ text: String, special: Bool = false) throws -> [String] {
        let t = BertTokenizer(vocabulary: try WordPieceVocabulary(tokens: Self.tiny))
        return t.encode(text, special: special).map { Self.tiny[Int($0)] }
    }

    @Test func greedyLongestMatchWithContinuations() throws {
        #expect(try ids("unaffable") == ["un", "##aff", "##able"])
        #expect(try ids("UnAffAble!") == ["un", "##aff", "##able", "!"])
        #expect(try ids("abb") == ["ab", "##b"])
        #expect(try ids("abc") == ["[UNK]"])            // a part no piece matches: the whole word
        #expect(try ids("hello,world") == ["hello", ",", "[UNK]"])
        #expect(try ids("", special: true) == ["[CLS]", "[SEP]"])
        #expect(try ids("  \t ") == [])
    }

    @Test func normalizationSteps() throws {
        #expect(try ids("Café NAÏVE") == ["cafe", "naive"])               // accents stripped, lowercased
        #expect(try ids("a\u{0}b\u{200B}b\u{7}") == ["ab", "##b"])         // NUL, ZWSP, BEL removed
        #expect(try ids("a\u{3000}b") == ["a", "b"])                       // ideographic space splits
        #expect(try ids("中中") == ["中", "中"])                             // CJK ideographs stand alone
        // U+2E4F (Unicode 11) is punctuation today, but not in the reference's Unicode 8.0 tables:
        // it stays inside the word, which then has no matching piece.
        #expect(try ids("x\u{2E4F}x") == ["[UNK]"])
        #expect(try ids("x\u{2E2E}x") == ["x", "[UNK]", "x"])  // an old punctuation mark splits
    }

    @Test func wordLengthLimitCountsScalars() throws {
        #expect(try ids(String(repeating: "x", count: 100)).count == 100)
        #expect(try ids(String(repeating: "x", count: 101)) == ["[UNK]"])
        // The limit counts Unicode scalars, not bytes: 100 two-byte letters are within it.
        let t = BertTokenizer(vocabulary: try WordPieceVocabulary(tokens: Self.tiny + ["д", "##д"]))
        #expect(t.encode(String(repeating: "д", count: 100)).count == 100)
        #expect(t.encode(String(repeating: "д", count: 101)) == [1])
    }

    @Test func vocabularyWithoutUNKIsRefused() {
        #expect(throws: MulanError.self) { try WordPieceVocabulary(tokens: ["a", "b"]) }
    }

    /// Every id of a million generated lines equals Hugging Face tokenizers' (the reference).
    @Test(.timeLimit(.minutes(20)))
    func millionLinesMatchHuggingFaceTokenizers() throws {
        let dir = TempDir("wordpiece")
        let vocab = try TestPython.bertVocabulary()
        let corpus = dir.file("corpus.txt")
        let reference = dir.file("reference.txt")
        try TestPython.tool("wordpiece_reference.py", [vocab, corpus, reference, "1000000", "20261125"])
        let ours = dir.file("ours.txt")
        let r = try TestProcess.run("/bin/sh", ["-c", "\"$0\" tokenize --quiet --vocab \"$1\" < \"$2\" > \"$3\"",
                                                TestPaths.executable("mulan-filter"), vocab, corpus, ours])
        #expect(r.status == 0, "\(r.stderr)")
        let expected = try String(contentsOfFile: reference, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        let got = try String(contentsOfFile: ours, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(expected.count == 1_000_001)  // a million lines and the final newline
        #expect(got.count == expected.count)
        var mismatches = 0
        var shown = 0
        let lines = try String(contentsOfFile: corpus, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        for i in 0..<min(got.count, expected.count) where got[i] != expected[i] {
            mismatches += 1
            if shown < 5 {
                shown += 1
                Issue.record("line \(i + 1): \(lines[i].unicodeScalars.map { String($0.value, radix: 16) }.prefix(40)) → ours [\(got[i])] reference [\(expected[i])]")
            }
        }
        #expect(mismatches == 0)
    }
}
