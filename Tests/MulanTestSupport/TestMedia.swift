import Foundation

/// Generates test audio with the ffmpeg CLI (lavfi sources), so no media is stored in the repo.
public enum TestMedia {
    /// A tone (plus a little seeded noise so that codecs have work) of `seconds`, encoded by `codec`,
    /// about −30 LUFS, plus `gainDB`.
    public static func tone(_ path: String, seconds: Double, frequency: Double = 440, rate: Int = 44100,
                            channels: Int = 2, codec: [String]? = nil, tags: [String: String] = [:],
                            seed: Int = 1, gainDB: Double = 0) throws {
        let source = "sine=frequency=\(frequency):duration=\(seconds):sample_rate=\(rate)"
        let noise = "anoisesrc=d=\(seconds):r=\(rate):a=0.05:seed=\(seed)"
        var args = ["-f", "lavfi", "-i", source, "-f", "lavfi", "-i", noise,
                    "-filter_complex", "[0][1]amix=inputs=2:normalize=0,volume=0.5"
                    + (gainDB == 0 ? "" : ",volume=\(gainDB)dB"), "-ac", "\(channels)"]
        for (k, v) in tags.sorted(by: { $0.key < $1.key }) { args += ["-metadata", "\(k)=\(v)"] }
        args += codec ?? defaultCodec(for: path)
        try makeParent(path)
        try TestProcess.ffmpeg(args + [path])
    }

    /// Digital silence of `seconds`.
    public static func silence(_ path: String, seconds: Double, rate: Int = 22050) throws {
        try makeParent(path)
        try TestProcess.ffmpeg(["-f", "lavfi", "-i", "anullsrc=r=\(rate):cl=mono", "-t", "\(seconds)"]
                               + defaultCodec(for: path) + [path])
    }

    static func makeParent(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
    }

    static func defaultCodec(for path: String) -> [String] {
        switch (path as NSString).pathExtension.lowercased() {
        case "mp3": ["-c:a", "libmp3lame", "-b:a", "96k"]
        case "ogg": ["-c:a", "libvorbis", "-q:a", "2"]
        case "opus": ["-c:a", "libopus", "-b:a", "48k"]
        case "m4a": ["-c:a", "aac", "-b:a", "96k"]
        case "flac": ["-c:a", "flac"]
        default: ["-c:a", "pcm_s16le"]
        }
    }
}
