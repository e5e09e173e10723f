import Foundation
import MulanTestSupport

/// A corpus of duplicates with known ground truth, generated with the ffmpeg CLI: excerpts of real
/// music (Debian's Wesnoth soundtrack when installed, else synthetic note sequences written here),
/// each copied as mp3 128k, Opus 64k, AAC, resampled, ±6 dB, mono, trimmed and embedded inside a
/// longer file, mixed with distinct pieces.
struct DedupeCorpus {
    /// Track id → the recordings (families) it holds.
    var families: [String: Set<Int>] = [:]
    var manifest = "track_id,path\n"
    var realMusic = false

    static let wesnoth = "/usr/share/games/wesnoth/1.16/data/core/music"

    /// A tag per variant (each carried by every family, so the tag filter keeps it).
    static let genres = ["rock", "jazz", "ambient", "folk", "blues", "pop", "metal", "soul", "funk", "reggae"]

    /// The variants of each original: (suffix, ffmpeg output arguments, trims).
    static let variants: [(name: String, ext: String, args: [String])] = [
        ("orig", "flac", ["-c:a", "flac"]),
        ("mp3", "mp3", ["-c:a", "libmp3lame", "-b:a", "128k"]),
        ("opus", "opus", ["-c:a", "libopus", "-b:a", "64k"]),
        ("aac", "m4a", ["-c:a", "aac", "-b:a", "128k"]),
        ("resampled", "wav", ["-ar", "22050", "-c:a", "pcm_s16le"]),
        ("plus6db", "mp3", ["-af", "volume=6dB", "-c:a", "libmp3lame", "-b:a", "160k"]),
        ("minus6db", "ogg", ["-af", "volume=-6dB", "-c:a", "libvorbis", "-q:a", "4"]),
        ("mono", "flac", ["-ac", "1", "-c:a", "flac"]),
        ("trimmed", "mp3", ["-ss", "3", "-to", "42", "-c:a", "libmp3lame", "-b:a", "128k"]),
    ]

    /// `families` originals with every variant plus one embedded copy each, and `distinct` other pieces.
    static func make(in dir: TempDir, families: Int, distinct: Int, excerpt: Double = 45) throws -> DedupeCorpus {
        var corpus = DedupeCorpus()
        for folder in ["src", "corpus"] {
            try FileManager.default.createDirectory(atPath: dir.file(folder), withIntermediateDirectories: true)
        }
        let sources = try sourceFiles(dir, count: families + distinct, seconds: excerpt + 30)
        corpus.realMusic = sources.real
        let files = sources.files
        for f in 0..<families {
            let excerptFile = dir.file("src/family\(f).wav")
            try TestProcess.ffmpeg(["-ss", "30", "-t", "\(excerpt)", "-i", files[f], "-c:a", "pcm_s16le", excerptFile])
            for (n, v) in variants.enumerated() {
                let id = "f\(f)-\(v.name)"
                let path = dir.file("corpus/\(id).\(v.ext)")
                try TestProcess.ffmpeg(["-i", excerptFile] + v.args + ["-metadata", "genre=\(genres[n])", path])
                corpus.add(id, path: path, families: [f])
            }
            // Embedded: 20 s of other music (its own, not in the corpus), the excerpt, 20 s more.
            let fillers = [dir.file("src/filler\(f)a.wav"), dir.file("src/filler\(f)b.wav")]
            try SyntheticMusic.write(fillers[0], seconds: 20, seed: UInt64(100 + 2 * f))
            try SyntheticMusic.write(fillers[1], seconds: 20, seed: UInt64(101 + 2 * f))
            let id = "f\(f)-embedded"
            let path = dir.file("corpus/\(id).ogg")
            try TestProcess.ffmpeg(["-i", fillers[0], "-i", excerptFile, "-i", fillers[1],
                                    "-filter_complex", "[0:a]aformat=sample_rates=44100:channel_layouts=stereo[a];"
                                        + "[1:a]aformat=sample_rates=44100:channel_layouts=stereo[b];"
                                        + "[2:a]aformat=sample_rates=44100:channel_layouts=stereo[c];[a][b][c]concat=n=3:v=0:a=1",
                                    "-metadata", "genre=\(genres[variants.count])", "-c:a", "libvorbis", "-q:a", "4", path])
            corpus.add(id, path: path, families: [f])
            // An exact copy of the mp3 (same bytes).
            let copy = dir.file("corpus/f\(f)-copy.mp3")
            try FileManager.default.copyItem(atPath: dir.file("corpus/f\(f)-mp3.mp3"), toPath: copy)
            corpus.add("f\(f)-copy", path: copy, families: [f])
        }
        for d in 0..<distinct {
            let id = "distinct\(d)"
            let path = dir.file("corpus/\(id).ogg")
            try TestProcess.ffmpeg(["-ss", "30", "-t", "\(excerpt)", "-i", files[families + d], "-metadata", "genre=classical", "-c:a", "libvorbis", "-q:a", "4", path])
            corpus.add(id, path: path, families: [1000 + d])
        }
        try dir.write("dedupe.csv", corpus.manifest)
        return corpus
    }

    mutating func add(_ id: String, path: String, families: Set<Int>) {
        self.families[id] = families
        manifest += "\(id),\(path)\n"
    }

    /// Every unordered pair of track ids that share a recording.
    var truePairs: Set<String> {
        let ids = families.keys.sorted()
        var pairs = Set<String>()
        for (i, a) in ids.enumerated() {
            for b in ids[(i + 1)...] where !families[a]!.isDisjoint(with: families[b]!) { pairs.insert(a + "|" + b) }
        }
        return pairs
    }

    static func duration(_ path: String) throws -> Double {
        let r = try TestProcess.run("ffprobe", ["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path])
        return Double(r.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    /// Source pieces: Wesnoth's music when present (real, by a handful of composers), else synthetic.
    static func sourceFiles(_ dir: TempDir, count: Int, seconds: Double) throws -> (files: [String], real: Bool) {
        let real = ((try? FileManager.default.contentsOfDirectory(atPath: wesnoth)) ?? [])
            .filter { $0.hasSuffix(".ogg") }.sorted().map { wesnoth + "/" + $0 }
            .filter { ((try? duration($0)) ?? 0) >= seconds }
        if real.count >= count {
            // Pieces long enough for an excerpt from 30 s on (and the fillers' offsets).
            return (Array(real.prefix(count)), true)
        }
        return (try (0..<count).map { i in
            let path = dir.file("src/synthetic\(i).wav")
            try SyntheticMusic.write(path, seconds: seconds, seed: UInt64(i + 1))
            return path
        }, false)
    }
}

/// Note sequences with harmonics and a little noise, as 16-bit stereo WAV: distinct pieces whose
/// chroma changes every few hundred milliseconds, as music does.
enum SyntheticMusic {
    static func write(_ path: String, seconds: Double, seed: UInt64, rate: Int = 44100) throws {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func next() -> Double {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Double(state >> 11) / Double(1 << 53)
        }
        let n = Int(seconds * Double(rate))
        var pcm = [Int16](repeating: 0, count: 2 * n)
        var i = 0
        while i < n {
            let length = Int((0.2 + 0.4 * next()) * Double(rate))
            let notes = (0..<3).map { _ in 110 * pow(2, Double(Int(next() * 36)) / 12) }
            for k in 0..<min(length, n - i) {
                let t = Double(k) / Double(rate)
                let envelope = min(1, t * 40) * exp(-2 * t)
                var x = 0.0
                for f in notes { x += sin(2 * .pi * f * t) + 0.4 * sin(4 * .pi * f * t) + 0.2 * sin(6 * .pi * f * t) }
                x = 0.15 * envelope * x + 0.01 * (next() - 0.5)
                let s = Int16(max(-32767, min(32767, x * 32767)))
                pcm[2 * (i + k)] = s
                pcm[2 * (i + k) + 1] = s
            }
            i += length
        }
        var data = Data()
        func le32(_ v: Int) { withUnsafeBytes(of: UInt32(v).littleEndian) { data.append(contentsOf: $0) } }
        func le16(_ v: Int) { withUnsafeBytes(of: UInt16(v).littleEndian) { data.append(contentsOf: $0) } }
        data.append(contentsOf: Array("RIFF".utf8)); le32(36 + 4 * n); data.append(contentsOf: Array("WAVEfmt ".utf8))
        le32(16); le16(1); le16(2); le32(rate); le32(rate * 4); le16(4); le16(16)
        data.append(contentsOf: Array("data".utf8)); le32(4 * n)
        pcm.withUnsafeBytes { data.append(contentsOf: $0) }
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: path))
    }
}
