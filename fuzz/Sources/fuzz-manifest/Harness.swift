// Fuzzes the track manifest readers: ManifestReader (JSONL, CSV, TSV), the CSVReader under it, and
// the ByteReader line splitter (checked against a reference split, with a tiny chunk size so that
// every buffer refill and growth path runs).
import FuzzSupport
import MulanCore
import MulanFormats

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = FuzzInput(data, size)
    let ext = ["jsonl", "csv", "tsv"][Int(input.selector % 3)]
    let path = FuzzScratch.write(input.rest, name: "manifest." + ext)

    // 1. The manifest reader, to the end; every entry is a row or a rejected row with a line.
    if let reader = try? ManifestReader(path: path) {
        var count = 0
        var lastLine = 0
        while let entry = reader.next() {
            count += 1
            let line: Int
            switch entry {
            case .row(let row):
                precondition(!row.trackID.isEmpty, "a row without a track id")
                if let s = row.startSeconds, let e = row.endSeconds { precondition(s < e, "start ≥ end") }
                line = row.origin.line ?? 0
            case .rejected(let rejected):
                line = rejected.origin.line ?? 0
            }
            precondition(line > lastLine, "line numbers must increase (\(line) after \(lastLine))")
            lastLine = line
            precondition(count <= input.rest.count + 1, "more entries than bytes")
        }
    }

    // 2. ByteReader.nextLine with a small chunk and line cap, against a plain split on "\n".
    let chunk = 1 + Int(input.selector >> 2) % 7
    let maxLength = 1 + Int(input.selector >> 5) * 3
    if let lines = try? ByteReader(path: path, chunkSize: chunk) {
        var expected = input.bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
        if expected.last?.isEmpty == true { expected.removeLast() }
        var got: [(bytes: [UInt8], overlong: Bool)] = []
        while let line = try? lines.nextLine(maxLength: maxLength) { got.append(line) }
        precondition(got.count == expected.count, "\(got.count) lines read, \(expected.count) expected")
        for (g, e) in zip(got, expected) {
            // The reader keeps the first maxLength bytes, then drops one trailing CR.
            var want = Array(e.prefix(maxLength))
            if want.last == 0x0D { want.removeLast() }
            precondition(g.overlong == (e.count > maxLength), "overlong flag wrong")
            precondition(g.bytes == want, "line bytes differ")
        }
    }

    // 3. The CSV reader directly, with the options the text formats use.
    let delimiter: UInt8 = input.selector & 1 == 0 ? 0x2C : 0x09
    if let csv = try? CSVReader(path: path, delimiter: delimiter, skipInitialSpace: input.selector & 2 != 0,
                                comment: input.selector & 4 != 0 ? 0x23 : nil) {
        csv.maxFieldBytes = 64
        var lastLine = 0
        while let record = try? csv.next() {
            precondition(record.line > lastLine, "CSV line numbers must increase")
            precondition(record.raw.count <= 4096)
            lastLine = record.line
        }
    }
    return 0
}
