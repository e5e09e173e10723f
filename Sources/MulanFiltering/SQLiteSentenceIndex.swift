import Foundation
import MulanCatalog
import MulanCore
import MulanText

/// Exact and near-duplicate sentence lookups in temporary SQLite tables (on disk, so memory stays
/// bounded however many sentences a source has).
final class SQLiteSentenceIndex: SentenceIndex {
    let db: Database

    init(database: Database) throws(MulanError) {
        db = database
        try db.execute("""
            CREATE TEMP TABLE IF NOT EXISTS seen_sentences (hash INTEGER PRIMARY KEY);
            CREATE TEMP TABLE IF NOT EXISTS sentence_signatures (id INTEGER PRIMARY KEY, signature TEXT NOT NULL);
            CREATE TEMP TABLE IF NOT EXISTS sentence_bands (band INTEGER NOT NULL, signature_id INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS temp.sentence_bands_band ON sentence_bands(band);
            DELETE FROM seen_sentences; DELETE FROM sentence_signatures; DELETE FROM sentence_bands;
            """)
    }

    func seenExact(_ hash: UInt64) throws -> Bool {
        try db.run("INSERT OR IGNORE INTO seen_sentences (hash) VALUES (?)", [Int64(bitPattern: hash)])
        return db.changes == 0
    }

    func nearDuplicate(signature: [UInt64], bands: [UInt64], threshold: Double) throws -> Bool {
        var candidates = Set<Int>()
        for band in bands {
            for row in try db.rows("SELECT signature_id FROM sentence_bands WHERE band = ?", [Int64(bitPattern: band)]) {
                if let id = row[0].int { candidates.insert(id) }
            }
        }
        for id in candidates.sorted() {
            guard let text = try db.row("SELECT signature FROM sentence_signatures WHERE id = ?", [id])?[0].string else { continue }
            if MinHasher.similarity(signature, Self.numbers(text)) >= threshold { return true }
        }
        try db.run("INSERT INTO sentence_signatures (signature) VALUES (?)", [Self.hex(signature)])
        let id = db.lastInsertRowID
        for band in bands {
            try db.run("INSERT INTO sentence_bands (band, signature_id) VALUES (?, ?)", [Int64(bitPattern: band), id])
        }
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
