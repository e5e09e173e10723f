import MulanText
import Testing

@Suite("ICU normalization")
struct NormalizerTests {
    @Test(arguments: [
        ("e\u{301}", UnicodeNormalizer.Form.nfc, "\u{e9}"),
        ("\u{e9}", .nfd, "e\u{301}"),
        ("\u{fb01}ne", .nfkc, "fine"),
        ("①", .nfkc, "1"),
        ("Straße ＡＢＣ", .nfkcCasefold, "strasse abc"),
        ("", .nfc, ""),
    ])
    func forms(_ input: String, _ form: UnicodeNormalizer.Form, _ expected: String) throws {
        #expect(try UnicodeNormalizer.normalize(input, form: form).unicodeScalars.elementsEqual(expected.unicodeScalars))
    }

    @Test func longTextGrowsBuffer() throws {
        // NFD of precomposed Hangul triples in length: the retry path must handle it.
        let text = String(repeating: "\u{AC00}", count: 5000)
        #expect(try UnicodeNormalizer.normalize(text, form: .nfd).unicodeScalars.count == 10000)
    }

    @Test func reportsVersion() {
        #expect(UnicodeNormalizer.icuVersion.split(separator: ".").count == 2)
    }
}
