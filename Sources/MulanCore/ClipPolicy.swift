/// Which windows of a track become clips (`mulan-ingest --clip-policy`).
///
/// MuLan kept one 30-s clip per recording; decoding a whole 4-minute track for that wastes most of
/// the work. Policies that need only some windows (`center`, `random`, `evenly:N`) let ingest
/// seek to each window instead of decoding everything (see `AudioDecoder.decodeWindows`).
///
/// Window positions:
/// - `all`: every clip of the fixed grid from the start (today's default), plus a final shorter
///   clip when it is at least `--min-clip-seconds` long.
/// - `evenly:N`: N of those grid candidates, `floor((i + ½)·K/N)` for i = 0…N−1 (all of them when
///   K ≤ N). `--max-clips-per-track N` is the same policy.
/// - `best:N`: the N grid candidates with the best score (`ClipScorer`), kept in time order. The
///   score needs every candidate, so this policy decodes the whole track.
/// - `center`: one window of the clip length centred in the track, at a free sample position
///   (`floor((T − C)/2)` for T samples and clip length C).
/// - `random`: one window at a free sample position drawn uniformly from [0, T − C], from a
///   generator seeded by `--clip-seed` and the track id: a re-run (or another worker) picks the
///   same window, another seed picks another.
/// A track shorter than one clip but at least `--min-clip-seconds` long gives one clip of all of it.
public enum ClipPolicy: Sendable, Hashable, CustomStringConvertible {
    case all
    case center
    case random
    case evenly(Int)
    case best(Int)

    /// Parses `all`, `center`, `random`, `evenly:N`, `best:N`.
    public init(parsing text: String) throws(MulanError) {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let name = parts[0].lowercased()
        func count() throws(MulanError) -> Int {
            guard parts.count == 2, let n = Int(parts[1]), n >= 1 else {
                throw MulanError(.usage, "--clip-policy \(text): \(name) needs a number of clips of at least 1",
                                 hint: "write it as \(name):N, e.g. \(name):3")
            }
            return n
        }
        switch name {
        case "all" where parts.count == 1: self = .all
        case "center" where parts.count == 1, "centre" where parts.count == 1: self = .center
        case "random" where parts.count == 1: self = .random
        case "evenly": self = .evenly(try count())
        case "best": self = .best(try count())
        default:
            throw MulanError(.usage, "--clip-policy \(text) is not a clip policy",
                             hint: "use all, center, random, evenly:N or best:N")
        }
    }

    /// The canonical text (`evenly:3`), as parsed and as shown in the settings key.
    public var description: String {
        switch self {
        case .all: "all"
        case .center: "center"
        case .random: "random"
        case .evenly(let n): "evenly:\(n)"
        case .best(let n): "best:\(n)"
        }
    }

    /// Whether this is `best:N`.
    public var isBest: Bool { if case .best = self { true } else { false } }

    /// Whether the policy's windows are known from the track's length alone, so that ingest may
    /// seek to them instead of decoding everything. `all` needs every sample anyway and `best:N`
    /// must score every candidate.
    public var canSeek: Bool {
        switch self {
        case .center, .random, .evenly: true
        case .all, .best: false
        }
    }
}

/// One window of a track to keep as a clip, in output samples from the start of the track (or of
/// its segment).
public struct ClipWindow: Sendable, Hashable {
    /// The clip's index: its grid index for grid policies (`all`, `evenly`, `best`), 0 for the one
    /// window of `center` and `random`.
    public var index: Int
    public var start: Int
    public var count: Int

    public init(index: Int, start: Int, count: Int) {
        (self.index, self.start, self.count) = (index, start, count)
    }

    public var end: Int { start + count }
}

/// The windows a policy keeps from a track of known length.
public struct ClipPlan: Sendable, Hashable {
    /// The windows, in time order.
    public var windows: [ClipWindow]
    /// Samples of a final partial grid clip shorter than `--min-clip-seconds` (grid policies only).
    public var droppedTailSamples: Int

    /// Plans `policy` on a track of `totalSamples` output samples. Nil for `best:N`, whose windows
    /// depend on the audio. No windows when the track is shorter than `--min-clip-seconds`.
    public init?(policy: ClipPolicy, totalSamples: Int, settings: IngestSettings, trackID: String) {
        let clip = settings.clipSamples
        let full = totalSamples / clip
        let tail = totalSamples - full * clip
        let tailKept = tail > 0 && tail >= settings.minClipSamples
        let candidates = full + (tailKept ? 1 : 0)
        func grid(_ i: Int) -> ClipWindow {
            ClipWindow(index: i, start: i * clip, count: min(clip, totalSamples - i * clip))
        }
        let gridTail = tailKept ? 0 : tail
        switch policy {
        case .best:
            return nil
        case .all:
            windows = (0..<candidates).map(grid)
            droppedTailSamples = gridTail
        case .evenly(let n):
            let picks = candidates <= n ? Array(0..<candidates) : ClipCutter.evenlySpaced(n, of: candidates).sorted()
            windows = picks.map(grid)
            droppedTailSamples = gridTail
        case .center, .random:
            droppedTailSamples = 0
            if totalSamples < settings.minClipSamples || totalSamples <= 0 {
                windows = []
            } else if totalSamples <= clip {
                windows = [ClipWindow(index: 0, start: 0, count: totalSamples)]
            } else {
                let slack = totalSamples - clip
                let start = policy == .center ? slack / 2
                    : Self.randomStart(slack: slack, seed: settings.clipSeed, trackID: trackID)
                windows = [ClipWindow(index: 0, start: start, count: clip)]
            }
        }
    }

    /// A start in [0, slack], uniform, from SplitMix64 seeded by `seed` and the track id's FNV-1a
    /// hash: the same on every platform and in every process (Swift's `Hasher` is not).
    public static func randomStart(slack: Int, seed: UInt64, trackID: String) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in trackID.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        var generator = SplitMix64(seed: seed ^ hash)
        _ = generator.next()  // decorrelate nearby seeds
        return Int(generator.uniform() * Double(slack + 1))
    }
}

/// Stored as its canonical text (`"evenly:3"`) in the run's settings JSON.
extension ClipPolicy: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do {
            self = try ClipPolicy(parsing: text)
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
