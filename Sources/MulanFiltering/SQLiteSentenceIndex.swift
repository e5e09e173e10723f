import Foundation
import MulanCatalog
import MulanCore
import MulanText

/// Exact and near-duplicate sentence lookups in the catalog's temporary sentence index tables
/// (`SentenceIndexTables`: on disk, so memory stays bounded however many sentences a source has);
/// the similarity of MinHash signatures is computed here.
final class SQLiteSentenceIndex: SentenceIndex {
    let tables: SentenceIndexTables

    init(store: TextFilterStore) throws(MulanError) {
        tables = try store.sentenceIndex()
    }

    func seenExact(_ hash: UInt64) throws -> Bool {
        try tables.recordExact(hash)
    }

    func nearDuplicate(signature: [UInt64], bands: [UInt64], threshold: Double) throws -> Bool {
        var candidates = Set<Int>()
        for band in bands {
            for id in try tables.signatureIDs(band: band) { candidates.insert(id) }
        }
        for id in candidates.sorted() {
            guard let text = try tables.signature(id: id) else { continue }
            if MinHasher.similarity(signature, Self.numbers(text)) >= threshold { return true }
        }
        try tables.add(signature: Self.hex(signature), bands: bands)
        return false
    }

    /// Numbers as space-separated lowercase hex, the signatures' stored form.
    static func hex(_ values: [UInt64]) -> String { values.map { String($0, radix: 16) }.joined(separator: " ") }

    /// The numbers of `hex(_:)`, parsed straight from the UTF-8 bytes (this runs for every
    /// signature that shares a band with a new sentence, so it must be cheap).
    static func numbers(_ text: String) -> [UInt64] {
        var out: [UInt64] = []
        out.reserveCapacity(64)
        var value: UInt64 = 0
        var digits = 0
        for b in text.utf8 {
            let nibble: UInt8
            switch b {
            case 0x30...0x39: nibble = b - 0x30
            case 0x61...0x66: nibble = b - 0x61 + 10
            case 0x41...0x46: nibble = b - 0x41 + 10
            default:
                if digits > 0 { out.append(value) }
                value = 0
                digits = 0
                continue
            }
            value = value << 4 | UInt64(nibble)
            digits += 1
        }
        if digits > 0 { out.append(value) }
        return out
    }
}
