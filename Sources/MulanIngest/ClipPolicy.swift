import MulanCore

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
