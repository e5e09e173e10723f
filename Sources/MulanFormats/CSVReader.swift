import MulanCore

/// One CSV record: its fields, the line it starts on (1-based), its raw bytes (capped) and, when
/// it cannot be trusted, why.
public struct CSVRecord: Sendable {
    public var fields: [String]
    public var line: Int
    public var raw: [UInt8]
    public var error: String?
}

/// Streams RFC 4180 records from a file: quoted fields may hold delimiters, doubled quotes and
/// newlines; line numbers stay true across quoted newlines. Memory is bounded by one record
/// (a field over `maxFieldBytes` is cut and the record marked bad).
public final class CSVReader {
    public let path: String
    public let delimiter: UInt8
    /// Skip spaces after a delimiter (AudioSet's `a, b, "c,d"` style).
    public let skipInitialSpace: Bool
    /// Lines starting with this byte (outside quotes, at a record start) are comments.
    public let comment: UInt8?
    public var maxFieldBytes = 16 << 20
    static let maxRawLength = 4096

    private let reader: ByteReader
    private var lineNumber = 0

    public init(path: String, delimiter: UInt8 = 0x2C, skipInitialSpace: Bool = false,
                comment: UInt8? = nil) throws(MulanError) {
        self.path = path
        self.delimiter = delimiter
        self.skipInitialSpace = skipInitialSpace
        self.comment = comment
        self.reader = try ByteReader(path: path)
    }

    /// The next record, or nil at end of file. Blank lines come back as one empty field.
    public func next() throws(MulanError) -> CSVRecord? {
        var fields: [String] = []
        var field: [UInt8] = []
        var raw: [UInt8] = []
        var inQuotes = false
        var quotedField = false
        var afterClosingQuote = false
        var atFieldStart = true
        var sawAny = false
        var startLine = lineNumber + 1
        var error: String?
        var atRecordStart = true

        func finishField() {
            if let s = String(validating: field, as: UTF8.self) {
                fields.append(quotedField ? s : s.trimmingCharacters(in: " \t"))
            } else {
                fields.append(String(decoding: field, as: UTF8.self))
                error = error ?? "field \(fields.count) is not valid UTF-8"
            }
            field.removeAll(keepingCapacity: true)
            quotedField = false
            afterClosingQuote = false
            atFieldStart = true
        }

        while let byte = try reader.next() {
            if atRecordStart, let comment, byte == comment {
                // Skip the comment line.
                lineNumber += 1
                while let b = try reader.next(), b != 0x0A {}
                startLine = lineNumber + 1
                continue
            }
            atRecordStart = false
            sawAny = true
            if raw.count < Self.maxRawLength { raw.append(byte) }
            if byte == 0x0A { lineNumber += 1 }
            if field.count > maxFieldBytes {
                error = error ?? "a field is longer than \(maxFieldBytes) bytes"
                field.removeAll()
            }
            if inQuotes {
                if byte == 0x22 {
                    inQuotes = false
                    afterClosingQuote = true
                } else {
                    field.append(byte)
                }
                continue
            }
            if skipInitialSpace && atFieldStart && byte == 0x20 { continue }
            switch byte {
            case 0x22 where afterClosingQuote:  // "" inside a quoted field
                field.append(0x22)
                inQuotes = true
                afterClosingQuote = false
            case 0x22 where field.isEmpty && !quotedField:
                inQuotes = true
                quotedField = true
                atFieldStart = false
            case delimiter:
                finishField()
            case 0x0A:
                if field.last == 0x0D && !afterClosingQuote { field.removeLast() }
                finishField()
                if raw.last == 0x0A { raw.removeLast() }
                if raw.last == 0x0D { raw.removeLast() }
                return CSVRecord(fields: fields, line: startLine, raw: raw, error: error)
            case 0x0D where afterClosingQuote:
                break
            default:
                atFieldStart = false
                if afterClosingQuote {
                    error = error ?? "unexpected character after a closing quote"
                }
                field.append(byte)
            }
        }
        if !sawAny { return nil }
        lineNumber += 1
        if inQuotes { error = error ?? "a quoted field is not closed before the end of the file" }
        finishField()
        return CSVRecord(fields: fields, line: startLine, raw: raw, error: error)
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set.unicodeScalars)
        var scalars = Substring(self).unicodeScalars[...]
        while let f = scalars.first, chars.contains(f) { scalars.removeFirst() }
        while let l = scalars.last, chars.contains(l) { scalars.removeLast() }
        return String(String.UnicodeScalarView(scalars))
    }
}

extension CSVReader {
    /// Reads a small headed CSV that must be right as a whole (a lookup table such as FMA's
    /// genres.csv or a track map): each data row as {column: value} to `body`, with its line. The
    /// header must hold `required`; a row that cannot be read, or has another field count, stops the
    /// load: `fail(line, what)` makes the error, so the message can name the file's purpose and say
    /// what to pass. Blank lines are skipped; an empty file fails at line 1.
    public static func loadTable(path: String, required: [String],
                                 fail: (Int, String) -> MulanError,
                                 _ body: ([String: String], Int) throws(MulanError) -> Void) throws(MulanError) {
        let csv = try CSVReader(path: path)
        var header: [String]?
        while let record = try csv.next() {
            if record.fields.count == 1 && record.fields[0].isEmpty { continue }
            guard let h = header else {
                guard required.allSatisfy(record.fields.contains) else {
                    throw fail(record.line, "the header has no \(required.joined(separator: " and ")) columns")
                }
                header = record.fields
                continue
            }
            if let error = record.error { throw fail(record.line, error) }
            guard record.fields.count == h.count else {
                throw fail(record.line, "expected \(h.count) fields, found \(record.fields.count)")
            }
            try body(Dictionary(zip(h, record.fields), uniquingKeysWith: { first, _ in first }), record.line)
        }
        if header == nil { throw fail(1, "the file is empty") }
    }
}
