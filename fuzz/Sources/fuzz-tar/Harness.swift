// Fuzzes the ustar reader that reads WebDataset shards (mulan-shard verify, the trainer's shard
// stream): members one by one, headers only, and a round trip through TarWriter's header.
import Foundation
import FuzzSupport
import MulanShardFormat

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = FuzzInput(data, size)
    // Selector bit 1: write valid checksums into the headers first, so that mutations reach the
    // size and name fields instead of dying at the checksum test.
    let bytes = input.selector & 2 != 0 ? repairChecksums(input.bytes) : input.data

    // Whole members (as mulan-shard verify reads them).
    let reader = TarReader(data: bytes, path: "fuzz.tar")
    var members = 0
    while true {
        let member: TarReader.Member?
        do { member = try reader.next() } catch { break }
        guard let member else { break }
        precondition(member.offset % 512 == 0 && member.offset + 512 + member.data.count <= bytes.count)
        members += 1
        precondition(members <= bytes.count / 512, "more members than header blocks")
    }

    // Headers only, then the bytes of each (as the trainer's shard stream reads them).
    let scan = TarReader(data: bytes, path: "fuzz.tar")
    var entries: [TarReader.Entry] = []
    while true {
        let entry: TarReader.Entry?
        do { entry = try scan.nextEntry() } catch { break }
        guard let entry else { break }
        entries.append(entry)
        precondition(entries.count <= bytes.count / 512, "more entries than header blocks")
    }
    for e in entries.suffix(4) { _ = scan.bytes(of: e) }

    // A header TarWriter makes for a name from the input reads back as that name and size.
    if input.selector & 1 == 1, let name = String(validating: input.rest.prefix(300), as: UTF8.self),
       !name.isEmpty, !name.utf8.contains(0), TarWriter.fits(name) {
        let size = Int(input.selector) * 37
        if let header = try? TarWriter.header(name: name, size: size) {
            var archive = header + [UInt8](repeating: 0xAB, count: (size + 511) / 512 * 512)
            archive += [UInt8](repeating: 0, count: 1024)
            let r = TarReader(data: Data(archive))
            let m = try? r.next()
            precondition(m?.name == name && m?.data.count == size, "TarWriter's header does not read back")
            do {
                let end = try r.next()
                precondition(end == nil, "a member after the end-of-archive blocks")
            } catch {
                preconditionFailure("end-of-archive not seen: \(error)")
            }
        }
    }
    return 0
}

/// The archive with each header on the reader's path given its correct checksum.
func repairChecksums(_ input: [UInt8]) -> Data {
    var b = input
    var offset = 0
    while offset + 512 <= b.count {
        if b[offset..<(offset + 512)].allSatisfy({ $0 == 0 }) { break }
        for i in 148..<156 { b[offset + i] = 0x20 }
        let sum = b[offset..<(offset + 512)].reduce(0) { $0 + Int($1) }
        let digits = Array(String(sum, radix: 8).utf8)
        let field = [UInt8](repeating: 0x30, count: max(0, 6 - digits.count)) + digits + [0, 0x20]
        for (i, d) in field.prefix(8).enumerated() { b[offset + 148 + i] = d }
        let sizeField = b[(offset + 124)..<(offset + 136)].prefix { $0 != 0 }
        guard let size = Int(String(decoding: sizeField, as: UTF8.self).trimmingCharacters(in: .whitespaces), radix: 8),
              size >= 0, size < 1 << 40 else { break }
        offset += 512 + (size + 511) / 512 * 512
    }
    return Data(b)
}
