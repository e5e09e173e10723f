#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Lists the audio files below a directory that match glob patterns, in a stable (sorted) order.
/// The track id of a file is its path relative to the scanned directory.
///
/// Patterns: `*` and `?` match within one path component, `**/` matches any number of folders,
/// `[...]` a set of characters. A pattern without `/` matches the file name at any depth.
/// Symbolic links to files are followed; links to folders are not (no loops).
public struct DirectoryScan: Sendable {
    public static let defaultGlobs = ["*.mp3", "*.ogg", "*.oga", "*.opus", "*.flac", "*.wav", "*.m4a",
                                      "*.aac", "*.wma", "*.aif", "*.aiff", "*.mp4", "*.webm", "*.mka"]
    public var root: String
    public var globs: [String]

    public init(root: String, globs: [String]) {
        self.root = Paths.absolute(root)
        self.globs = globs.isEmpty ? Self.defaultGlobs : globs
    }

    /// Walks the tree and returns manifest rows, one per matching file, sorted by track id.
    /// Folders that cannot be read are returned as rejected rows rather than silently skipped.
    public func rows() throws(MulanError) -> [ManifestEntry] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else {
            throw MulanError(.usage, "--scan \(root) is not a directory", hint: "pass a folder of audio files")
        }
        var found: [ManifestEntry] = []
        var pending = [""]
        while let relative = pending.popLast() {
            let dirPath = relative.isEmpty ? root : root + "/" + relative
            let names: [String]
            do {
                names = try FileManager.default.contentsOfDirectory(atPath: dirPath)
            } catch {
                found.append(.rejected(RejectedRow(
                    origin: SourceLocation(file: dirPath), reason: .unreadable,
                    detail: "cannot list folder: \(error.localizedDescription); check its permissions", raw: dirPath)))
                continue
            }
            for name in names {
                let rel = relative.isEmpty ? name : relative + "/" + name
                let full = root + "/" + rel
                var st = stat()
                guard lstat(full, &st) == 0 else { continue }
                let type = st.st_mode & S_IFMT
                if type == S_IFDIR {
                    pending.append(rel)
                } else if (type == S_IFREG || type == S_IFLNK) && matches(rel) {
                    found.append(.row(ManifestRow(trackID: rel, path: full,
                                                  origin: SourceLocation(file: root, trackID: rel))))
                }
            }
        }
        func key(_ e: ManifestEntry) -> String {
            switch e {
            case .row(let r): r.trackID
            case .rejected(let r): r.raw
            }
        }
        return found.sorted { key($0) < key($1) }
    }

    func matches(_ relative: String) -> Bool {
        globs.contains { Self.glob($0, matches: relative) }
    }

    /// Matches a relative path against one pattern (see the type's documentation).
    public static func glob(_ pattern: String, matches path: String) -> Bool {
        if !pattern.contains("/") {
            let name = path.split(separator: "/").last.map(String.init) ?? path
            return fnmatch(pattern, name, 0) == 0
        }
        return globComponents(pattern.split(separator: "/", omittingEmptySubsequences: true).map(String.init),
                              path.split(separator: "/").map(String.init))
    }

    private static func globComponents(_ pattern: [String], _ path: [String]) -> Bool {
        guard let first = pattern.first else { return path.isEmpty }
        if first == "**" {
            let rest = Array(pattern.dropFirst())
            for skip in 0...path.count where globComponents(rest, Array(path.dropFirst(skip))) { return true }
            return false
        }
        guard let head = path.first, fnmatch(first, head, FNM_PERIOD) == 0 else { return false }
        return globComponents(Array(pattern.dropFirst()), Array(path.dropFirst()))
    }
}
