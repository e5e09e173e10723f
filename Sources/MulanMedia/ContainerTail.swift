import Foundation

/// Tells a file cut short from a complete one where libavformat cannot: it takes an Ogg
/// stream's duration from the last page, and a WAV file's from its size, so a truncated file
/// looks like a complete shorter one. A complete Ogg stream ends with a whole page carrying the
/// end-of-stream flag (RFC 3533 §6); a complete WAV file is as long as its RIFF header says.
public enum ContainerTail {
    /// What is wrong with the end of the file, or nil when it ends cleanly or the container
    /// (by libavformat's name) has no such check.
    public static func problem(path: String, container: String) -> String? {
        switch container {
        case "ogg": oggProblem(path: path)
        case "wav": wavProblem(path: path)
        default: nil
        }
    }

    static func wavProblem(path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let head = try? handle.read(upToCount: 12), head.count == 12,
              let size = try? handle.seekToEnd() else { return nil }
        let b = [UInt8](head)
        guard b[0] == 0x52, b[1] == 0x49, b[2] == 0x46, b[3] == 0x46 else { return nil }  // "RIFF"
        let declared = UInt64(b[4]) | UInt64(b[5]) << 8 | UInt64(b[6]) << 16 | UInt64(b[7]) << 24
        // Streaming writers leave the size 0 or 0xFFFFFFFF: nothing to check then.
        if declared == 0 || declared == 0xFFFF_FFFF { return nil }
        if declared + 8 > size {
            return "its RIFF header declares \(declared + 8) bytes but the file has only \(size)"
        }
        return nil
    }

    static func oggProblem(path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let size = try? handle.seekToEnd(), size > 27 else { return "it is too small to hold an Ogg page" }
        let window = min(size, 1 << 17)
        try? handle.seek(toOffset: size - window)
        guard let data = try? handle.readToEnd() else { return nil }
        let bytes = [UInt8](data)
        // Walk back over "OggS" capture patterns; the last page must end exactly at the end of the file.
        var i = bytes.count - 27
        while i >= 0 {
            if bytes[i] == 0x4F, bytes[i + 1] == 0x67, bytes[i + 2] == 0x67, bytes[i + 3] == 0x53, bytes[i + 4] == 0 {
                let segments = Int(bytes[i + 26])
                if i + 27 + segments <= bytes.count {
                    let body = bytes[(i + 27)..<(i + 27 + segments)].reduce(0) { $0 + Int($1) }
                    let end = i + 27 + segments + body
                    if end == bytes.count {
                        return bytes[i + 5] & 0x04 != 0 ? nil : "its last Ogg page has no end-of-stream flag"
                    }
                    if end < bytes.count {
                        return "it ends inside an Ogg page"  // a later page started but did not finish
                    }
                }
                // Otherwise this page runs past the end of the file: the file stops mid-page.
                return "its last Ogg page is incomplete"
            }
            i -= 1
        }
        return "no Ogg page found near its end"
    }
}
